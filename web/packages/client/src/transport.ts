// One WebRTC transport of mediasoup-client wired to the signaling (PROTOCOL.md §3): its `connect`,
// `produce` and `producedata` events answered by the matching requests.

import type { Device } from 'mediasoup-client';
import type { Transport } from 'mediasoup-client/types';

import type { TransportOptions } from './options.js';
import type { Signaling } from './signaling.js';

type TransportInfo = Parameters<Device['createSendTransport']>[0] & { iceServers?: RTCIceServer[] };

/**
 * The ICE part of a transport's options: the server's servers (a TURN relay with credentials it
 * minted for this peer) first, then the app's own; the app's policy and extra configuration.
 */
export function iceSettings(
  fromServer: unknown,
  options: TransportOptions = {},
): { iceServers: RTCIceServer[]; iceTransportPolicy?: RTCIceTransportPolicy; additionalSettings?: Record<string, unknown> } {
  const servers = Array.isArray(fromServer) ? (fromServer as RTCIceServer[]).filter((s) => s && typeof s === 'object' && 'urls' in s) : [];
  return {
    iceServers: [...servers, ...(options.iceServers ?? [])],
    ...(options.iceTransportPolicy ? { iceTransportPolicy: options.iceTransportPolicy } : {}),
    ...(options.additionalSettings ? { additionalSettings: options.additionalSettings } : {}),
  };
}

/** Ask the server for a transport and make its local half; `sctpCapabilities` opens data channels. */
export async function createTransport(
  device: Device,
  signaling: Signaling,
  direction: 'send' | 'recv',
  options: TransportOptions = {},
): Promise<Transport> {
  const info = await signaling.request<TransportInfo>('createWebRtcTransport', {
    direction,
    sctpCapabilities: device.sctpCapabilities,
  });
  const transportOptions = { ...info, ...iceSettings(info.iceServers, options) };
  const transport =
    direction === 'send' ? device.createSendTransport(transportOptions) : device.createRecvTransport(transportOptions);
  transport.on('connect', ({ dtlsParameters }, callback, errback) => {
    signaling
      .request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters })
      .then(() => callback(), errback);
  });
  if (direction === 'send') {
    transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
      signaling
        .request<{ id: string }>('produce', { transportId: transport.id, kind, rtpParameters, appData })
        .then(({ id }) => callback({ id }), errback);
    });
    transport.on('producedata', ({ sctpStreamParameters, label, protocol, appData }, callback, errback) => {
      signaling
        .request<{ id: string }>('produceData', { transportId: transport.id, sctpStreamParameters, label, protocol, appData })
        .then(({ id }) => callback({ id }), errback);
    });
  }
  return transport;
}
