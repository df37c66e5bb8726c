// Socket.IO signaling (PROTOCOL.md §3): requests with acks, server events, one socket per attempt.

import { io, type Socket } from 'socket.io-client';

/** Every event the server sends (PROTOCOL.md §3); the client listens to each. */
export const SERVER_EVENTS = [
  'user-joined',
  'user-left',
  'new-producer',
  'producer-closed',
  'producer-paused',
  'producer-resumed',
  'consumer-closed',
  'consumer-paused',
  'consumer-resumed',
  'consumer-layers-changed',
  'chat',
  'active-speaker',
  'audio-mute',
  'video-mute',
  'raised-hand',
  'room-closed',
  'producer-layers-needed',
  'new-data-producer',
  'data-producer-closed',
  'data-consumer-closed',
  'recording-changed',
] as const;

export type ServerEventName = (typeof SERVER_EVENTS)[number];

const REQUEST_TIMEOUT_MS = 15000;
const CONNECT_TIMEOUT_MS = 10000;

/** A request the server refused (`code` from the contract: `not_found`, `room_full`, ...), or no answer
 * (`timeout`, `connect_error`); `details` holds the error's other fields (`url` of `wrong_node`). */
export class SignalingError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'SignalingError';
  }
}

type Ack = { ok: true; data?: unknown } | { ok: false; error?: { code?: string; message?: string } };

export type SignalingHandlers = {
  onEvent: (name: ServerEventName, data: unknown) => void;
  /** The socket dropped without close() being called; `reason` is Socket.IO's. */
  onDisconnect: (reason: string) => void;
};

/** One Socket.IO connection with the contract's requests and events; no reconnection of its own
 * (RoomClient makes a new one per attempt). */
export class Signaling {
  private socket: Socket | null = null;
  private closedByUs = false;
  private abortConnect: ((error: Error) => void) | null = null;

  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly handlers: SignalingHandlers,
  ) {}

  /** Connect once; a refused token rejects with code `unauthorized`. */
  connect(): Promise<void> {
    const socket = io(this.url, {
      path: '/socket.io',
      auth: { token: this.token },
      transports: ['websocket'],
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      forceNew: true,
    });
    this.socket = socket;
    for (const name of SERVER_EVENTS) {
      socket.on(name, (data: unknown) => this.handlers.onEvent(name, data));
    }
    return new Promise((resolve, reject) => {
      this.abortConnect = reject;
      socket.once('connect', () => {
        this.abortConnect = null;
        socket.on('disconnect', (reason) => {
          if (!this.closedByUs) this.handlers.onDisconnect(reason);
        });
        resolve();
      });
      socket.once('connect_error', (error: Error) => {
        this.abortConnect = null;
        socket.close();
        reject(
          error.message === 'unauthorized'
            ? new SignalingError('unauthorized', 'the token was refused')
            : new SignalingError('connect_error', error.message),
        );
      });
    });
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  /** Send `event` with an ack; resolves with `data`, rejects with SignalingError. */
  async request<T = Record<string, unknown>>(event: string, payload: unknown = {}): Promise<T> {
    const socket = this.socket;
    if (!socket?.connected) throw new SignalingError('connect_error', 'not connected');
    let ack: Ack;
    try {
      ack = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, payload);
    } catch {
      throw new SignalingError('timeout', `no answer to ${event}`);
    }
    if (ack && ack.ok) return (ack.data ?? {}) as T;
    const { code = 'error', message = '', ...details } = (ack && !ack.ok && ack.error) || {};
    throw new SignalingError(code, message, details);
  }

  close(): void {
    this.closedByUs = true;
    this.abortConnect?.(new SignalingError('closed', 'the connection was closed'));
    this.abortConnect = null;
    this.socket?.removeAllListeners();
    this.socket?.close();
    this.socket = null;
  }

  /** Drop the connection as a network failure would (for tests and the reconnect path). */
  simulateNetworkDrop(): void {
    this.socket?.io.engine?.close();
  }
}
