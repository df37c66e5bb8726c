import { describe, expect, it } from 'vitest';

import {
  initialRoomState,
  mergeMessages,
  roomReducer,
  type ChatMessage,
  type PeerInfo,
  type RemoteConsumer,
  type RoomAction,
  type RoomState,
} from './roomState';

const peer = (peerId: string, patch: Partial<PeerInfo> = {}): PeerInfo => ({
  peerId,
  userId: `user-${peerId}`,
  displayName: peerId.toUpperCase(),
  audioMuted: false,
  videoMuted: false,
  handRaised: false,
  ...patch,
});

const message = (id: string, ts: string, text = id): ChatMessage => ({
  id,
  roomId: 'room',
  peerId: 'p',
  userId: 'u',
  displayName: 'Ada',
  text,
  ts,
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

function run(actions: RoomAction[], state: RoomState = initialRoomState()): RoomState {
  return actions.reduce(roomReducer, state);
}

const server = (event: Extract<RoomAction, { type: 'server' }>['event'], data: unknown): RoomAction => ({
  type: 'server',
  event,
  data,
});

/** Joined as `me` with Bob present, Bob's camera and mic announced. */
const joinedWithBob = (): RoomState =>
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

describe('joining', () => {
  it('starts connecting with the chosen mute state', () => {
    const state = initialRoomState({ audioMuted: true });
    expect(state.status).toBe('connecting');
    expect(state.self.audioMuted).toBe(true);
    expect(state.self.videoMuted).toBe(false);
  });

  it('takes peers and producers from the join answer', () => {
    const state = joinedWithBob();
    expect(state.status).toBe('joined');
    expect(state.selfPeerId).toBe('me');
    expect(state.peerOrder).toEqual(['bob']);
    expect(Object.keys(state.producers).sort()).toEqual(['bob-cam', 'bob-mic']);
  });

  it('never lists itself as another peer', () => {
    const state = run([server('user-joined', peer('me'))], joinedWithBob());
    expect(state.peerOrder).toEqual(['bob']);
  });

  it('replaces the room on a rejoin but keeps the chat', () => {
    let state = run([server('chat', message('m1', '2025-01-01T00:00:00.000Z'))], joinedWithBob());
    state = run([{ type: 'reconnecting' }], state);
    expect(state.status).toBe('reconnecting');
    state = run([{ type: 'joined', data: { peerId: 'me2', roomId: 'room', peers: [peer('carol')], producers: [] } }], state);
    expect(state.status).toBe('joined');
    expect(state.selfPeerId).toBe('me2');
    expect(state.peerOrder).toEqual(['carol']);
    expect(state.messages.map((m) => m.id)).toEqual(['m1']);
  });
});

describe('peers', () => {
  it('adds joiners once, in order', () => {
    const state = run([server('user-joined', peer('carol')), server('user-joined', peer('carol'))], joinedWithBob());
    expect(state.peerOrder).toEqual(['bob', 'carol']);
  });

  it('forgets everything of a peer who leaves', () => {
    let state = run(
      [
        { type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') },
        { type: 'quality', peerId: 'bob', quality: 'good' },
        server('active-speaker', { peerId: 'bob', volume: -20 }),
      ],
      joinedWithBob(),
    );
    expect(state.consumers.c1).toBeDefined();
    state = run([server('user-left', { peerId: 'bob' })], state);
    expect(state.peers).toEqual({});
    expect(state.peerOrder).toEqual([]);
    expect(state.producers).toEqual({});
    expect(state.consumers).toEqual({});
    expect(state.quality).toEqual({});
    expect(state.activeSpeaker).toBeNull();
  });

  it('shows mute, camera and hand changes', () => {
    const state = run(
      [
        server('audio-mute', { peerId: 'bob', muted: true }),
        server('video-mute', { peerId: 'bob', muted: true }),
        server('raised-hand', { peerId: 'bob', raised: true }),
      ],
      joinedWithBob(),
    );
    expect(state.peers.bob).toMatchObject({ audioMuted: true, videoMuted: true, handRaised: true });
    const lowered = run([server('raised-hand', { peerId: 'bob', raised: false })], state);
    expect(lowered.peers.bob.handRaised).toBe(false);
  });

  it('ignores events about unknown peers', () => {
    const state = joinedWithBob();
    expect(run([server('audio-mute', { peerId: 'ghost', muted: true })], state)).toBe(state);
    expect(run([server('user-left', { peerId: 'ghost' })], state)).toBe(state);
  });

  it('tracks the active speaker, and nobody', () => {
    let state = run([server('active-speaker', { peerId: 'bob', volume: -30 })], joinedWithBob());
    expect(state.activeSpeaker).toBe('bob');
    state = run([server('active-speaker', { peerId: null, volume: null })], state);
    expect(state.activeSpeaker).toBeNull();
  });
});

describe('media', () => {
  it('keeps a consumer only while its producer and peer exist', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') }], joinedWithBob());
    expect(Object.keys(state.consumers)).toEqual(['c1']);
    state = run([server('producer-closed', { producerId: 'bob-cam', peerId: 'bob' })], state);
    expect(state.consumers).toEqual({});
    expect(state.producers['bob-cam']).toBeUndefined();
    // made after its producer closed: dropped
    state = run([{ type: 'consumer-added', consumer: consumer('c2', 'bob-cam', 'bob') }], state);
    expect(state.consumers).toEqual({});
  });

  it('adds producers announced later', () => {
    const state = run(
      [
        server('new-producer', { producerId: 'bob-screen', peerId: 'bob', kind: 'video', appData: { source: 'screen' } }),
        { type: 'consumer-added', consumer: consumer('c3', 'bob-screen', 'bob', { source: 'screen' }) },
      ],
      joinedWithBob(),
    );
    expect(state.consumers.c3.source).toBe('screen');
  });

  it('follows pauses from producer and consumer events', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') }], joinedWithBob());
    state = run([server('producer-paused', { producerId: 'bob-cam', peerId: 'bob' })], state);
    expect(state.consumers.c1.producerPaused).toBe(true);
    state = run([server('consumer-resumed', { consumerId: 'c1' })], state);
    expect(state.consumers.c1.producerPaused).toBe(false);
    state = run([server('consumer-paused', { consumerId: 'c1' })], state);
    expect(state.consumers.c1.producerPaused).toBe(true);
  });

  it('records layer switches, including none', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') }], joinedWithBob());
    state = run([server('consumer-layers-changed', { consumerId: 'c1', spatialLayer: 1, temporalLayer: 2 })], state);
    expect(state.consumers.c1.layers).toEqual({ spatialLayer: 1, temporalLayer: 2 });
    state = run([server('consumer-layers-changed', { consumerId: 'c1', spatialLayer: null, temporalLayer: null })], state);
    expect(state.consumers.c1.layers).toEqual({ spatialLayer: null, temporalLayer: null });
  });

  it('drops a closed consumer', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') }], joinedWithBob());
    state = run([server('consumer-closed', { consumerId: 'c1', producerId: 'bob-cam' })], state);
    expect(state.consumers).toEqual({});
  });

  it('loses consumers but keeps peers while reconnecting', () => {
    let state = run([{ type: 'consumer-added', consumer: consumer('c1', 'bob-cam', 'bob') }], joinedWithBob());
    state = run([{ type: 'reconnecting' }], state);
    expect(state.consumers).toEqual({});
    expect(state.peerOrder).toEqual(['bob']);
  });
});

