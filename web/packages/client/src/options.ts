// What a RoomClient is made with, and the seams where an app plugs in: ICE servers and policy for
// the transports (a TURN relay), and a hook on every RTP sender and receiver (encoded transforms,
// end-to-end encryption).

import type { DataProducerInfo, MediaSource, SelfState, ChatMessage } from './roomState.js';
import type { NetworkWatch } from './retry.js';
import type { CameraCodec } from './simulcast.js';

/** The tracks a participant sends from the start; either may be null (no device, or refused). */
export type LocalMedia = {
  mic: MediaStreamTrack | null;
  camera: MediaStreamTrack | null;
};

/**
 * How the WebRTC transports are set up (mediasoup-client's transport options).
 *
 * The `createWebRtcTransport` answer may carry `iceServers` (a TURN relay with credentials the
 * server minted); those come first, then the ones given here.
 */
export type TransportOptions = {
  /** More STUN/TURN servers for both transports. */
  iceServers?: RTCIceServer[];
  /** `relay` to use TURN only (a network that allows nothing else). Default `all`. */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Extra RTCPeerConnection configuration (e.g. `{encodedInsertableStreams: true}` for the
   * older insertable-streams API of encoded transforms). */
  additionalSettings?: Record<string, unknown>;
};

/** What a sender hook learns about the producer it is called for. */
export type SenderInfo = {
  source: MediaSource;
  kind: 'audio' | 'video';
  track: MediaStreamTrack;
};

/** What a receiver hook learns about the consumer it is called for. */
export type ReceiverInfo = {
  consumerId: string;
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  source: MediaSource;
};

/**
 * Hooks on the RTP senders and receivers, for WebRTC encoded transforms (`sender.transform =
 * new RTCRtpScriptTransform(worker, ...)`, e.g. end-to-end encryption).
 *
 * Both are synchronous and run the moment the RTCRtpSender or RTCRtpReceiver exists
 * (mediasoup-client's `onRtpSender` / `onRtpReceiver`), before any frame is encoded or received:
 * `sender` for every producer (on every join), `receiver` for every consumer. An error one throws
 * fails that produce or consume (shown as `state.error`); the call goes on.
 */
export type MediaTransforms = {
  sender?: (sender: RTCRtpSender, info: SenderInfo) => void;
  receiver?: (receiver: RTCRtpReceiver, info: ReceiverInfo) => void;
};

export type RoomClientOptions = {
  /** Base URL of the Switchyard node (Socket.IO at `/socket.io`, REST at `/api`). */
  url: string;
  /** A session token (`POST /api/auth/guest`, `/login`, `/register`). */
  token: string;
  roomId: string;
  /** The name the others see. */
  displayName: string;
  /** Tracks to send from the start; more later with {@link RoomClient.startScreenShare}. */
  media?: LocalMedia;
  /** Join muted, with the camera off or a hand raised. */
  self?: Partial<SelfState>;
  /** The chat history on (re)join; default: `GET {url}/api/rooms/{roomId}/messages?limit=50`. */
  loadHistory?: (roomId: string) => Promise<ChatMessage[]>;
  /** Turns an error into the text of `error` and `failed` actions; default: its message. */
  describeError?: (error: unknown) => string;
  /** The camera's encodings: default three VP8 simulcast layers (see {@link CAMERA_ENCODINGS}). */
  camera?: {
    /** One SVC encoding of this codec instead, when the browser and router have it. */
    codec?: CameraCodec | null;
  };
  transport?: TransportOptions;
  transforms?: MediaTransforms;
  /** Which of the others' data channels to receive; default all. */
  acceptData?: (info: DataProducerInfo) => boolean;
  /** Online/offline signals; default the browser's `navigator.onLine` and window events. */
  network?: NetworkWatch;
};
