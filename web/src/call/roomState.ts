// The room as the UI sees it: a reducer from join answers, server events and local changes to state.
// Pure: no sockets, no media objects (those live in Call), so every transition is unit-tested.

import type { ChatMessage } from '../api';
import { MAX_REACTIONS_PER_TILE, type Reaction } from './reactions';
import type { ServerEventName } from './signaling';

export type PeerInfo = {
  peerId: string;
  userId: string;
  displayName: string;
  audioMuted: boolean;
  videoMuted: boolean;
  handRaised: boolean;
};

export type MediaSource = 'mic' | 'camera' | 'screen';

export type ProducerInfo = {
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  appData?: { source?: MediaSource } & Record<string, unknown>;
};

export type Layers = { spatialLayer: number | null; temporalLayer: number | null };

export type RemoteConsumer = {
  consumerId: string;
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  source: MediaSource;
  /** mediasoup's consumer type: `simulcast` ones take preferred layers. */
  type: string;
  producerPaused: boolean;
  layers: Layers | null;
};

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

export type Status = 'connecting' | 'joined' | 'reconnecting' | 'closed' | 'left' | 'failed';

export type SelfState = {
  audioMuted: boolean;
  videoMuted: boolean;
  handRaised: boolean;
  screenSharing: boolean;
};

export type DataProducerInfo = {
  dataProducerId: string;
  peerId: string;
  label: string;
  protocol: string;
  appData?: Record<string, unknown>;
};

export type JoinData = {
  peerId: string;
  roomId: string;
  peers: PeerInfo[];
  producers: ProducerInfo[];
  /** The others' DataChannels (PROTOCOL.md §3); older servers leave it out. */
  dataProducers?: DataProducerInfo[];
};

export type RoomState = {
  status: Status;
  selfPeerId: string | null;
  self: SelfState;
  peers: Record<string, PeerInfo>;
  /** Peer ids in the order they joined (tiles keep their places). */
  peerOrder: string[];
  producers: Record<string, ProducerInfo>;
  consumers: Record<string, RemoteConsumer>;
  activeSpeaker: string | null;
  messages: ChatMessage[];
  /** Connection quality by peer id, from the stats of what we receive from them. */
  quality: Record<string, Quality>;
  /** A human message about something that went wrong; null when there is none to show. */
  error: string | null;
  /** Why the call ended, for the closed and failed states. */
  endedReason: string | null;
  /** Emoji floating over tiles now, oldest first (see reactions.ts). */
  reactions: Reaction[];
};

export type RoomAction =
  | { type: 'connecting' }
  | { type: 'joined'; data: JoinData }
  | { type: 'reconnecting' }
  | { type: 'server'; event: ServerEventName; data: unknown }
  | { type: 'consumer-added'; consumer: RemoteConsumer }
  | { type: 'consumer-removed'; consumerId: string }
  | { type: 'history'; messages: ChatMessage[] }
  | { type: 'chat-sent'; message: ChatMessage }
  | { type: 'self'; patch: Partial<SelfState> }
  | { type: 'quality'; peerId: string; quality: Quality }
  | { type: 'reaction'; reaction: Reaction }
  | { type: 'reaction-expired'; id: number }
  | { type: 'error'; message: string | null }
  | { type: 'left' }
  | { type: 'failed'; message: string };

export function initialRoomState(self: Partial<SelfState> = {}): RoomState {
  return {
    status: 'connecting',
    selfPeerId: null,
    self: { audioMuted: false, videoMuted: false, handRaised: false, screenSharing: false, ...self },
    peers: {},
    peerOrder: [],
    producers: {},
    consumers: {},
    activeSpeaker: null,
    messages: [],
    quality: {},
    error: null,
    endedReason: null,
    reactions: [],
  };
}

/** Chat messages merged by id, oldest first (history and live events may overlap). */
export function mergeMessages(current: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  const byId = new Map(current.map((m) => [m.id, m]));
  let changed = false;
  for (const message of incoming) {
    if (!byId.has(message.id)) {
      byId.set(message.id, message);
      changed = true;
    }
  }
  if (!changed) return current;
  return [...byId.values()].sort((a, b) => (a.ts === b.ts ? a.id.localeCompare(b.id) : a.ts < b.ts ? -1 : 1));
}

function without<T>(record: Record<string, T>, keep: (value: T, key: string) => boolean): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [key, value] of Object.entries(record)) if (keep(value, key)) out[key] = value;
  return out;
}

function patchPeer(state: RoomState, peerId: string, patch: Partial<PeerInfo>): RoomState {
  const peer = state.peers[peerId];
  if (!peer) return state;
  return { ...state, peers: { ...state.peers, [peerId]: { ...peer, ...patch } } };
}

function patchConsumers(
  state: RoomState,
  match: (c: RemoteConsumer) => boolean,
  patch: Partial<RemoteConsumer>,
): RoomState {
  let changed = false;
  const consumers: Record<string, RemoteConsumer> = {};
  for (const [id, consumer] of Object.entries(state.consumers)) {
    if (match(consumer)) {
      consumers[id] = { ...consumer, ...patch };
      changed = true;
    } else {
      consumers[id] = consumer;
    }
  }
  return changed ? { ...state, consumers } : state;
}

