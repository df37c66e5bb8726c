// One participant in one room: signaling, the mediasoup-client Device, transports, producers,
// consumers and data channels. It turns server events into RoomActions (roomState.ts), keeps the
// resulting RoomState, and keeps the call alive: a dropped socket, a failed ICE connection, the
// browser going offline or a room lost with its worker (`room-closed` with a reason) all lead to a
// fresh connect + join with the same local tracks and data channels, until leave().

import { Device } from 'mediasoup-client';
import type { Consumer, DataConsumer, Producer, ProducerOptions, Transport } from 'mediasoup-client/types';

import { LocalDataChannel, type DataChannelOptions, type RemoteData } from './dataChannel.js';
import { Emitter } from './events.js';
import type { LocalMedia, RoomClientOptions } from './options.js';
import { qualityBetween, sampleOf, type ReceiveSample } from './quality.js';
import { Backoff, browserNetwork, waitBeforeRetry, type NetworkWatch } from './retry.js';
import {
  initialRoomState,
  roomReducer,
  type ChatMessage,
  type DataProducerInfo,
  type JoinData,
  type MediaSource,
  type ProducerInfo,
  type RemoteConsumer,
  type RoomAction,
  type RoomState,
  type SelfState,
} from './roomState.js';
import { Signaling, SignalingError, type ServerEventName } from './signaling.js';
import { cameraProducerOptions } from './simulcast.js';
import { createTransport } from './transport.js';

/** The events of a RoomClient: every state transition, its resulting state, and data messages. */
export type RoomClientEvents = {
  /** Each transition, as the reducer gets it (an app with a reducer of its own follows these). */
  action: RoomAction;
  /** The room state after each action. */
  state: RoomState;
  /** A message on another participant's data channel. */
  data: RemoteData;
};

type JoinAnswer = JoinData & { routerRtpCapabilities: Parameters<Device['load']>[0]['routerRtpCapabilities'] };

type ConsumeAnswer = {
  id: string;
  producerId: string;
  kind: 'audio' | 'video';
  rtpParameters: Parameters<Transport['consume']>[0]['rtpParameters'];
  type: string;
  producerPaused: boolean;
};

type ConsumeDataAnswer = {
  id: string;
  dataProducerId: string;
  sctpStreamParameters: Parameters<Transport['consumeData']>[0]['sctpStreamParameters'];
  label: string;
  protocol: string;
  appData: Record<string, unknown>;
};

/** Error codes that another attempt will not fix: the call ends (`failed`) instead of retrying. */
export const FATAL_CODES: ReadonlySet<string> = new Set(['unauthorized', 'not_found', 'room_full', 'forbidden', 'invalid_input']);
const MAX_REDIRECTS = 3;
/** How long ICE may stay `disconnected` before the call reconnects. */
const ICE_GRACE_MS = 6000;
const STATS_INTERVAL_MS = 2000;

function defaultDescribe(error: unknown): string {
  if (error instanceof Error && error.message) return error.message;
  return String(error);
}

/**
 * A participant of a Switchyard room.
 *
 * ```ts
 * const client = new RoomClient({ url, token, roomId, displayName: 'Ada', media: { mic, camera } });
 * client.on('state', (state) => render(state));
 * await client.join();
 * video.srcObject = new MediaStream([client.remoteTrack(consumerId)!]);
 * ```
 */
