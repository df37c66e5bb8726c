/**
 * The TypeScript client of Switchyard, a WebRTC SFU: join a room over the wire contract
 * (docs/PROTOCOL.md: Socket.IO signaling, mediasoup-client media), send camera, microphone and
 * screen (the camera as simulcast, its unwatched layers turned off by the server's
 * `producer-layers-needed`), receive the others, chat, data channels, active speaker, and
 * reconnection that rejoins by itself.
 *
 * Start with {@link RoomClient}; its state is a {@link RoomState}, made by {@link roomReducer}.
 *
 * @packageDocumentation
 */

export { RoomClient, FATAL_CODES, type RoomClientEvents } from './client.js';
export { LocalDataChannel, type DataChannelOptions, type RemoteData } from './dataChannel.js';
export { Emitter } from './events.js';
export type {
  LocalMedia,
  MediaTransforms,
  ReceiverInfo,
  RoomClientOptions,
  SenderInfo,
  TransportOptions,
} from './options.js';
export { qualityBetween, sampleOf, type ReceiveSample } from './quality.js';
export {
  Backoff,
  browserNetwork,
  RETRY_FIRST_MS,
  RETRY_MAX_MS,
  waitBeforeRetry,
  type NetworkWatch,
  type WaitOutcome,
} from './retry.js';
export {
  initialRoomState,
  mergeMessages,
  roomReducer,
  type ChatMessage,
  type DataProducerInfo,
  type JoinData,
  type Layers,
  type MediaSource,
  type PeerInfo,
  type ProducerInfo,
  type Quality,
  type RemoteConsumer,
  type RoomAction,
  type RoomState,
  type SelfState,
  type Status,
} from './roomState.js';
export { SERVER_EVENTS, Signaling, SignalingError, type ServerEventName, type SignalingHandlers } from './signaling.js';
export { CAMERA_ENCODINGS, cameraProducerOptions, layerForSize, maxLayerNeeded, type CameraCodec } from './simulcast.js';
