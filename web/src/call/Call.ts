// One person in one room: signaling, the mediasoup-client Device, transports, producers and
// consumers. It turns server events into RoomActions (see roomState.ts) and keeps the call alive:
// a dropped socket, a failed ICE connection or a room lost with its worker all lead to a fresh
// connect + join, with the same local tracks, until the person leaves.

import { Device } from 'mediasoup-client';
import type { Consumer, DataConsumer, DataProducer, Producer, Transport } from 'mediasoup-client/types';

import type { ChatMessage } from '../api';
import type { E2ee } from '../e2ee';
import { describeError } from '../errors';
import { iceTransportPolicyFrom } from './ice';
import { CAMERA_ENCODINGS, cameraCodecSetting } from './layout';
import { qualityBetween, sampleOf, type ReceiveSample } from './quality';
import { Backoff, browserNetwork, waitBeforeRetry } from './retry';
import {
  decodeReaction,
  encodeReaction,
  REACTION_LIFETIME_MS,
  REACTION_SHOWN_MS,
  REACTIONS_LABEL,
  type Emoji,
} from './reactions';
import type {
  DataProducerInfo,
  JoinData,
  MediaSource,
  ProducerInfo,
  RemoteConsumer,
  RoomAction,
  SelfState,
} from './roomState';
import { Signaling, SignalingError, type ServerEventName } from './signaling';

export type LocalMedia = {
  mic: MediaStreamTrack | null;
  camera: MediaStreamTrack | null;
};

