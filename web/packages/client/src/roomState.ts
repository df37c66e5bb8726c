// The room as a UI sees it: a reducer from join answers, server events and local changes to state.
// Pure: no sockets, no media objects (those live in RoomClient), so every transition is unit-tested.

import type { ServerEventName } from './signaling.js';

/** A chat message as the server stores and sends it (PROTOCOL.md §3 `chat`, §2 message history). */
export type ChatMessage = {
  id: string;
  roomId: string;
  peerId: string;
  userId: string;
  displayName: string;
  text: string;
  ts: string;
};

/** Another participant of the room (the join answer's `peers`, `user-joined`). */
export type PeerInfo = {
  peerId: string;
  userId: string;
  displayName: string;
  audioMuted: boolean;
  videoMuted: boolean;
  handRaised: boolean;
};

/** What a producer sends, from its `appData.source`. */
export type MediaSource = 'mic' | 'camera' | 'screen';

/** A producer of another participant (the join answer's `producers`, `new-producer`). */
export type ProducerInfo = {
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  /** What the sender attached: `source`, and for a camera its capture `height`. */
  appData?: { source?: MediaSource } & Record<string, unknown>;
};

/** The simulcast/SVC layers a consumer receives now (`consumer-layers-changed`); null: none. */
export type Layers = { spatialLayer: number | null; temporalLayer: number | null };

/** Media this participant receives: one consumer of another participant's producer. */
export type RemoteConsumer = {
  consumerId: string;
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  source: MediaSource;
  /** mediasoup's consumer type: `simulcast` ones take preferred layers. */
  type: string;
  /** The sender paused it (muted, camera off): no media flows. */
  producerPaused: boolean;
  layers: Layers | null;
};

/** Connection quality of a peer, from the loss and jitter of what is received from them (quality.ts). */
export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

/**
 * Where the call is: `connecting` (first join), `joined`, `reconnecting` (lost, joining again),
 * and the ends: `closed` (the owner deleted the room), `left` (leave()), `failed` (an error
 * another try cannot fix; `endedReason` says which).
 */
export type Status = 'connecting' | 'joined' | 'reconnecting' | 'closed' | 'left' | 'failed';

/** This participant's own choices, announced to the others on every (re)join. */
export type SelfState = {
  audioMuted: boolean;
  videoMuted: boolean;
  handRaised: boolean;
  screenSharing: boolean;
};

/** A data channel of another participant (the join answer's `dataProducers`, `new-data-producer`). */
export type DataProducerInfo = {
  dataProducerId: string;
  peerId: string;
  label: string;
  protocol: string;
  appData?: Record<string, unknown>;
};

/** The `join` answer (PROTOCOL.md §3), less the router's RTP capabilities. */
export type JoinData = {
  peerId: string;
  roomId: string;
  peers: PeerInfo[];
  producers: ProducerInfo[];
  /** The others' DataChannels (PROTOCOL.md §3); older servers leave it out. */
  dataProducers?: DataProducerInfo[];
};

/** Everything a UI shows of a room; immutable, a new object on every change (see roomReducer). */
export type RoomState = {
  status: Status;
  selfPeerId: string | null;
  self: SelfState;
  peers: Record<string, PeerInfo>;
  /** Peer ids in the order they joined (tiles keep their places). */
  peerOrder: string[];
  producers: Record<string, ProducerInfo>;
  consumers: Record<string, RemoteConsumer>;
  /** The peer id the server names loudest (`active-speaker`), ours included; null: nobody. */
  activeSpeaker: string | null;
  /** Chat, oldest first: the history loaded on join merged with live messages by id. */
  messages: ChatMessage[];
  /** Connection quality by peer id, from the stats of what we receive from them. */
  quality: Record<string, Quality>;
  /** A human message about something that went wrong; null when there is none to show. */
  error: string | null;
  /** Why the call ended, for the closed and failed states. */
  endedReason: string | null;
};

/** A transition of the room state: a server event, a join answer, a local change. */
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
  | { type: 'error'; message: string | null }
  | { type: 'left' }
  | { type: 'failed'; message: string };

/** The state before joining, with the chosen mute, camera and hand state. */
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
      // A room closed for a reason (its worker died) can be joined again: RoomClient does that.
      if (data.reason) return state;
      return { ...state, status: 'closed', consumers: {}, endedReason: 'The room was closed by its owner.' };
    case 'producer-layers-needed':
    case 'new-data-producer':
    case 'data-producer-closed':
    case 'data-consumer-closed':
      // DataChannels are RoomClient's; what arrives on them is its `data` event
      return state;
    case 'recording-changed': // recordings are a REST resource (docs/rest.md): the app follows them itself
      return state;
  }
}

/** The next state after `action`; the same object when nothing changed. Pure. */
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
    case 'error':
      return { ...state, error: action.message };
    case 'left':
      return { ...state, status: 'left', consumers: {}, activeSpeaker: null };
    case 'failed':
      return { ...state, status: 'failed', consumers: {}, endedReason: action.message };
  }
}
