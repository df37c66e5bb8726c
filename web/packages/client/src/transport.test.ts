import { describe, expect, it } from 'vitest';

import { iceSettings } from './transport';

describe('iceSettings', () => {
  const relay = { urls: 'turns:turn.example.org:443?transport=tcp', username: '1700000000:peer', credential: 'x' };

  it('has no servers and no policy unless someone gives them', () => {
    expect(iceSettings(undefined)).toEqual({ iceServers: [] });
  });

  it("puts the server's relay first, then the app's servers, with the app's policy", () => {
    const own = { urls: 'stun:stun.example.org' };
    expect(iceSettings([relay], { iceServers: [own], iceTransportPolicy: 'relay' })).toEqual({
      iceServers: [relay, own],
      iceTransportPolicy: 'relay',
    });
  });

  it('passes extra RTCPeerConnection settings through', () => {
    expect(iceSettings([], { additionalSettings: { encodedInsertableStreams: true } })).toEqual({
      iceServers: [],
      additionalSettings: { encodedInsertableStreams: true },
    });
  });

  it('ignores a malformed iceServers answer', () => {
    expect(iceSettings('turn:x').iceServers).toEqual([]);
    expect(iceSettings([null, 5, { username: 'no urls' }, relay]).iceServers).toEqual([relay]);
  });
});