export type CallOptions = {
  /** Base URL of the node to connect to (the page's own origin normally). */
  url: string;
  token: string;
  roomId: string;
  displayName: string;
  media: LocalMedia;
  self: SelfState;
  dispatch: (action: RoomAction) => void;
  loadHistory: (roomId: string) => Promise<ChatMessage[]>;
  /** End-to-end encryption of every producer and consumer (web/src/e2ee), when the room uses it. */
  e2ee?: E2ee | null;
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

/** Errors that another attempt will not fix: the call ends with the message instead of retrying. */
const FATAL_CODES = new Set(['unauthorized', 'not_found', 'room_full', 'forbidden', 'invalid_input']);
const MAX_REDIRECTS = 3;
/** How long ICE may stay `disconnected` before the call reconnects. */
const ICE_GRACE_MS = 6000;
const STATS_INTERVAL_MS = 2000;


export class Call {
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
  /** The reactions DataChannel we send on, and the others' we receive (by data consumer id). */
  private reactionProducer: DataProducer | null = null;
  private readonly dataConsumers = new Map<string, DataConsumer>();
  private readonly dataConsumerPeers = new Map<string, string>();
  private nextReactionId = 0;
  private selfPeerId: string | null = null;
  /** Events that arrive while joining wait here until the join answer is applied. */
  private buffered: Array<[ServerEventName, unknown]> | null = null;
  /** Bumped by every teardown: callbacks of an older attempt see a different number and stop. */
  private attempt = 0;
  private url: string;
  private self: SelfState;
  private screenTrack: MediaStreamTrack | null = null;
  private ended = false;
  private reconnecting = false;
  private iceTimer: ReturnType<typeof setTimeout> | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  /** Listeners of leave(): a retry that waits ends at once. */
  private readonly onEnd = new Set<() => void>();
  /** The browser says the network is gone (a phone between networks): reconnect at once rather than
   * wait for a socket that may take a minute to notice, and again as soon as it is back. */
  private readonly onOffline = () => this.connectionLost('the browser went offline');

  constructor(private readonly options: CallOptions) {
    this.url = options.url;
    this.self = { ...options.self };
  }

  /** Tell the UI; an ended call only says how it ended (through options.dispatch directly). */
  private dispatch(action: RoomAction): void {
    if (!this.ended) this.options.dispatch(action);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /** Connect and join, retrying until it works, the error is one retrying cannot fix, or leave(). */
  async start(): Promise<void> {
    this.dispatch({ type: 'connecting' });
    window.addEventListener('offline', this.onOffline);
    // a loss while the first join is under way is that loop's to retry, not a second loop's
    this.reconnecting = true;
    await this.connectUntilJoined();
    this.reconnecting = false;
    if (!this.ended) this.statsTimer = setInterval(() => void this.sampleQuality(), STATS_INTERVAL_MS);
  }

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
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.screenTrack?.stop();
    this.screenTrack = null;
    this.options.dispatch({ type: 'left' });
  }

  /** Stop the retries and the network watch; the call is over. */
  private stopWatching(): void {
    window.removeEventListener('offline', this.onOffline);
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
        // a node we were redirected to may be gone: the page's own node knows who hosts the room now
        this.url = this.options.url;
        const code = error instanceof SignalingError ? error.code : undefined;
        if (code && FATAL_CODES.has(code)) {
          this.end(describeError(error));
          return;
        }
        console.warn('switchyard: join failed, retrying', error);
        this.dispatch({ type: 'reconnecting' });
        const outcome = await waitBeforeRetry(backoff.next(), browserNetwork, {
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
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.options.dispatch({ type: 'failed', message });
  }

  private connectionLost(reason: string): void {
    if (this.ended || this.reconnecting) return;
    console.warn(`switchyard: connection lost (${reason}); reconnecting`);
    this.reconnecting = true;
    this.teardown();
    this.dispatch({ type: 'reconnecting' });
    void this.connectUntilJoined().finally(() => {
      this.reconnecting = false;
    });
  }

  /** Close the socket and every transport; local tracks stay for the next attempt. */
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
    this.reactionProducer = null;
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
    this.sendTransport = await this.createTransport(signaling, 'send', attempt);
    this.recvTransport = await this.createTransport(signaling, 'recv', attempt);
    if (!current()) return;

    this.selfPeerId = joined.peerId;
    this.dispatch({ type: 'joined', data: joined });
    const waiting = this.buffered ?? [];
    this.buffered = null;

    this.options
      .loadHistory(this.options.roomId)
      .then((messages) => current() && this.dispatch({ type: 'history', messages }))
      .catch(() => current() && this.dispatch({ type: 'error', message: 'The chat history could not be loaded.' }));

    await Promise.all(joined.producers.map((producer) => this.consume(producer, attempt)));
    await Promise.all((joined.dataProducers ?? []).map((info) => this.consumeReactions(info, attempt)));
    for (const [name, data] of waiting) this.onServerEvent(name, data);
    await this.produceLocalMedia(attempt);
    await this.produceReactions(attempt);
    await this.announceSelf(signaling);
  }

  private async createTransport(signaling: Signaling, direction: 'send' | 'recv', attempt: number) {
    const device = this.device!;
    const info = await signaling.request<Parameters<Device['createSendTransport']>[0]>('createWebRtcTransport', {
      direction,
      // DataChannels (reactions): the server answers sctpParameters
      sctpCapabilities: device.sctpCapabilities,
    });
    // TURN servers from the answer (when the server has TURN), and a relay-only policy if the URL asks
    const options = {
      ...info,
      iceServers: info.iceServers ?? [],
      iceTransportPolicy: iceTransportPolicyFrom(window.location.search),
    };
    const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      signaling
        .request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters })
        .then(() => callback(), errback);
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        signaling
          .request<{ id: string }>('produce', { transportId: transport.id, kind, rtpParameters, appData })
          .then(({ id }) => callback({ id }), errback);
      });
      transport.on('producedata', ({ sctpStreamParameters, label, protocol, appData }, callback, errback) => {
        signaling
          .request<{ id: string }>('produceData', { transportId: transport.id, sctpStreamParameters, label, protocol, appData })
          .then(({ id }) => callback({ id }), errback);
      });
    }
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
    const { mic, camera } = this.options.media;
    if (mic && mic.readyState === 'live') await this.produce('mic', mic, attempt);
    if (camera && camera.readyState === 'live') await this.produce('camera', camera, attempt);
    if (this.screenTrack && this.screenTrack.readyState === 'live') await this.produce('screen', this.screenTrack, attempt);
  }

  private async produce(source: MediaSource, track: MediaStreamTrack, attempt: number) {
    const transport = this.sendTransport;
    if (!transport || attempt !== this.attempt) return;
    try {
      const appData: Record<string, unknown> = { source };
      let producer: Producer;
      // E2EE: VP8 simulcast, the codec whose clear header the server needs is known (e2ee/frame.ts)
      const setting = source === 'camera' && !this.options.e2ee ? cameraCodecSetting(window.location.search, localStorage) : null;
      const codec = setting && this.device?.rtpCapabilities.codecs?.find((c) => c.mimeType.toLowerCase() === setting.mimeType);
      if (source === 'camera' && codec) {
        // one encoding whose layers are in the stream (SVC), chosen per viewer by the server
        appData.height = track.getSettings().height ?? null;
        producer = await transport.produce({
          track,
          codec,
          encodings: [{ scalabilityMode: setting?.scalabilityMode, maxBitrate: 1_500_000 }],
          codecOptions: { videoGoogleStartBitrate: 1000 },
          stopTracks: false,
          onRtpSender: this.options.e2ee?.onRtpSender,
          appData,
        });
      } else if (source === 'camera') {
        appData.height = track.getSettings().height ?? null;
        producer = await transport.produce({
          track,
          encodings: CAMERA_ENCODINGS.map((e) => ({ ...e })),
          codecOptions: { videoGoogleStartBitrate: 1000 },
          stopTracks: false,
          onRtpSender: this.options.e2ee?.onRtpSender,
          appData,
        });
      } else {
        producer = await transport.produce({ track, stopTracks: false, onRtpSender: this.options.e2ee?.onRtpSender, appData });
      }
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
      if (attempt === this.attempt) this.dispatch({ type: 'error', message: `Could not send your ${source}: ${describeError(error)}` });
    }
  }

  /** Tell the others the mute and hand state this person joined (or rejoined) with. */
  private async announceSelf(signaling: Signaling): Promise<void> {
    const videoOff = this.self.videoMuted || !this.options.media.camera;
    if (this.self.audioMuted || !this.options.media.mic) await signaling.request('audio-mute', { muted: true });
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
      this.dispatch({ type: 'error', message: describeError(error) });
    }
  }

  async setMicMuted(muted: boolean): Promise<void> {
    this.setSelf({ audioMuted: muted });
    await this.pauseSource('mic', muted);
    await this.control((s) => s.request('audio-mute', { muted }));
  }

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

  async startScreenShare(): Promise<void> {
    if (this.screenTrack) return;
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (error) {
      if ((error as Error).name !== 'NotAllowedError') this.dispatch({ type: 'error', message: describeError(error) });
      return;
    }
    const track = stream.getVideoTracks()[0];
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

  // ---- reactions (a DataChannel) -------------------------------------------------------------------

  private async produceReactions(attempt: number): Promise<void> {
    const transport = this.sendTransport;
    if (!transport || attempt !== this.attempt) return;
    try {
      const producer = await transport.produceData({
        ordered: false,
        maxPacketLifeTime: REACTION_LIFETIME_MS,
        label: REACTIONS_LABEL,
      });
      if (attempt !== this.attempt) {
        producer.close();
        return;
      }
      this.reactionProducer = producer;
    } catch (error) {
      // the call goes on without reactions (a server without DataChannels)
      console.warn('switchyard: no reactions channel', error);
    }
  }

  private async consumeReactions(info: DataProducerInfo, attempt: number): Promise<void> {
    const signaling = this.signaling;
    const transport = this.recvTransport;
    if (!signaling || !transport || info.label !== REACTIONS_LABEL) return;
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
      consumer.on('message', (message: unknown) => {
        const emoji = decodeReaction(message);
        if (emoji && attempt === this.attempt) this.showReaction(info.peerId, emoji);
      });
      this.dataConsumers.set(consumer.id, consumer);
      this.dataConsumerPeers.set(consumer.id, info.peerId);
    } catch (error) {
      if (attempt !== this.attempt) return;
      // a data producer that closed while we asked for it is not an error worth showing
      if (!(error instanceof SignalingError && error.code === 'not_found')) {
        console.warn('switchyard: could not receive reactions', error);
      }
    }
  }

  private closeDataConsumer(dataConsumerId: string): void {
    this.dataConsumers.get(dataConsumerId)?.close();
    this.dataConsumers.delete(dataConsumerId);
    this.dataConsumerPeers.delete(dataConsumerId);
  }

  private showReaction(peerId: string, emoji: Emoji): void {
    const id = ++this.nextReactionId;
    this.dispatch({ type: 'reaction', reaction: { id, peerId, emoji } });
    setTimeout(() => this.dispatch({ type: 'reaction-expired', id }), REACTION_SHOWN_MS);
  }

  /** Float an emoji over the own tile here and for everyone else (false: the channel is not open). */
  sendReaction(emoji: Emoji): boolean {
    const producer = this.reactionProducer;
    if (!producer || producer.closed || producer.readyState !== 'open') return false;
    producer.send(encodeReaction(emoji));
    if (this.selfPeerId) this.showReaction(this.selfPeerId, emoji);
    return true;
  }

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
      this.dispatch({ type: 'error', message: describeError(error) });
      return false;
    }
  }

  /** Turn off the simulcast encodings nobody consumes (`producer-layers-needed`, dynacast). */
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

  // ---- receiving ---------------------------------------------------------------------------------

  private onServerEvent(name: ServerEventName, data: unknown): void {
    if (this.buffered) {
      this.buffered.push([name, data]);
      return;
    }
    const payload = (data ?? {}) as Record<string, unknown>;
    if (name === 'room-closed' && !payload.reason) {
      this.options.dispatch({ type: 'server', event: name, data });
      this.ended = true;
      this.stopWatching();
      this.teardown();
      if (this.statsTimer) clearInterval(this.statsTimer);
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
        void this.consumeReactions(data as DataProducerInfo, this.attempt);
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
      const consumer = await transport.consume({
        id: answer.id,
        producerId: answer.producerId,
        kind: answer.kind,
        rtpParameters: answer.rtpParameters,
        streamId: `${info.peerId}-${info.appData?.source === 'screen' ? 'screen' : 'user'}`,
        onRtpReceiver: this.options.e2ee?.onRtpReceiver(info.peerId),
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
        source: info.appData?.source ?? (answer.kind === 'audio' ? 'mic' : 'camera'),
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
      this.dispatch({ type: 'error', message: `Could not receive a participant’s media: ${describeError(error)}` });
    }
  }

  /** Ask for the simulcast layer a tile needs; repeated asks for the same layer cost nothing. */
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

  remoteTrack(consumerId: string): MediaStreamTrack | null {
    return this.consumers.get(consumerId)?.track ?? null;
  }

  localTrack(source: 'camera' | 'screen'): MediaStreamTrack | null {
    return source === 'screen' ? this.screenTrack : this.options.media.camera;
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

  // ---- for debugging and the browser tests -------------------------------------------------------

  /** The node this call's signaling talks to (another one than the page's after a `wrong_node`). */
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

  /** Cut the signaling connection as a network failure would; the call reconnects by itself. */
  simulateNetworkDrop(): void {
    this.signaling?.simulateNetworkDrop();
  }
}
