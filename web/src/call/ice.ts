/**
 * ICE settings of a transport beyond the server's answer.
 *
 * The server hands out TURN servers with credentials minted for this peer in `createWebRtcTransport`'s
 * `iceServers` (PROTOCOL.md); they go to the RTCPeerConnection unchanged. `?iceTransportPolicy=relay`
 * on the page's URL makes the browser use relayed candidates only: a way to try the TURN relay (and
 * the browser tests' way to prove a call works through it), as if every other path were blocked.
 */
export function iceTransportPolicyFrom(search: string): RTCIceTransportPolicy | undefined {
  const value = new URLSearchParams(search).get('iceTransportPolicy');
  return value === 'relay' || value === 'all' ? value : undefined;
}
