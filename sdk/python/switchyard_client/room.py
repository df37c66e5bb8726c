"""A room with media: join, publish aiortc tracks, receive the others' tracks, chat, reconnect.

    room = await Room.join("http://localhost:3000", room_id, "Bot")   # a guest, as the web app's
    room.on("track", lambda remote: print(remote.peer.display_name, remote.kind))
    publication = await room.publish(MediaPlayer("talk.mp4").audio)
    await room.mute(publication)
    await room.leave()

Events (`room.on(event, handler)`, plain or async handlers): `track` (RemoteTrack; a handler
registered late is also called for the tracks already received), `track-ended` (RemoteTrack),
`producer` (ProducerInfo, a remote producer appeared), `peer-joined` / `peer-left` (Peer),
`chat` (ChatMessage), `mute` (Peer, kind, muted), `active-speaker` (Peer or None, volume in dBov),
`data` (message as str or bytes, Peer, label: a message on another peer's data channel),
`data-channel` (RemoteDataChannel, open; a late handler also gets those already open),
`data-channel-closed` (RemoteDataChannel: its peer closed it or left, or the connection dropped),
`disconnected` (reason), `reconnected` (), `closed` (reason: `left`, `room_closed` or
`reconnect_failed`).

After the server drops the Socket.IO connection the Room signs in again with its token, joins
again, publishes its tracks and data channels again (new producer ids on the same Publication and
DataChannel objects) and subscribes again; the server has closed the old peer by then (PROTOCOL.md: a disconnect leaves).
A `room-closed` whose reason is `worker_died` (the room's media worker died; the server respawns
it) takes the same path: `disconnected("worker_died")`, then `reconnected` once the call is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiortc.contrib.media import MediaRelay

from switchyard_client.data import DataChannel, RemoteDataChannel, wait_open
from switchyard_client.events import Emitter, Handler
from switchyard_client.media import MediaSession, load_device, new_device
from switchyard_client.models import ChatMessage, Peer, ProducerInfo, RemoteTrack
from switchyard_client.signaling import SERVER_EVENTS, SignalingError, SwitchyardClient

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack
    from pymediasoup.consumer import Consumer
    from pymediasoup.data_consumer import DataConsumer
    from pymediasoup.producer import Producer

log = logging.getLogger("switchyard_client")

# A reconnection waits 0.5 s, then doubles the wait up to 8 s, for at most this many attempts.
RECONNECT_ATTEMPTS = 8
RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 8.0
# `room-closed` reasons after which the room still exists and joining again brings the call back:
# its media worker died (the server respawns it, PROTOCOL.md section 3)
REJOIN_REASONS = ("worker_died",)
SIMULCAST_UNSUPPORTED = (
    "simulcast is not available from Python: pymediasoup declares one RID per encoding, but aiortc's "
    "RTCRtpSender sends a single stream without RIDs, so the server would never see the layers")


class Publication:
    """A track this Room publishes; `producer_id` changes when a reconnection publishes it again."""

    def __init__(self, room: Room, track: MediaStreamTrack, app_data: dict[str, Any]):
        self.room = room
        self.track = track
        self.kind: str = track.kind
        self.app_data = app_data
        self.muted = False
        self.producer: Producer | None = None

    @property
    def producer_id(self) -> str:
        assert self.producer is not None, "not published"
        return self.producer.id

    async def mute(self) -> None:
        await self.room.mute(self)

    async def unmute(self) -> None:
        await self.room.unmute(self)


class Room:
    """One participant in one room, media included. Create it with `await Room.join(...)`."""

    def __init__(self, url: str, room_id: str, display_name: str | None, token: str, *,
                 auto_subscribe: bool = True, reconnect: bool = True, force_tcp: bool = False):
        self.url = url.rstrip("/")
        self.room_id = room_id
        self.display_name = display_name
        self.token = token
        self.auto_subscribe = auto_subscribe
        self.reconnect = reconnect
        self.force_tcp = force_tcp
        self.peer_id: str | None = None
        self.peers: dict[str, Peer] = {}
        self.producers: dict[str, ProducerInfo] = {}
        self.publications: list[Publication] = []
        self.subscriptions: dict[str, RemoteTrack] = {}
        self.client: SwitchyardClient | None = None
        self.closed = False
        self._events = Emitter()
        self._device = new_device()
        # aiortc stops a track when the RTCPeerConnection sending it closes; each producer sends a
        # relay of the caller's track instead, so a reconnection can publish the track again
        self._relay = MediaRelay()
        self._media: MediaSession | None = None
        self._consumers: dict[str, Consumer] = {}  # by producer id
        self._wanted: dict[str, int | None] = {}  # producer id -> preferred spatial layer
        self._pending: dict[str, asyncio.Future[RemoteTrack]] = {}  # subscriptions under way
        self.data_channels: list[DataChannel] = []
        self.data_producers: dict[str, dict[str, Any]] = {}  # the others', as dataProducerInfo
        self.data_subscriptions: dict[str, RemoteDataChannel] = {}  # by data producer id
        self._data_consumers: dict[str, DataConsumer] = {}  # by data producer id
        self._data_pending: dict[str, asyncio.Future[RemoteDataChannel]] = {}
        self._reconnecting: asyncio.Task[None] | None = None
        self._held: list[tuple[str, Any]] | None = None

    # ---- joining and leaving ---------------------------------------------------------------------

    @classmethod
    async def join(cls, url: str, room_id: str, name: str | None = None, *, token: str | None = None,
                   email: str | None = None, password: str | None = None, auto_subscribe: bool = True,
                   reconnect: bool = True, force_tcp: bool = False) -> Room:
        """Join `room_id` on the node at `url` as `name`.

        Without a `token` it signs in first as the web app does: with `email` and `password` when
        given, else as a guest called `name`. `auto_subscribe` receives every remote producer;
        `reconnect` rejoins after a dropped connection.
        """
        if token is None:
            signer = SwitchyardClient(url, handle_sigint=False, queue_events=False)
            try:
                await signer.sign_in(name, email, password)
            finally:
                await signer.close()
            assert signer.token is not None
            token = signer.token
        room = cls(url, room_id, name, token, auto_subscribe=auto_subscribe, reconnect=reconnect,
                   force_tcp=force_tcp)
        await room._establish()
        return room

    async def _establish(self) -> None:
        """Connect, join, and subscribe to what is wanted; publications are redone by the caller."""
        client = SwitchyardClient(self.url, self.token, handle_sigint=False, queue_events=False)
        for event in (*SERVER_EVENTS, "disconnect"):
            client.on(event, self._dispatcher(client, event))
        # events that arrive before the join's answer is applied wait for it: they are newer
        self.client, self._held = client, []
        try:
            await client.connect()
            joined = await client.join(self.room_id, self.display_name)
            await load_device(self._device, joined["routerRtpCapabilities"])
        except BaseException:
            self._held = None
            await client.close()
            raise
        self._media = MediaSession(client, self._device, self.force_tcp)
        self.peer_id = joined["peerId"]
        self.peers = {p["peerId"]: Peer.from_wire(p) for p in joined.get("peers", [])
                      if p["peerId"] != self.peer_id}
        self.producers = {p["producerId"]: ProducerInfo.from_wire(p) for p in joined.get("producers", [])
                          if p["peerId"] != self.peer_id}
        for producer_id in self.producers:
            if self.auto_subscribe or producer_id in self._wanted:
                self._subscribe_later(producer_id, self._wanted.get(producer_id))
        self.data_producers = {p["dataProducerId"]: p for p in joined.get("dataProducers", [])
                               if p["peerId"] != self.peer_id}
        if self.auto_subscribe:
            for data_producer_id in self.data_producers:
                self._subscribe_data_later(data_producer_id)
        held, self._held = self._held, None
        for event, data in held:
            self._handle(event, data)

    async def leave(self) -> None:
        """Leave the room: close every producer, consumer and transport, then the connection."""
        if self.closed:
            return
        self.closed = True
        if self._reconnecting is not None and self._reconnecting is not asyncio.current_task():
            self._reconnecting.cancel()
        if self.client is not None and self.client.sio is not None and self.client.sio.connected:
            try:
                await self.client.leave()
            except (SignalingError, TimeoutError, OSError) as exc:
                log.debug("leave: %s", exc)
        await self._drop_media()
        if self.client is not None:
            await self.client.close()
        await self._events.cancel_tasks()
        self._events.emit("closed", "left")

    async def __aenter__(self) -> Room:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.leave()

    # ---- events ----------------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Call `handler` for `event` (see the module docstring); usable as a decorator."""
        if handler is None:
            return lambda function: self.on(event, function)
        self._events.on(event, handler)
        if event == "track":
            for remote in list(self.subscriptions.values()):
                self._events.call(event, handler, remote)
        elif event == "data-channel":
            for channel in list(self.data_subscriptions.values()):
                self._events.call(event, handler, channel)
        return handler

    def off(self, event: str, handler: Handler) -> None:
        self._events.off(event, handler)

    def _dispatcher(self, client: SwitchyardClient, event: str) -> Handler:
        def dispatch(data: Any = None) -> None:
            if client is not self.client or self.closed:
                return  # an event of a connection this Room has given up
            if self._held is not None:
                self._held.append((event, data))
            else:
                self._handle(event, data)
        return dispatch

    def _handle(self, event: str, data: Any) -> None:
        try:
            self._on_server_event(event, data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("ignored a malformed %s event (%r): %s", event, data, exc)

    def _on_server_event(self, event: str, data: Any) -> None:
        if event == "user-joined":
            peer = self.peers[data["peerId"]] = Peer.from_wire(data)
            self._events.emit("peer-joined", peer)
        elif event == "user-left":
            peer = self.peers.pop(data["peerId"], None)
            if peer is not None:
                self._events.emit("peer-left", peer)
        elif event == "new-producer":
            info = self.producers[data["producerId"]] = ProducerInfo.from_wire(data)
            self._events.emit("producer", info)
            if self.auto_subscribe:
                self._subscribe_later(info.producer_id, None)
        elif event == "producer-closed":
            self.producers.pop(data["producerId"], None)
            self._wanted.pop(data["producerId"], None)
            self._events.spawn(self._end_subscription(data["producerId"]), "unsubscribe")
        elif event == "consumer-closed":
            self._events.spawn(self._end_subscription(data["producerId"]), "unsubscribe")
        elif event == "new-data-producer":
            self.data_producers[data["dataProducerId"]] = data
            if self.auto_subscribe:
                self._subscribe_data_later(data["dataProducerId"])
        elif event in ("data-producer-closed", "data-consumer-closed"):
            self.data_producers.pop(data["dataProducerId"], None)
            self._events.spawn(self._end_data_subscription(data["dataProducerId"]), "data unsubscribe")
        elif event == "chat":
            self._events.emit("chat", ChatMessage.from_wire(data))
        elif event in ("audio-mute", "video-mute"):
            peer = self.peers.get(data["peerId"])
            if peer is not None:
                kind = event.split("-")[0]
                setattr(peer, f"{kind}_muted", bool(data["muted"]))
                self._events.emit("mute", peer, kind, bool(data["muted"]))
        elif event == "active-speaker":
            self._events.emit("active-speaker", self.peers.get(data.get("peerId") or ""), data.get("volume"))
        elif event == "room-closed":
            reason = data.get("reason") if isinstance(data, dict) else None
            if reason in REJOIN_REASONS and self.reconnect:
                # the room's media is gone but the room is not: join again (the server has a new
                # worker for it by then, or puts the room on another one) as after a dropped socket
                self._start_reconnect(reason)
            else:
                self._events.spawn(self._close("room_closed"), "room closed")
        elif event == "disconnect":
            if self.reconnect:
                self._start_reconnect(str(data))
            else:
                self._events.spawn(self._close("disconnected"), "disconnect")

    # ---- publishing ------------------------------------------------------------------------------

    async def publish(self, track: MediaStreamTrack, *, simulcast: bool = False,
                      app_data: dict[str, Any] | None = None) -> Publication:
        """Send `track` (any aiortc MediaStreamTrack, audio or video) to the room.

        `simulcast=True` raises NotImplementedError: aiortc sends one encoding (see
        SIMULCAST_UNSUPPORTED); a browser's simulcast is still received at any `layer`.
        """
        if simulcast:
            raise NotImplementedError(SIMULCAST_UNSUPPORTED)
        publication = Publication(self, track, dict(app_data or {}))
        await self._produce(publication)
        self.publications.append(publication)
        return publication

    async def _produce(self, publication: Publication) -> None:
        assert self._media is not None, "not joined"
        relayed = self._relay.subscribe(publication.track, buffered=False)
        publication.producer = await self._media.produce(relayed, publication.app_data)
        if publication.muted:
            await self._set_paused(publication, True)

    async def unpublish(self, publication: Publication) -> None:
        """Stop publishing: closeProducer; the others get `producer-closed`."""
        if publication in self.publications:
            self.publications.remove(publication)
        if publication.producer is not None and self.client is not None:
            await self.client.close_producer(publication.producer.id)
            await publication.producer.close()

    async def mute(self, publication: Publication) -> None:
        """pauseProducer (nothing is forwarded) and the `audio-mute`/`video-mute` status others see."""
        publication.muted = True
        await self._set_paused(publication, True)

    async def unmute(self, publication: Publication) -> None:
        publication.muted = False
        await self._set_paused(publication, False)

    async def _set_paused(self, publication: Publication, paused: bool) -> None:
        assert self.client is not None and publication.producer is not None
        if paused:
            await self.client.pause_producer(publication.producer.id)
            publication.producer.pause()
        else:
            await self.client.resume_producer(publication.producer.id)
            publication.producer.resume()
        if publication.kind == "audio":
            await self.client.audio_mute(paused)
        else:
            await self.client.video_mute(paused)

    # ---- subscribing -----------------------------------------------------------------------------

    def _subscribe_later(self, producer_id: str, layer: int | None) -> None:
        self._events.spawn(self.subscribe(producer_id, layer=layer), f"subscribe {producer_id}")

    async def subscribe(self, producer_id: str, *, layer: int | None = None,
                        temporal_layer: int | None = None) -> RemoteTrack:
        """Receive a remote producer; `layer` is the preferred spatial (simulcast) layer.

        Emits `track`. Subscribing again to the same producer only changes the layer.
        """
        self._wanted[producer_id] = layer
        remote = self.subscriptions.get(producer_id)
        if remote is None:
            pending = self._pending.get(producer_id)
            if pending is None:
                pending = self._pending[producer_id] = asyncio.ensure_future(self._consume(producer_id))
                pending.add_done_callback(lambda _: self._pending.pop(producer_id, None))
            remote = await asyncio.shield(pending)
        if layer is not None:
            await self.set_layer(remote, layer, temporal_layer)
        return remote

    async def _consume(self, producer_id: str) -> RemoteTrack:
        media = self._media
        if media is None:
            raise SignalingError("not_connected", "not joined")
        consumer, answer = await media.consume(producer_id)
        if media is not self._media:
            raise SignalingError("not_connected", "the connection was lost while subscribing")
        info = self.producers.get(producer_id)
        peer = self.peers.get(info.peer_id) if info else None
        if peer is None:
            peer = Peer(peer_id=info.peer_id if info else "", user_id="", display_name="")
        remote = RemoteTrack(track=consumer.track, peer=peer, kind=answer["kind"], producer_id=producer_id,
                             consumer_id=answer["id"])
        self._consumers[producer_id] = consumer
        self.subscriptions[producer_id] = remote
        self._events.emit("track", remote)
        return remote

    async def set_layer(self, remote: RemoteTrack, layer: int, temporal_layer: int | None = None) -> None:
        """setConsumerPreferredLayers: the spatial (and temporal) layer to receive of a simulcast/SVC producer."""
        assert self.client is not None
        await self.client.set_consumer_preferred_layers(remote.consumer_id, layer, temporal_layer)
        remote.layer = layer
        self._wanted[remote.producer_id] = layer

    async def unsubscribe(self, producer_id: str) -> None:
        """Stop receiving a producer (the consumer is closed by closing it locally and pausing it)."""
        self._wanted.pop(producer_id, None)
        remote = self.subscriptions.get(producer_id)
        if remote is not None and self.client is not None:
            await self.client.pause_consumer(remote.consumer_id)
        await self._end_subscription(producer_id)

    async def _end_subscription(self, producer_id: str) -> None:
        remote = self.subscriptions.pop(producer_id, None)
        consumer = self._consumers.pop(producer_id, None)
        if consumer is not None and self._media is not None:
            try:
                await self._media.close_consumer(consumer)
            except Exception as exc:  # pymediasoup raises plain Exception for a missing transceiver
                log.debug("closing consumer of %s: %s", producer_id, exc)
        if remote is not None:
            self._events.emit("track-ended", remote)

    # ---- data channels (PROTOCOL.md section 4, DataChannels) ---------------------------------------

    async def publish_data(self, label: str = "", *, ordered: bool | None = None,
                           max_retransmits: int | None = None, max_packet_life_time: int | None = None,
                           protocol: str = "", app_data: dict[str, Any] | None = None) -> DataChannel:
        """Open a data channel to the room (produceData); returns once it is open.

        Reliable and ordered by default. `max_retransmits` or `max_packet_life_time` (ms, at most
        one) make it partially reliable (RFC 8831 section 6.1) and unordered unless `ordered` is given;
        the server refuses `ordered=True` with a non-zero limit (`invalid_input`).
        """
        if ordered is None:
            ordered = max_retransmits is None and max_packet_life_time is None
        channel = DataChannel(self, label, ordered, max_retransmits, max_packet_life_time, protocol,
                              dict(app_data or {}))
        await self._produce_data(channel)
        self.data_channels.append(channel)
        return channel

    async def _produce_data(self, channel: DataChannel) -> None:
        assert self._media is not None, "not joined"
        channel.producer = await self._media.produce_data(
            channel.label, channel.ordered, channel.max_retransmits, channel.max_packet_life_time,
            channel.protocol, channel.app_data)
        await wait_open(channel.producer)

    async def unpublish_data(self, channel: DataChannel) -> None:
        """closeDataProducer and close the local channel; the others get `data-channel-closed`."""
        if channel in self.data_channels:
            self.data_channels.remove(channel)
        if channel.closed:
            return
        channel.closed = True
        producer = channel.producer
        if producer is not None and not producer.closed:
            if self.client is not None and self._media is not None:
                try:
                    await self.client.close_data_producer(producer.id)
                except SignalingError as exc:  # not_found: the server closed it already
                    log.debug("closeDataProducer %s: %s", producer.id, exc)
            await producer.close()

    def _subscribe_data_later(self, data_producer_id: str) -> None:
        self._events.spawn(self.subscribe_data(data_producer_id), f"subscribe data {data_producer_id}")

    async def subscribe_data(self, data_producer_id: str) -> RemoteDataChannel:
        """Receive another peer's data channel (done for every one when `auto_subscribe`).

        Its messages arrive as `data` events; emits `data-channel` once the channel is open.
        """
        remote = self.data_subscriptions.get(data_producer_id)
        if remote is not None:
            return remote
        pending = self._data_pending.get(data_producer_id)
        if pending is None:
            pending = self._data_pending[data_producer_id] = asyncio.ensure_future(
                self._consume_data(data_producer_id))
            pending.add_done_callback(lambda _: self._data_pending.pop(data_producer_id, None))
        return await asyncio.shield(pending)

    async def _consume_data(self, data_producer_id: str) -> RemoteDataChannel:
        media = self._media
        if media is None:
            raise SignalingError("not_connected", "not joined")
        consumer, answer = await media.consume_data(data_producer_id)
        info = self.data_producers.get(data_producer_id, {})
        peer_id = info.get("peerId", "")
        peer = self.peers.get(peer_id) or Peer(peer_id=peer_id, user_id="", display_name="")
        remote = RemoteDataChannel(peer=peer, label=answer.get("label", ""), protocol=answer.get("protocol", ""),
                                   data_producer_id=data_producer_id, data_consumer_id=answer["id"],
                                   app_data=dict(answer.get("appData") or {}))
        # registered before the channel opens, so that no message is missed
        consumer.on("message", lambda message: self._events.emit("data", message, remote.peer, remote.label))
        self._data_consumers[data_producer_id] = consumer
        try:
            await wait_open(consumer)
        except TimeoutError:
            await self._end_data_subscription(data_producer_id)
            raise
        if media is not self._media or self._data_consumers.get(data_producer_id) is not consumer:
            raise SignalingError("not_connected", "the data channel closed while opening")
        self.data_subscriptions[data_producer_id] = remote
        self._events.emit("data-channel", remote)
        return remote

    async def _end_data_subscription(self, data_producer_id: str) -> None:
        remote = self.data_subscriptions.pop(data_producer_id, None)
        consumer = self._data_consumers.pop(data_producer_id, None)
        if consumer is not None and not consumer.closed:
            await consumer.close()
        if remote is not None:
            self._events.emit("data-channel-closed", remote)

    # ---- chat and presence -----------------------------------------------------------------------

    async def chat(self, text: str) -> ChatMessage:
        """Send a chat message (1..2000 characters); the others get a `chat` event."""
        assert self.client is not None, "not joined"
        return ChatMessage.from_wire(await self.client.chat(text))

    async def raise_hand(self, raised: bool = True) -> None:
        assert self.client is not None, "not joined"
        await self.client.raise_hand(raised)

    # ---- losing the connection -------------------------------------------------------------------

    async def _drop_media(self) -> None:
        """Close this connection's transports; every received track ends (`track-ended`)."""
        media, self._media = self._media, None
        ended = list(self.subscriptions.values())
        data_ended = list(self.data_subscriptions.values())
        self.subscriptions.clear()
        self._consumers.clear()
        self.data_subscriptions.clear()
        self._data_consumers.clear()
        if media is not None:
            try:
                await media.close()
            except Exception as exc:  # a half-closed RTCPeerConnection must not stop the cleanup
                log.debug("closing transports: %s", exc)
        for remote in ended:
            self._events.emit("track-ended", remote)
        for channel in data_ended:
            self._events.emit("data-channel-closed", channel)

    def _start_reconnect(self, reason: str) -> None:
        if self._reconnecting is None:
            self._reconnecting = self._events.spawn(self._reconnect(reason), "reconnection")

    async def _reconnect(self, reason: str) -> None:
        """Join again with backoff, then publish every publication again."""
        self._events.emit("disconnected", reason)
        old = self.client
        await self._drop_media()
        if old is not None:
            await old.close()
        delay = RECONNECT_FIRST_DELAY
        try:
            for attempt in range(1, RECONNECT_ATTEMPTS + 1):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                if self.closed:
                    return
                try:
                    await self._establish()
                    for publication in self.publications:
                        await self._produce(publication)
                    for channel in self.data_channels:
                        await self._produce_data(channel)
                except Exception as exc:  # whatever failed in this attempt, the next one starts clean
                    log.info("reconnection attempt %d failed: %r", attempt, exc)
                    await self._drop_media()
                    if self.client is not None:
                        await self.client.close()
                    continue
                self._events.emit("reconnected")
                return
            await self._close("reconnect_failed")
        finally:
            self._reconnecting = None

    async def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        await self._drop_media()
        if self.client is not None:
            await self.client.close()
        self._events.emit("closed", reason)