export class RoomClient extends Emitter<RoomClientEvents> {
  // The browser tests read `signaling`, `consumers` and `preferredLayers` through window.switchyard
  // (tests/browser/test_svc.py, test_temporal.py): private to TypeScript users, not to them.
  private signaling: Signaling | null = null;
  private device: Device | null = null;
  private sendTransport: Transport | null = null;
  private recvTransport: Transport | null = null;
  private readonly producers = new Map<MediaSource, Producer>();
  private readonly consumers = new Map<string, Consumer>();
  private readonly consumerPeers = new Map<string, string>();
  private readonly consumedProducers = new Set<string>();
  private readonly closedConsumers = new Set<string>();
  private readonly preferredLayers = new Map<string, number>();
  private readonly qualitySamples = new Map<string, ReceiveSample>();
  private readonly dataChannels = new Map<string, LocalDataChannel>();
  private readonly dataConsumers = new Map<string, DataConsumer>();
  private readonly dataConsumerPeers = new Map<string, string>();
  private selfPeerId: string | null = null;
  /** Events that arrive while joining wait here until the join answer is applied. */
  private buffered: Array<[ServerEventName, unknown]> | null = null;
  /** Bumped by every teardown: callbacks of an older attempt see a different number and stop. */
  private attempt = 0;
  private url: string;
  private self: SelfState;
  private roomState: RoomState;
  private readonly media: LocalMedia;
  private readonly network: NetworkWatch;
  private readonly describe: (error: unknown) => string;
  private screenTrack: MediaStreamTrack | null = null;
  private ended = false;
  private started = false;
  private reconnecting = false;
  private iceTimer: ReturnType<typeof setTimeout> | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private stopOfflineWatch: (() => void) | null = null;
  /** Listeners of leave(): a retry that waits ends at once. */
  private readonly onEnd = new Set<() => void>();

  constructor(private readonly options: RoomClientOptions) {
    super();
    this.url = options.url;
    this.media = options.media ?? { mic: null, camera: null };
    this.network = options.network ?? browserNetwork;
    this.describe = options.describeError ?? defaultDescribe;
    this.roomState = initialRoomState(options.self);
    this.self = { ...this.roomState.self };
  }

  /** The room as it is now (also delivered by the `state` event). */
  get state(): RoomState {
    return this.roomState;
  }

