import { describe, expect, it } from 'vitest';

import type { PeerInfo, RemoteConsumer } from '@switchyard/client';

import { callReducer, initialCallState, MAX_TILES, tilesOf, type CallAction, type CallState } from './callState';

const peer = (peerId: string, patch: Partial<PeerInfo> = {}): PeerInfo => ({
  peerId,
  userId: `user-${peerId}`,
  displayName: peerId.toUpperCase(),
  audioMuted: false,
  videoMuted: false,
  handRaised: false,
  ...patch,
});

const consumer = (consumerId: string, producerId: string, peerId: string, patch: Partial<RemoteConsumer> = {}) =>
  ({
    consumerId,
    producerId,
    peerId,
    kind: 'video',
    source: 'camera',
    type: 'simulcast',
    producerPaused: false,
    layers: null,
    ...patch,
  }) satisfies RemoteConsumer;

function run(actions: CallAction[], state: CallState = initialCallState()): CallState {
  return actions.reduce(callReducer, state);
}

const server = (event: Extract<CallAction, { type: 'server' }>['event'], data: unknown): CallAction => ({
  type: 'server',
  event,
  data,
});

/** Joined as `me` with Bob present, Bob's camera and mic announced. */
const joinedWithBob = (): CallState =>
  run([
    {
      type: 'joined',
      data: {
        peerId: 'me',
        roomId: 'room',
        peers: [peer('bob')],
        producers: [
          { producerId: 'bob-cam', peerId: 'bob', kind: 'video', appData: { source: 'camera' } },
          { producerId: 'bob-mic', peerId: 'bob', kind: 'audio', appData: { source: 'mic' } },
        ],
      },
    },
  ]);

describe('tiles', () => {
  it('puts screens first, then me, then others in join order', () => {
    let state = run(
      [
        server('user-joined', peer('carol')),
        server('new-producer', { producerId: 'bob-screen', peerId: 'bob', kind: 'video', appData: { source: 'screen' } }),
        { type: 'consumer-added', consumer: consumer('cam', 'bob-cam', 'bob') },
        { type: 'consumer-added', consumer: consumer('scr', 'bob-screen', 'bob', { source: 'screen' }) },
        server('active-speaker', { peerId: 'carol', volume: -10 }),
      ],
      joinedWithBob(),
    );
    state = run([{ type: 'self', patch: { handRaised: true } }], state);
    const tiles = tilesOf(state, 'Me', true);
    expect(tiles.map((t) => t.key)).toEqual(['screen-scr', 'self', 'bob', 'carol']);
    expect(tiles[1]).toMatchObject({ isSelf: true, handRaised: true, displayName: 'Me (you)' });
    expect(tiles[2]).toMatchObject({ videoConsumerId: 'cam', videoOff: false });
    expect(tiles[3]).toMatchObject({ videoConsumerId: null, videoOff: true, activeSpeaker: true });
  });

  it('shows the camera off for a muted, paused or missing camera', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('cam', 'bob-cam', 'bob') }], joinedWithBob());
    expect(tilesOf(state, 'Me', true)[1].videoOff).toBe(false);
    state = run([server('video-mute', { peerId: 'bob', muted: true })], state);
    expect(tilesOf(state, 'Me', true)[1].videoOff).toBe(true);
    expect(tilesOf(state, 'Me', false)[0].videoOff).toBe(true);
  });

  it('highlights me when I speak', () => {
    const state = run([server('active-speaker', { peerId: 'me', volume: -5 })], joinedWithBob());
    expect(tilesOf(state, 'Me', true)[0].activeSpeaker).toBe(true);
  });

  it(`shows at most ${MAX_TILES} tiles, always with the active speaker`, () => {
    let state = joinedWithBob();
    const joiners = Array.from({ length: 30 }, (_, i) => server('user-joined', peer(`p${i}`)));
    state = run([...joiners, server('active-speaker', { peerId: 'p29', volume: -3 })], state);
    const tiles = tilesOf(state, 'Me', true);
    expect(tiles).toHaveLength(MAX_TILES);
    expect(tiles[MAX_TILES - 1].peerId).toBe('p29');
    expect(tiles[0].isSelf).toBe(true);
  });
});

describe('reactions in the call state', () => {
  it('go with the peer who leaves, and survive other events', () => {
    let state = run(
      [
        { type: 'reaction', reaction: { id: 1, peerId: 'bob', emoji: '🎉' } },
        { type: 'reaction', reaction: { id: 2, peerId: 'me', emoji: '👍' } },
        server('active-speaker', { peerId: 'bob', volume: -20 }),
      ],
      joinedWithBob(),
    );
    expect(state.reactions.map((r) => r.id)).toEqual([1, 2]);
    state = run([server('user-left', { peerId: 'bob' })], state);
    expect(state.reactions.map((r) => r.id)).toEqual([2]);
    expect(state.peers).toEqual({});
  });

  it('keep the same state object for an action that changes nothing', () => {
    const state = joinedWithBob();
    expect(run([server('video-mute', { peerId: 'nobody', muted: true })], state)).toBe(state);
  });
});
