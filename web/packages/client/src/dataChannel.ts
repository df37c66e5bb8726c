// Data channels (PROTOCOL.md §3 `produceData`/`consumeData`): SCTP over the WebRTC transports, for
// messages that are not worth persisting and must not wait behind Socket.IO (reactions, cursors,
// game state). A LocalDataChannel outlives the transports: the client opens it again on every
// (re)join, like the local tracks.

import type { DataProducer } from 'mediasoup-client/types';

/** How a channel delivers (RTCDataChannelInit's fields, as mediasoup-client's produceData takes them). */
export type DataChannelOptions = {
  /** In order (the default) or as they arrive. */
  ordered?: boolean;
  /** Give up on a message not delivered within this many milliseconds (partial reliability, RFC 8831 §6.1). */
  maxPacketLifeTime?: number;
  /** Or give up after this many retransmissions. */
  maxRetransmits?: number;
  /** A subprotocol name the receivers see. */
  protocol?: string;
  /** Anything the others should see with the channel (the data producer's `appData`). */
  appData?: Record<string, unknown>;
};

/** A message that arrived on another participant's data channel. */
export type RemoteData = {
  /** Who sent it. */
  peerId: string;
  /** The sender's channel label. */
  label: string;
  dataProducerId: string;
  /** A string for text messages, binary ones as the browser's DataChannel gives them. */
  data: unknown;
};

/** One data channel this participant sends on; see {@link RoomClient.publishData}. */
export class LocalDataChannel {
  private producer: DataProducer | null = null;
  private closedByUser = false;

  /** @internal Made by RoomClient.publishData. */
  constructor(
    readonly label: string,
    readonly options: DataChannelOptions,
    private readonly onClose: (channel: LocalDataChannel) => void,
  ) {}

  /** Whether a message sent now goes out (the SCTP stream is open). */
  get open(): boolean {
    const producer = this.producer;
    return !!producer && !producer.closed && producer.readyState === 'open';
  }

  /** The server's id of the data producer of the current join; null while not joined. */
  get id(): string | null {
    return this.producer?.id ?? null;
  }

  get closed(): boolean {
    return this.closedByUser;
  }

  /** Send one message; false (and nothing sent) while the channel is not open, e.g. reconnecting. */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): boolean {
    const producer = this.producer;
    if (!this.open || !producer) return false;
    producer.send(data as Parameters<DataProducer['send']>[0]);
    return true;
  }

  /** Stop sending on this channel for good (the others get `data-producer-closed`). */
  close(): void {
    if (this.closedByUser) return;
    this.closedByUser = true;
    this.onClose(this);
    this.producer?.close();
    this.producer = null;
  }

  /** @internal The data producer of a new join, or null when its transport went. */
  attach(producer: DataProducer | null): void {
    this.producer = producer;
  }
}