  /** Apply an action to the state and tell the listeners (an ended call only says how it ended). */
  private dispatch(action: RoomAction, evenIfEnded = false): void {
    if (this.ended && !evenIfEnded) return;
    this.roomState = roomReducer(this.roomState, action);
    this.emit('action', action);
    this.emit('state', this.roomState);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /**
   * Connect and join, retrying until it works, the error is one retrying cannot fix (the state
   * becomes `failed`), or {@link leave}. Resolves then; the state says which.
   */
  async join(): Promise<void> {
    if (this.started) throw new Error('join() was called twice: make a new RoomClient to join again');
    this.started = true;
    this.dispatch({ type: 'connecting' });
    // The browser says the network is gone (a phone between networks): reconnect at once rather
    // than wait for a socket that may take a minute to notice.
    this.stopOfflineWatch = this.network.onOffline?.(() => this.connectionLost('the browser went offline')) ?? null;
    // a loss while the first join is under way is that loop's to retry, not a second loop's
    this.reconnecting = true;
    await this.connectUntilJoined();
    this.reconnecting = false;
    if (!this.ended) this.statsTimer = setInterval(() => void this.sampleQuality(), STATS_INTERVAL_MS);
  }

  /** Leave the room and close everything but the local tracks (the caller's to stop). */
  async leave(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.stopWatching();
    try {
      await this.signaling?.request('leave');
    } catch {
      // leaving a room the server already dropped us from is still leaving
    }
    this.teardown();
    this.screenTrack?.stop();
    this.screenTrack = null;
    this.dispatch({ type: 'left' }, true);
  }

  /** Stop the retries, the timers and the network watch; the call is over. */
  private stopWatching(): void {
    this.stopOfflineWatch?.();
    this.stopOfflineWatch = null;
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    for (const listener of [...this.onEnd]) listener();
    this.onEnd.clear();
  }

  private async connectUntilJoined(): Promise<void> {
    const backoff = new Backoff();
    while (!this.ended) {
      try {
        await this.connectAndJoin(this.url, 0);
        return;
      } catch (error) {
        this.teardown();
        if (this.ended) return;
        // a node we were redirected to may be gone: the first node knows who hosts the room now
        this.url = this.options.url;
        const code = error instanceof SignalingError ? error.code : undefined;
        if (code && FATAL_CODES.has(code)) {
          this.end(this.describe(error));
          return;
        }
        console.warn('switchyard: join failed, retrying', error);
        this.dispatch({ type: 'reconnecting' });
        const outcome = await waitBeforeRetry(backoff.next(), this.network, {
          cancelled: () => this.ended,
          onCancel: (listener) => {
            this.onEnd.add(listener);
            return () => this.onEnd.delete(listener);
          },
        });
        // a network that just came back deserves a quick try, and quick ones after it
        if (outcome === 'online') backoff.reset();
      }
    }
  }

  /** The call cannot go on: stop everything and say why. */
  private end(message: string): void {
    this.teardown();
    this.ended = true;
    this.stopWatching();
    this.dispatch({ type: 'failed', message }, true);
  }

  private connectionLost(reason: string): void {
    if (this.ended || this.reconnecting || !this.started) return;
    console.warn(`switchyard: connection lost (${reason}); reconnecting`);
    this.reconnecting = true;
    this.teardown();
    this.dispatch({ type: 'reconnecting' });
    void this.connectUntilJoined().finally(() => {
      this.reconnecting = false;
    });
  }

  /** Close the socket and every transport; local tracks and data channels stay for the next attempt. */
  private teardown(): void {
    this.attempt++;
    if (this.iceTimer) clearTimeout(this.iceTimer);
    this.iceTimer = null;
    this.buffered = null;
    this.signaling?.close();
    this.signaling = null;
    this.sendTransport?.close();
    this.recvTransport?.close();
    this.sendTransport = null;
    this.recvTransport = null;
    this.producers.clear();
    this.consumers.clear();
    this.consumerPeers.clear();
    this.consumedProducers.clear();
    this.closedConsumers.clear();
    this.preferredLayers.clear();
    this.qualitySamples.clear();
    for (const channel of this.dataChannels.values()) channel.attach(null);
    this.dataConsumers.clear();
    this.dataConsumerPeers.clear();
  }

  private async connectAndJoin(url: string, redirects: number): Promise<void> {
    const attempt = ++this.attempt;
    const current = () => attempt === this.attempt && !this.ended;
    this.buffered = [];
    const signaling = new Signaling(url, this.options.token, {
      onEvent: (name, data) => {
        if (current()) this.onServerEvent(name, data);
      },
      onDisconnect: (reason) => {
        if (current()) this.connectionLost(`signaling ${reason}`);
      },
    });
    this.signaling = signaling;
    await signaling.connect();

    let joined: JoinAnswer;
    try {
      joined = await signaling.request<JoinAnswer>('join', {
        roomId: this.options.roomId,
        displayName: this.options.displayName,
      });
    } catch (error) {
      // With Redis, another node hosts the room: go there and join again (PROTOCOL.md §3).
      const target = error instanceof SignalingError && error.code === 'wrong_node' ? error.details.url : null;
      if (typeof target === 'string' && target && redirects < MAX_REDIRECTS) {
        signaling.close();
        this.url = target;
        return this.connectAndJoin(target, redirects + 1);
      }
      throw error;
    }
    if (!current()) return;

    if (!this.device) {
      const device = new Device();
      await device.load({ routerRtpCapabilities: joined.routerRtpCapabilities });
      this.device = device;
    }
    this.sendTransport = await this.watchedTransport(signaling, 'send', attempt);
    this.recvTransport = await this.watchedTransport(signaling, 'recv', attempt);
    if (!current()) return;

    this.selfPeerId = joined.peerId;
    this.dispatch({ type: 'joined', data: joined });
    const waiting = this.buffered ?? [];
    this.buffered = null;

    this.loadHistory()
      .then((messages) => current() && this.dispatch({ type: 'history', messages }))
      .catch(() => current() && this.dispatch({ type: 'error', message: 'The chat history could not be loaded.' }));

    await Promise.all(joined.producers.map((producer) => this.consume(producer, attempt)));
    await Promise.all((joined.dataProducers ?? []).map((info) => this.consumeData(info, attempt)));
    for (const [name, data] of waiting) this.onServerEvent(name, data);
    await this.produceLocalMedia(attempt);
    for (const channel of this.dataChannels.values()) await this.openDataChannel(channel, attempt);
    await this.announceSelf(signaling);
  }

  private loadHistory(): Promise<ChatMessage[]> {
    if (this.options.loadHistory) return this.options.loadHistory(this.options.roomId);
    const url = new URL(`/api/rooms/${encodeURIComponent(this.options.roomId)}/messages?limit=50`, this.options.url);
    return fetch(url, { headers: { Authorization: `Bearer ${this.options.token}` } }).then(async (response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return ((await response.json()) as { messages: ChatMessage[] }).messages;
    });
  }

  private async watchedTransport(signaling: Signaling, direction: 'send' | 'recv', attempt: number): Promise<Transport> {
    const transport = await createTransport(this.device!, signaling, direction, this.options.transport);
    transport.on('connectionstatechange', (state) => {
      if (attempt !== this.attempt) return;
      if (state === 'connected') {
        if (this.iceTimer) clearTimeout(this.iceTimer);
        this.iceTimer = null;
      } else if (state === 'failed') {
        this.connectionLost(`ICE ${direction} failed`);
      } else if (state === 'disconnected' && !this.iceTimer) {
        this.iceTimer = setTimeout(() => {
          this.iceTimer = null;
          if (attempt === this.attempt && transport.connectionState !== 'connected') {
            this.connectionLost(`ICE ${direction} disconnected`);
          }
        }, ICE_GRACE_MS);
      }
    });
    return transport;
  }

  // ---- sending -----------------------------------------------------------------------------------

  private async produceLocalMedia(attempt: number): Promise<void> {
    const { mic, camera } = this.media;
    if (mic && mic.readyState === 'live') await this.produce('mic', mic, attempt);
    if (camera && camera.readyState === 'live') await this.produce('camera', camera, attempt);
    if (this.screenTrack && this.screenTrack.readyState === 'live') await this.produce('screen', this.screenTrack, attempt);
  }

  private async produce(source: MediaSource, track: MediaStreamTrack, attempt: number): Promise<void> {
    const transport = this.sendTransport;
    if (!transport || attempt !== this.attempt) return;
    let producer: Producer | null = null;
    try {
      const parameters: ProducerOptions =
        source === 'camera'
          ? cameraProducerOptions(track, this.device?.rtpCapabilities.codecs ?? [], this.options.camera?.codec)
          : { track, stopTracks: false, appData: { source } };
      const hook = this.options.transforms?.sender;
      // called by mediasoup-client as soon as the RTCRtpSender exists, before any frame is encoded
      if (hook) parameters.onRtpSender = (sender) => hook(sender, { source, kind: track.kind as 'audio' | 'video', track });
      producer = await transport.produce(parameters);
      if (attempt !== this.attempt) return;
      this.producers.set(source, producer);
      if (source === 'screen') producer.on('trackended', () => void this.stopScreenShare());
      // read now, not before producing: the person may have muted while the producer was made
      const paused = source === 'mic' ? this.self.audioMuted : source === 'camera' ? this.self.videoMuted : false;
      if (paused) {
        producer.pause();
        await this.signaling?.request('pauseProducer', { producerId: producer.id });
      }
    } catch (error) {
      if (attempt !== this.attempt) return;
      if (producer && !this.producers.has(source)) {
        producer.close();
        void this.signaling?.request('closeProducer', { producerId: producer.id }).catch(() => undefined);
      }
      this.dispatch({ type: 'error', message: `Could not send your ${source}: ${this.describe(error)}` });
    }
  }

  /** Tell the others the mute and hand state this person joined (or rejoined) with. */
  private async announceSelf(signaling: Signaling): Promise<void> {
    const videoOff = this.self.videoMuted || !this.media.camera;
    if (this.self.audioMuted || !this.media.mic) await signaling.request('audio-mute', { muted: true });
    if (videoOff) await signaling.request('video-mute', { muted: true });
    if (this.self.handRaised) await signaling.request('raise-hand', { raised: true });
  }

  private setSelf(patch: Partial<SelfState>): void {
    this.self = { ...this.self, ...patch };
    this.dispatch({ type: 'self', patch });
  }

  /** Run a request of a control; a failure is shown, and a call that is reconnecting sends it on rejoin. */
  private async control(run: (signaling: Signaling) => Promise<unknown>): Promise<void> {
    const signaling = this.signaling;
    if (!signaling || this.buffered || !signaling.connected) return;
    try {
      await run(signaling);
    } catch (error) {
      this.dispatch({ type: 'error', message: this.describe(error) });
    }
  }

  /** Mute or unmute the microphone: its producer pauses, and the others get `audio-mute`. */
  async setMicMuted(muted: boolean): Promise<void> {
    this.setSelf({ audioMuted: muted });
    await this.pauseSource('mic', muted);
    await this.control((s) => s.request('audio-mute', { muted }));
  }

  /** Turn the camera off or on: its producer pauses, and the others get `video-mute`. */
  async setCameraOff(off: boolean): Promise<void> {
    this.setSelf({ videoMuted: off });
    await this.pauseSource('camera', off);
    await this.control((s) => s.request('video-mute', { muted: off }));
  }

  private async pauseSource(source: MediaSource, paused: boolean): Promise<void> {
    const producer = this.producers.get(source);
    if (!producer) return;
    if (paused) producer.pause();
    else producer.resume();
    await this.control((s) => s.request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id }));
  }

  async setHandRaised(raised: boolean): Promise<void> {
    this.setSelf({ handRaised: raised });
    await this.control((s) => s.request('raise-hand', { raised }));
  }

  /**
   * Share the screen: `track` if given, else the browser's picker (`getDisplayMedia`). A refused
   * picker is not an error; the share stops by itself when the track ends.
   */
  async startScreenShare(track?: MediaStreamTrack): Promise<void> {
    if (this.screenTrack) return;
    if (!track) {
      let stream: MediaStream;
      try {
        stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
      } catch (error) {
        if ((error as Error).name !== 'NotAllowedError') this.dispatch({ type: 'error', message: this.describe(error) });
        return;
      }
      track = stream.getVideoTracks()[0];
    }
    track.contentHint = 'detail';
    this.screenTrack = track;
    track.addEventListener('ended', () => void this.stopScreenShare());
    this.setSelf({ screenSharing: true });
    await this.produce('screen', track, this.attempt);
  }

  async stopScreenShare(): Promise<void> {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.setSelf({ screenSharing: false });
    const producer = this.producers.get('screen');
    if (!producer) return;
    this.producers.delete('screen');
    producer.close();
    await this.control((s) => s.request('closeProducer', { producerId: producer.id }));
  }

  /** Send a chat message (persisted by the server); false when not connected or refused (see `error`). */
  async sendChat(text: string): Promise<boolean> {
    const signaling = this.signaling;
    if (!signaling?.connected || this.buffered) {
      this.dispatch({ type: 'error', message: 'Not connected: the message was not sent.' });
      return false;
    }
    try {
      const { message } = await signaling.request<{ message: ChatMessage }>('chat', { text });
      this.dispatch({ type: 'chat-sent', message });
      return true;
    } catch (error) {
      this.dispatch({ type: 'error', message: this.describe(error) });
      return false;
    }
  }

  /** Dynacast: turn off the simulcast encodings nobody consumes (`producer-layers-needed`, PROTOCOL.md §4). */
  private async applyLayersNeeded(producerId: string, spatialLayers: number[]): Promise<void> {
    const producer = [...this.producers.values()].find((p) => p.id === producerId);
    const sender = producer?.rtpSender;
    if (!producer || !sender || producer.closed) return;
    const parameters = sender.getParameters();
    if (parameters.encodings.length < 2) return;
    parameters.encodings.forEach((encoding, index) => {
      encoding.active = spatialLayers.includes(index);
    });
    try {
      await sender.setParameters(parameters);
    } catch (error) {
      console.warn('switchyard: could not change the simulcast encodings', error);
    }
  }

  // ---- data channels -----------------------------------------------------------------------------

  /**
   * Open a data channel the others receive (their `data` event); it is opened again on every
   * rejoin until its close(). One channel per label.
   */
  publishData(label: string, options: DataChannelOptions = {}): LocalDataChannel {
    if (this.dataChannels.has(label)) throw new Error(`a data channel labelled "${label}" is already published`);
    const channel = new LocalDataChannel(label, options, (closed) => {
      this.dataChannels.delete(closed.label);
      const id = closed.id;
      if (id) void this.control((s) => s.request('closeDataProducer', { dataProducerId: id }));
    });
    this.dataChannels.set(label, channel);
    if (this.sendTransport && !this.buffered) void this.openDataChannel(channel, this.attempt);
    return channel;
  }

  private async openDataChannel(channel: LocalDataChannel, attempt: number): Promise<void> {
    const transport = this.sendTransport;
    if (!transport || attempt !== this.attempt || channel.closed) return;
    try {
      const { ordered, maxPacketLifeTime, maxRetransmits, protocol, appData } = channel.options;
      const producer = await transport.produceData({
        label: channel.label,
        ...(ordered !== undefined ? { ordered } : {}),
        ...(maxPacketLifeTime !== undefined ? { maxPacketLifeTime } : {}),
        ...(maxRetransmits !== undefined ? { maxRetransmits } : {}),
        ...(protocol !== undefined ? { protocol } : {}),
        ...(appData !== undefined ? { appData } : {}),
      });
      if (attempt !== this.attempt || channel.closed) {
        producer.close();
        return;
      }
      channel.attach(producer);
    } catch (error) {
      // the call goes on without this channel (a server without DataChannels)
      console.warn(`switchyard: no data channel "${channel.label}"`, error);
    }
  }

  private async consumeData(info: DataProducerInfo, attempt: number): Promise<void> {
    const signaling = this.signaling;
    const transport = this.recvTransport;
    if (!signaling || !transport || info.peerId === this.selfPeerId) return;
    if (this.options.acceptData && !this.options.acceptData(info)) return;
    try {
      const answer = await signaling.request<ConsumeDataAnswer>('consumeData', {
        dataProducerId: info.dataProducerId,
        transportId: transport.id,
      });
      if (attempt !== this.attempt) return;
      const consumer = await transport.consumeData({
        id: answer.id,
        dataProducerId: answer.dataProducerId,
        sctpStreamParameters: answer.sctpStreamParameters,
        label: answer.label,
        protocol: answer.protocol,
      });
      if (attempt !== this.attempt) {
        consumer.close();
        return;
      }
      consumer.on('message', (data: unknown) => {
        if (attempt === this.attempt && !this.ended) {
          this.emit('data', { peerId: info.peerId, label: info.label, dataProducerId: info.dataProducerId, data });
        }
      });
      this.dataConsumers.set(consumer.id, consumer);
      this.dataConsumerPeers.set(consumer.id, info.peerId);
    } catch (error) {
      if (attempt !== this.attempt) return;
      // a data producer that closed while we asked for it is not an error worth showing
      if (!(error instanceof SignalingError && error.code === 'not_found')) {
        console.warn('switchyard: could not receive a data channel', error);
      }
    }
  }

  private closeDataConsumer(dataConsumerId: string): void {
    this.dataConsumers.get(dataConsumerId)?.close();
    this.dataConsumers.delete(dataConsumerId);
    this.dataConsumerPeers.delete(dataConsumerId);
  }

  // ---- receiving ---------------------------------------------------------------------------------

  private onServerEvent(name: ServerEventName, data: unknown): void {
    if (this.buffered) {
      this.buffered.push([name, data]);
      return;
    }
    const payload = (data ?? {}) as Record<string, unknown>;
    if (name === 'room-closed' && !payload.reason) {
      // the owner deleted the room: the call is over (a reason means it can be joined again)
      this.ended = true;
      this.stopWatching();
      this.teardown();
      this.dispatch({ type: 'server', event: name, data }, true);
      return;
    }
    this.dispatch({ type: 'server', event: name, data });
    switch (name) {
      case 'new-producer':
        void this.consume(data as ProducerInfo, this.attempt);
        break;
      case 'consumer-closed':
        this.closeConsumer(payload.consumerId as string);
        break;
      case 'producer-closed':
        this.consumedProducers.delete(payload.producerId as string);
        for (const [id, consumer] of this.consumers) {
          if (consumer.producerId === payload.producerId) this.closeConsumer(id);
        }
        break;
      case 'new-data-producer':
        void this.consumeData(data as DataProducerInfo, this.attempt);
        break;
      case 'data-consumer-closed':
        this.closeDataConsumer(payload.dataConsumerId as string);
        break;
      case 'user-left':
        for (const [id, peerId] of this.consumerPeers) if (peerId === payload.peerId) this.closeConsumer(id);
        for (const [id, peerId] of this.dataConsumerPeers) if (peerId === payload.peerId) this.closeDataConsumer(id);
        this.qualitySamples.delete(payload.peerId as string);
        break;
      case 'producer-layers-needed':
        void this.applyLayersNeeded(payload.producerId as string, (payload.spatialLayers as number[]) ?? []);
        break;
      case 'room-closed':
        // its worker died: the room can be joined again (on another worker)
        this.connectionLost(`room closed (${String(payload.reason)})`);
        break;
      default:
        break;
    }
  }

  private closeConsumer(consumerId: string): void {
    this.closedConsumers.add(consumerId);
    this.consumers.get(consumerId)?.close();
    this.consumers.delete(consumerId);
    this.consumerPeers.delete(consumerId);
    this.preferredLayers.delete(consumerId);
  }

  private async consume(info: ProducerInfo, attempt: number): Promise<void> {
    const signaling = this.signaling;
    const transport = this.recvTransport;
    if (!signaling || !transport || !this.device || this.consumedProducers.has(info.producerId)) return;
    this.consumedProducers.add(info.producerId);
    try {
      const answer = await signaling.request<ConsumeAnswer>('consume', {
        transportId: transport.id,
        producerId: info.producerId,
        rtpCapabilities: this.device.rtpCapabilities,
        paused: true,
      });
      if (attempt !== this.attempt) return;
      const source: MediaSource = info.appData?.source ?? (answer.kind === 'audio' ? 'mic' : 'camera');
      const hook = this.options.transforms?.receiver;
      const receiverInfo = { consumerId: answer.id, producerId: info.producerId, peerId: info.peerId, kind: answer.kind, source };
      const consumer = await transport.consume({
        id: answer.id,
        producerId: answer.producerId,
        kind: answer.kind,
        rtpParameters: answer.rtpParameters,
        streamId: `${info.peerId}-${source === 'screen' ? 'screen' : 'user'}`,
        // called by mediasoup-client as soon as the RTCRtpReceiver exists, before any frame arrives
        ...(hook ? { onRtpReceiver: (receiver: RTCRtpReceiver) => hook(receiver, receiverInfo) } : {}),
      });
      if (attempt !== this.attempt || this.closedConsumers.has(answer.id)) {
        consumer.close();
        return;
      }
      this.consumers.set(consumer.id, consumer);
      this.consumerPeers.set(consumer.id, info.peerId);
      const remote: RemoteConsumer = {
        consumerId: consumer.id,
        producerId: info.producerId,
        peerId: info.peerId,
        kind: answer.kind,
        source,
        type: answer.type,
        producerPaused: answer.producerPaused,
        layers: null,
      };
      this.dispatch({ type: 'consumer-added', consumer: remote });
      // Consumers start paused (PROTOCOL.md §3): resume once ours exists, the server then asks for a key frame.
      await signaling.request('resumeConsumer', { consumerId: consumer.id });
    } catch (error) {
      if (attempt !== this.attempt) return;
      this.consumedProducers.delete(info.producerId);
      // a producer that closed while we asked for it is not an error worth showing
      if (error instanceof SignalingError && error.code === 'not_found') return;
      this.dispatch({ type: 'error', message: `Could not receive a participant’s media: ${this.describe(error)}` });
    }
  }

  /** Ask for the simulcast layer a viewer needs (see {@link layerForSize}); repeats cost nothing. */
  setPreferredLayer(consumerId: string, spatialLayer: number): void {
    const signaling = this.signaling;
    if (!signaling || this.preferredLayers.get(consumerId) === spatialLayer || !this.consumers.has(consumerId)) return;
    this.preferredLayers.set(consumerId, spatialLayer);
    signaling.request('setConsumerPreferredLayers', { consumerId, spatialLayer }).catch((error) => {
      if (!(error instanceof SignalingError && error.code === 'not_found')) {
        console.warn('switchyard: setConsumerPreferredLayers failed', error);
      }
    });
  }

  /** The track of a remote consumer of `state.consumers`; null once it closed. */
  remoteTrack(consumerId: string): MediaStreamTrack | null {
    return this.consumers.get(consumerId)?.track ?? null;
  }

  /** The own camera or screen track (for a self view). */
  localTrack(source: 'camera' | 'screen'): MediaStreamTrack | null {
    return source === 'screen' ? this.screenTrack : this.media.camera;
  }

  private async sampleQuality(): Promise<void> {
    if (this.buffered || !this.recvTransport) return;
    const byPeer = new Map<string, Consumer[]>();
    for (const [id, consumer] of this.consumers) {
      const peerId = this.consumerPeers.get(id);
      if (!peerId || consumer.closed) continue;
      byPeer.set(peerId, [...(byPeer.get(peerId) ?? []), consumer]);
    }
    for (const [peerId, consumers] of byPeer) {
      try {
        const reports = await Promise.all(consumers.map((c) => c.getStats()));
        const sample = sampleOf(reports.flatMap((r) => [...r.values()] as Record<string, unknown>[]));
        const quality = qualityBetween(this.qualitySamples.get(peerId), sample);
        this.qualitySamples.set(peerId, sample);
        if (quality !== 'unknown') this.dispatch({ type: 'quality', peerId, quality });
      } catch {
        // a consumer closed while its stats were read
      }
    }
  }

  // ---- for debugging and tests -------------------------------------------------------------------

  /** The node this client's signaling talks to (another one than `url` after a `wrong_node`). */
  get signalingUrl(): string {
    return this.url;
  }

  /** Every RTCStats entry of the send or receive transport, as plain objects. */
  async transportStats(direction: 'send' | 'recv'): Promise<Record<string, unknown>[]> {
    const transport = direction === 'send' ? this.sendTransport : this.recvTransport;
    if (!transport || transport.closed) return [];
    return [...(await transport.getStats()).values()] as Record<string, unknown>[];
  }

  /** The server's `getStats` of the send or receive transport (its bandwidth estimate, for one). */
  async serverTransportStats(direction: 'send' | 'recv'): Promise<Record<string, unknown>[]> {
    const transport = direction === 'send' ? this.sendTransport : this.recvTransport;
    if (!transport || transport.closed || !this.signaling) return [];
    const { stats } = await this.signaling.request<{ stats: Record<string, unknown>[] }>('getStats', { id: transport.id });
    return stats;
  }

  /** Cut the signaling connection as a network failure would; the client reconnects by itself. */
  simulateNetworkDrop(): void {
    this.signaling?.simulateNetworkDrop();
  }
}