function serverEvent(state: RoomState, event: ServerEventName, payload: unknown): RoomState {
  const data = (payload ?? {}) as Record<string, unknown>;
  const peerId = data.peerId as string;
  switch (event) {
    case 'user-joined': {
      const peer = payload as PeerInfo;
      if (peer.peerId === state.selfPeerId) return state;
      return {
        ...state,
        peers: { ...state.peers, [peer.peerId]: peer },
        peerOrder: state.peerOrder.includes(peer.peerId) ? state.peerOrder : [...state.peerOrder, peer.peerId],
      };
    }
    case 'user-left': {
      if (!state.peers[peerId]) return state;
      return {
        ...state,
        peers: without(state.peers, (_, id) => id !== peerId),
        peerOrder: state.peerOrder.filter((id) => id !== peerId),
        producers: without(state.producers, (p) => p.peerId !== peerId),
        consumers: without(state.consumers, (c) => c.peerId !== peerId),
        quality: without(state.quality, (_, id) => id !== peerId),
        reactions: state.reactions.filter((r) => r.peerId !== peerId),
        activeSpeaker: state.activeSpeaker === peerId ? null : state.activeSpeaker,
      };
    }
    case 'new-producer': {
      const producer = payload as ProducerInfo;
      return { ...state, producers: { ...state.producers, [producer.producerId]: producer } };
    }
    case 'producer-closed': {
      const producerId = data.producerId as string;
      return {
        ...state,
        producers: without(state.producers, (_, id) => id !== producerId),
        consumers: without(state.consumers, (c) => c.producerId !== producerId),
      };
    }
    case 'producer-paused':
    case 'producer-resumed':
      return patchConsumers(state, (c) => c.producerId === data.producerId, {
        producerPaused: event === 'producer-paused',
      });
    case 'consumer-closed':
      return { ...state, consumers: without(state.consumers, (_, id) => id !== data.consumerId) };
    case 'consumer-paused':
    case 'consumer-resumed':
      return patchConsumers(state, (c) => c.consumerId === data.consumerId, {
        producerPaused: event === 'consumer-paused',
      });
    case 'consumer-layers-changed':
      return patchConsumers(state, (c) => c.consumerId === data.consumerId, {
        layers: {
          spatialLayer: (data.spatialLayer as number | null) ?? null,
          temporalLayer: (data.temporalLayer as number | null) ?? null,
        },
      });
    case 'chat':
      return { ...state, messages: mergeMessages(state.messages, [payload as ChatMessage]) };
    case 'active-speaker':
      return { ...state, activeSpeaker: (data.peerId as string | null) ?? null };
    case 'audio-mute':
      return patchPeer(state, peerId, { audioMuted: Boolean(data.muted) });
    case 'video-mute':
      return patchPeer(state, peerId, { videoMuted: Boolean(data.muted) });
    case 'raised-hand':
      return patchPeer(state, peerId, { handRaised: Boolean(data.raised) });
    case 'room-closed':
      // A room closed for a reason (its worker died) can be joined again: Call does that.
      if (data.reason) return state;
      return { ...state, status: 'closed', consumers: {}, endedReason: 'The room was closed by its owner.' };
    case 'producer-layers-needed':
    case 'new-data-producer':
    case 'data-producer-closed':
    case 'data-consumer-closed':
      // DataChannels are Call's; what arrives on them comes back as `reaction` actions
      return state;
    case 'recording-changed': // CallView keeps the recording state (components/RecordingControl.tsx)
      return state;
  }
}

export function roomReducer(state: RoomState, action: RoomAction): RoomState {
  switch (action.type) {
    case 'connecting':
      return { ...state, status: 'connecting', error: null };
    case 'joined': {
      const { data } = action;
      const others = data.peers.filter((p) => p.peerId !== data.peerId);
      return {
        ...state,
        status: 'joined',
        selfPeerId: data.peerId,
        peers: Object.fromEntries(others.map((p) => [p.peerId, p])),
        peerOrder: others.map((p) => p.peerId),
        producers: Object.fromEntries(data.producers.map((p) => [p.producerId, p])),
        consumers: {},
        quality: {},
        activeSpeaker: null,
        error: null,
        endedReason: null,
      };
    }
    case 'reconnecting':
      if (state.status === 'closed' || state.status === 'left' || state.status === 'failed') return state;
      return { ...state, status: 'reconnecting', consumers: {}, activeSpeaker: null, quality: {} };
    case 'server':
      return serverEvent(state, action.event, action.data);
    case 'consumer-added': {
      const { consumer } = action;
      // The producer (or its peer) may have gone while the consumer was being made.
      if (!state.peers[consumer.peerId] || !state.producers[consumer.producerId]) return state;
      return { ...state, consumers: { ...state.consumers, [consumer.consumerId]: consumer } };
    }
    case 'consumer-removed':
      return { ...state, consumers: without(state.consumers, (_, id) => id !== action.consumerId) };
    case 'history':
      return { ...state, messages: mergeMessages(state.messages, action.messages) };
    case 'chat-sent':
      return { ...state, messages: mergeMessages(state.messages, [action.message]) };
    case 'self':
      return { ...state, self: { ...state.self, ...action.patch } };
    case 'quality':
      if (!state.peers[action.peerId] || state.quality[action.peerId] === action.quality) return state;
      return { ...state, quality: { ...state.quality, [action.peerId]: action.quality } };
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
    case 'error':
      return { ...state, error: action.message };
    case 'left':
      return { ...state, status: 'left', consumers: {}, activeSpeaker: null };
    case 'failed':
      return { ...state, status: 'failed', consumers: {}, endedReason: action.message };
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
export function tilesOf(state: RoomState, selfName: string, hasCamera: boolean): Tile[] {
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
