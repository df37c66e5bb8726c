import { describe, expect, it } from 'vitest';

import { decodeReaction, encodeReaction, REACTIONS } from './reactions';
import { callReducer, initialCallState, tilesOf } from './callState';

describe('reactions', () => {
  it('round-trips every emoji and refuses anything else', () => {
    for (const emoji of REACTIONS) expect(decodeReaction(encodeReaction(emoji))).toBe(emoji);
    for (const bad of ['', 'x', '{"emoji":"💣"}', '{"emoji":5}', 'null', '[]', new ArrayBuffer(3), null, `{"emoji":"${'👍'.repeat(40)}"}`]) {
      expect(decodeReaction(bad)).toBeNull();
    }
  });

  it('floats over the sender tile until it expires, at most a few at a time', () => {
    let state = callReducer(initialCallState(), {
      type: 'joined',
      data: { peerId: 'me', roomId: 'r', producers: [], peers: [{ peerId: 'p', userId: 'u', displayName: 'P', audioMuted: false, videoMuted: false, handRaised: false }] },
    });
    state = callReducer(state, { type: 'reaction', reaction: { id: 1, peerId: 'p', emoji: '🎉' } });
    state = callReducer(state, { type: 'reaction', reaction: { id: 2, peerId: 'me', emoji: '👍' } });
    state = callReducer(state, { type: 'reaction', reaction: { id: 3, peerId: 'gone', emoji: '👍' } });
    const tiles = tilesOf(state, 'Me', true);
    expect(tiles.find((t) => t.peerId === 'p')?.reactions.map((r) => r.emoji)).toEqual(['🎉']);
    expect(tiles.find((t) => t.isSelf)?.reactions.map((r) => r.emoji)).toEqual(['👍']);
    state = callReducer(state, { type: 'reaction-expired', id: 1 });
    expect(tilesOf(state, 'Me', true).find((t) => t.peerId === 'p')?.reactions).toEqual([]);
    for (let id = 10; id < 30; id++) state = callReducer(state, { type: 'reaction', reaction: { id, peerId: 'p', emoji: '👏' } });
    expect(state.reactions.filter((r) => r.peerId === 'p').map((r) => r.id)).toEqual([22, 23, 24, 25, 26, 27, 28, 29]);
    state = callReducer(state, { type: 'server', event: 'user-left', data: { peerId: 'p' } });
    expect(state.reactions.filter((r) => r.peerId === 'p')).toEqual([]);
  });
});
