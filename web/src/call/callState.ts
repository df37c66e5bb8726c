// The call as the app shows it: the client package's room state (@switchyard/client's roomReducer)
// plus what only this app has, the emoji reactions floating over tiles; and the tiles of the grid.
// Pure, so every transition is unit-tested.

import { roomReducer, initialRoomState, type Quality, type RoomAction, type RoomState, type SelfState } from '@switchyard/client';

import { MAX_REACTIONS_PER_TILE, type Reaction } from './reactions';

export type CallState = RoomState & {
  /** Emoji floating over tiles now, oldest first (see reactions.ts). */
  reactions: Reaction[];
};

export type CallAction =
  | RoomAction
  | { type: 'reaction'; reaction: Reaction }
  | { type: 'reaction-expired'; id: number };

export function initialCallState(self: Partial<SelfState> = {}): CallState {
  return { ...initialRoomState(self), reactions: [] };
}

export function callReducer(state: CallState, action: CallAction): CallState {
  switch (action.type) {
    case 'reaction': {
      const { reaction } = action;
      if (reaction.peerId !== state.selfPeerId && !state.peers[reaction.peerId]) return state;
      const samePeer = state.reactions.filter((r) => r.peerId === reaction.peerId);
      const drop = new Set(samePeer.slice(0, Math.max(0, samePeer.length - MAX_REACTIONS_PER_TILE + 1)).map((r) => r.id));
      return { ...state, reactions: [...state.reactions.filter((r) => !drop.has(r.id)), reaction] };
    }
    case 'reaction-expired':
      if (!state.reactions.some((r) => r.id === action.id)) return state;
      return { ...state, reactions: state.reactions.filter((r) => r.id !== action.id) };
    default: {
      const { reactions, ...room } = state;
      const next = roomReducer(room, action);
      if (next === room) return state;
      // a peer who left takes their reactions along
      const kept = reactions.filter((r) => r.peerId === next.selfPeerId || next.peers[r.peerId]);
      return { ...next, reactions: kept.length === reactions.length ? reactions : kept };
    }
  }
}

// ---- what the grid shows ------------------------------------------------------------------------

export const MAX_TILES = 25;

export type Tile = {
  key: string;
  peerId: string;
  isSelf: boolean;
  source: 'camera' | 'screen';
  displayName: string;
  /** The remote video consumer shown; null for the own tile and for peers without video. */
  videoConsumerId: string | null;
  audioMuted: boolean;
  videoOff: boolean;
  handRaised: boolean;
  activeSpeaker: boolean;
  quality: Quality;
  /** Emoji floating over the tile (camera tiles only). */
  reactions: Reaction[];
};

/**
 * Tiles in display order: screen shares, then the own tile, then the others in join order.
 * Past MAX_TILES the active speaker takes the last place, so whoever talks is always seen.
 */
export function tilesOf(state: CallState, selfName: string, hasCamera: boolean): Tile[] {
  const videoConsumers = Object.values(state.consumers).filter((c) => c.kind === 'video');
  const screens: Tile[] = [];
  const cameras: Tile[] = [];
  const selfId = state.selfPeerId ?? 'self';
  if (state.self.screenSharing) {
    screens.push({
      key: 'self-screen',
      peerId: selfId,
      isSelf: true,
      source: 'screen',
      displayName: `${selfName} (your screen)`,
      videoConsumerId: null,
      audioMuted: true,
      videoOff: false,
      handRaised: false,
      activeSpeaker: false,
      quality: 'unknown',
      reactions: [],
    });
  }
  cameras.push({
    key: 'self',
    peerId: selfId,
    isSelf: true,
    source: 'camera',
    displayName: `${selfName} (you)`,
    videoConsumerId: null,
    audioMuted: state.self.audioMuted,
    videoOff: state.self.videoMuted || !hasCamera,
    handRaised: state.self.handRaised,
    activeSpeaker: state.activeSpeaker !== null && state.activeSpeaker === state.selfPeerId,
    quality: 'unknown',
    reactions: state.reactions.filter((r) => r.peerId === state.selfPeerId),
  });
  for (const peerId of state.peerOrder) {
    const peer = state.peers[peerId];
    if (!peer) continue;
    const camera = videoConsumers.find((c) => c.peerId === peerId && c.source !== 'screen');
    cameras.push({
      key: peerId,
      peerId,
      isSelf: false,
      source: 'camera',
      displayName: peer.displayName,
      videoConsumerId: camera?.consumerId ?? null,
      audioMuted: peer.audioMuted,
      videoOff: peer.videoMuted || !camera || camera.producerPaused,
      handRaised: peer.handRaised,
      activeSpeaker: state.activeSpeaker === peerId,
      quality: state.quality[peerId] ?? 'unknown',
      reactions: state.reactions.filter((r) => r.peerId === peerId),
    });
    for (const screen of videoConsumers.filter((c) => c.peerId === peerId && c.source === 'screen')) {
      screens.push({
        key: `screen-${screen.consumerId}`,
        peerId,
        isSelf: false,
        source: 'screen',
        displayName: `${peer.displayName} (screen)`,
        videoConsumerId: screen.consumerId,
        audioMuted: true,
        videoOff: screen.producerPaused,
        handRaised: false,
        activeSpeaker: false,
        quality: state.quality[peerId] ?? 'unknown',
        reactions: [],
      });
    }
  }
  const tiles = [...screens, ...cameras];
  if (tiles.length <= MAX_TILES) return tiles;
  const shown = tiles.slice(0, MAX_TILES);
  const speaker = tiles.findIndex((t) => t.activeSpeaker && t.source === 'camera');
  if (speaker >= MAX_TILES) shown[MAX_TILES - 1] = tiles[speaker];
  return shown;
}