describe('chat', () => {
  it('merges history and live messages by id, oldest first', () => {
    let state = run([server('chat', message('m3', '2025-01-01T00:00:03.000Z'))], joinedWithBob());
    state = run(
      [
        {
          type: 'history',
          messages: [message('m1', '2025-01-01T00:00:01.000Z'), message('m3', '2025-01-01T00:00:03.000Z')],
        },
        { type: 'chat-sent', message: message('m4', '2025-01-01T00:00:04.000Z') },
      ],
      state,
    );
    expect(state.messages.map((m) => m.id)).toEqual(['m1', 'm3', 'm4']);
  });

  it('keeps the same array when nothing is new', () => {
    const current = [message('m1', '2025-01-01T00:00:01.000Z')];
    expect(mergeMessages(current, [message('m1', '2025-01-01T00:00:01.000Z')])).toBe(current);
  });
});

describe('the end of a call', () => {
  it('closes when the owner deletes the room', () => {
    const state = run([server('room-closed', { roomId: 'room' })], joinedWithBob());
    expect(state.status).toBe('closed');
    expect(state.endedReason).toMatch(/closed/);
  });

  it('stays for a room closed with a reason (the call rejoins it)', () => {
    const before = joinedWithBob();
    expect(run([server('room-closed', { roomId: 'room', reason: 'worker_died' })], before)).toBe(before);
  });

  it('does not go back to reconnecting once failed or left', () => {
    const failed = run([{ type: 'failed', message: 'This room is full.' }], joinedWithBob());
    expect(run([{ type: 'reconnecting' }], failed).status).toBe('failed');
    const left = run([{ type: 'left' }], joinedWithBob());
    expect(run([{ type: 'reconnecting' }], left).status).toBe('left');
  });

  it('shows and clears errors', () => {
    let state = run([{ type: 'error', message: 'Not connected.' }], joinedWithBob());
    expect(state.error).toBe('Not connected.');
    state = run([{ type: 'error', message: null }], state);
    expect(state.error).toBeNull();
  });
});
