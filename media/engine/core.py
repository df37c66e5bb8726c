"""The worker's engine: answers the control channel and drives the Forwarder (mediasoup's C++ Worker role)."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastpath.route import Forwarder

from common.log import get_logger
from media.engine.data_consumer import consume_data
from media.engine.data_pipe import consume_pipe_data, produce_pipe_data, relayed_message
from media.engine.data_producer import produce_data
from media.engine.errors import invalid_input, not_found
from media.engine.ice import CONSENT_TIMEOUT, ufrag_of
from media.engine.pipe_transport import PipeLink, PipeTransport
from media.engine.plain_transport import PlainTransport
from media.engine.router import Router
from media.engine.tcp import IceTcpConnection
from media.limits import DEFAULT_MAX_INCOMING_BITRATE

if TYPE_CHECKING:
    # DTLS (cryptography, pyOpenSSL) and STUN (aioice) load with the first WebRTC transport.
    from media.engine.dtls import DtlsCertificate
    from media.engine.webrtc_transport import WebRtcTransport

log = get_logger("engine")

REPORT_INTERVAL = 1.0
LAYER_INTERVAL = 0.5
# RTCP reports go out a tenth of the transports at a time, so each reports once a REPORT_INTERVAL
# and no tick holds the loop for all of them (docs/benchmarks.md, "RTCP reports without a stall")
REPORT_PARTS = 10
TICK = REPORT_INTERVAL / REPORT_PARTS


class Engine:
    """Everything one worker process holds: routers, transports, producers, consumers, the Forwarder."""

    def __init__(self, udp: socket.socket, announced_ip: str, rtc_port: int,
                 notify: Callable[[str, str | None, dict], None], consent_timeout: float = CONSENT_TIMEOUT,
                 max_incoming_bitrate: int = DEFAULT_MAX_INCOMING_BITRATE):
        self.loop = asyncio.get_running_loop()
        self.announced_ip = announced_ip
        self.rtc_port = rtc_port
        self.notify = notify
        self.consent_timeout = consent_timeout
        self.max_incoming_bitrate = max_incoming_bitrate
        self.forwarder = Forwarder(udp, self._on_control)
        self._certificate: DtlsCertificate | None = None
        self.routers: dict[str, Router] = {}
        self.transports: dict[str, WebRtcTransport | PlainTransport] = {}
        self.producers: dict = {}
        self.consumers: dict = {}
        self.data_producers: dict = {}
        self.data_consumers: dict = {}
        self.transports_by_slot: dict[int, object] = {}
        self.consumers_by_slot: dict[int, object] = {}
        self.ufrags: dict[str, WebRtcTransport] = {}
        self.tuples: dict[tuple, WebRtcTransport] = {}
        self.comedia_waiting: list[PlainTransport] = []
        # pipes by the remote worker's address: one shared Forwarder slot each (plain RTP or SRTP)
        self.pipe_links: dict[tuple, PipeLink] = {}
        # this worker's SRTP key for all its SRTP pipe ends, by cipher suite (media/engine/pipe_transport.py)
        self.pipe_keys: dict[str, bytes] = {}
        self.tcp_connections: dict[tuple, IceTcpConnection] = {}
        self.tcp_tuples: dict[tuple, WebRtcTransport] = {}
        # transports whose selected tuple is TCP: their Forwarder output is written after each drain
        self.tcp_senders: set[WebRtcTransport] = set()
        self._tcp_server: asyncio.AbstractServer | None = None
        self.control_drops: Counter[str] = Counter()
        self.loop_lag = 0.0
        self._udp = udp
        self.loop.add_reader(udp.fileno(), self.forwarder.drain)
        self._timer_task = self.loop.create_task(self._timers())

    @property
    def certificate(self) -> DtlsCertificate:
        """The worker's DTLS certificate, made when the first WebRTC transport asks for it.

        A worker before any room then holds neither the key nor the DTLS libraries.
        """
        if self._certificate is None:
            from media.engine.dtls import DtlsCertificate

            self._certificate = DtlsCertificate.generate()
        return self._certificate

    async def serve_tcp(self, listener: socket.socket) -> None:
        """Accept ICE-TCP connections on the worker's shared TCP port."""
        self._tcp_server = await self.loop.create_server(lambda: IceTcpConnection(self), sock=listener)

    def flush_tcp(self) -> None:
        """Write what the Forwarder queued for TCP transports: one write per connection."""
        for transport in list(self.tcp_senders):
            selected = transport.ice.selected_tuple
            data = self.forwarder.take_tcp_output(transport.slot)
            if data is None or selected is None:
                continue
            connection = self.tcp_connections.get((selected.remote_ip, selected.remote_port))
            if connection is not None:
                connection.send_framed(data)

    # ---- packets the Forwarder hands up ----------------------------------------------------

    def _on_control(self, packets: list, events: list) -> None:
        for kind, data, where in packets:
            try:
                if kind == "stun":
                    transport = self.ufrags.get(ufrag_of(data) or "")
                    if transport is None:
                        self.control_drops["stun_unknown_ufrag"] += 1
                    else:
                        transport.on_stun(data, where)
                elif kind == "dtls":
                    transport = self.tuples.get((where[0], where[1]))
                    if transport is None:
                        self.control_drops["dtls_unknown_tuple"] += 1
                    else:
                        transport.on_dtls(data, where)
                elif kind == "rtp-tuple":
                    self._comedia_packet(data, where)
                else:
                    transport = self.transports_by_slot.get(where)
                    if transport is not None:
                        transport.on_unknown_rtp(data)
            except Exception:  # one bad datagram must not stop the others
                self.control_drops["control_error"] += 1
                log.exception("control packet (%s) failed", kind)
        for name, slot, *values in events:
            if name == "tcp-output":
                self.flush_tcp()
                continue
            consumer = self.consumers_by_slot.get(slot)
            if consumer is not None and name == "layerschange":
                spatial, temporal = values
                self.notify("consumer.layerschange", consumer.id,
                            {"spatialLayer": spatial, "temporalLayer": temporal} if spatial >= 0 else {})

    def _comedia_packet(self, data: bytes, addr: tuple) -> None:
        """Give a first packet from an unknown address to the comedia transport it belongs to.

        The SSRC is readable even under SRTP: a transport whose producer signalled
        it wins; otherwise the oldest waiting transport takes it.
        """
        is_rtcp = len(data) >= 2 and 192 <= data[1] <= 223
        candidates = [t for t in self.comedia_waiting if t.waits_for(addr, is_rtcp)]
        if not candidates:
            self.control_drops["unknown_tuple"] += 1
            return
        ssrc = int.from_bytes(data[8:12] if not is_rtcp else data[4:8], "big") if len(data) >= 12 else 0
        for transport in candidates:
            if any(ssrc == e.get("ssrc") for p in transport.producers.values() for e in p.encodings):
                transport.learn(addr, is_rtcp, data)
                return
        candidates[0].learn(addr, is_rtcp, data)

    async def _timers(self) -> None:
        ticks = 0
        while True:
            expected = self.loop.time() + TICK
            await asyncio.sleep(TICK)
            # how late the loop woke us: the time packets and requests waited behind other work
            self.loop_lag = max(0.0, self.loop.time() - expected)
            try:
                self.forwarder.send_reports(ticks % REPORT_PARTS, REPORT_PARTS)
                if ticks % round(LAYER_INTERVAL / TICK) == 0:
                    self.forwarder.update_layers()
                    for router in list(self.routers.values()):
                        change = router.pick_active_speaker()
                        if change is not None:
                            self.notify("router.activespeaker", router.id,
                                        {"producerId": change[0], "volume": change[1]})
                if ticks % REPORT_PARTS == 0:
                    now = self.loop.time()
                    for transport in list(self.transports.values()):
                        transport.check_consent(now)
                self.flush_tcp()
            except Exception:
                log.exception("periodic engine work failed")
            ticks += 1

    # ---- requests -------------------------------------------------------------------------

    async def handle(self, method: str, data: dict) -> dict:
        handler = REQUESTS.get(method)
        if handler is None:
            raise not_found("method", method)
        if not isinstance(data, dict):
            raise invalid_input("request data must be a map")
        try:
            return handler(self, data) or {}
        except KeyError as exc:
            raise invalid_input(f"missing or unknown field {exc}") from None
        finally:
            if self.tcp_senders:  # a request may have queued RTCP (a key frame request) for TCP
                self.flush_tcp()

    def _router(self, data: dict) -> Router:
        router = self.routers.get(data["routerId"])
        if router is None:
            raise not_found("router", data["routerId"])
        return router

    def _transport(self, data: dict) -> WebRtcTransport:
        transport = self.transports.get(data["transportId"])
        if transport is None:
            raise not_found("transport", data["transportId"])
        return transport

    def _producer(self, data: dict):
        producer = self.producers.get(data["producerId"])
        if producer is None:
            raise not_found("producer", data["producerId"])
        return producer

    def _consumer(self, data: dict):
        consumer = self.consumers.get(data["consumerId"])
        if consumer is None:
            raise not_found("consumer", data["consumerId"])
        return consumer

    def _data_object(self, data: dict, table: str, key: str):
        item = getattr(self, table).get(data[key])
        if item is None:
            raise not_found(key.removesuffix("Id"), data[key])
        return item

    def handle_notification(self, event: str, target: str | None, data: dict) -> None:
        """A notification from the main process (no answer): a message relayed from another worker."""
        if event == "dataProducer.message" and isinstance(data, dict):
            relayed_message(self, target, data)
        else:
            self.control_drops["unknown_notification"] += 1

    def dump(self) -> dict:
        return {
            "pid": os.getpid(),
            "routerIds": list(self.routers),
            "tables": {**self.forwarder.table_sizes(), "routers": len(self.routers),
                       "transportObjects": len(self.transports), "producers": len(self.producers),
                       "consumerObjects": len(self.consumers), "ufrags": len(self.ufrags),
                       "dataProducers": len(self.data_producers), "dataConsumers": len(self.data_consumers),
                       "iceTuples": len(self.tuples)},
        }

    def counters(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # monotonicSeconds: when they were read, on the clock every process of the machine shares, so a
        # rate taken between two answers does not depend on how late a busy worker answered
        return {**self.forwarder.counters(), "controlDrops": dict(self.control_drops),
                "loopLagSeconds": self.loop_lag, "cpuSeconds": usage.ru_utime + usage.ru_stime,
                "monotonicSeconds": time.monotonic()}

    def close(self) -> None:
        for router in list(self.routers.values()):
            router.close()
        self.routers.clear()
        self._timer_task.cancel()
        self.loop.remove_reader(self._udp.fileno())
        if self._tcp_server is not None:
            self._tcp_server.close()
        for connection in list(self.tcp_connections.values()):
            if connection.transport is not None:
                connection.transport.close()


def _create_router(engine: Engine, data: dict) -> dict:
    router_id = data["routerId"]
    if router_id not in engine.routers:
        engine.routers[router_id] = Router(router_id)
    return {}


def _close_router(engine: Engine, data: dict) -> dict:
    router = engine.routers.pop(data["routerId"], None)
    if router is not None:
        router.close()
    return {}


def _webrtc_transport() -> type:
    """WebRtcTransport, imported with the first one: it brings DTLS and STUN libraries along."""
    from media.engine.webrtc_transport import WebRtcTransport

    return WebRtcTransport


def _transport_creator(kind: Callable[[], type]) -> Callable[[Engine, dict], dict]:
    """router.createWebRtcTransport / router.createPlainTransport: the new transport's answer."""
    def create(engine: Engine, data: dict) -> dict:
        router = engine._router(data)
        transport_id = data["transportId"]
        if transport_id in engine.transports:
            raise invalid_input(f"transport {transport_id!r} already exists")
        cls = kind()
        if cls is PlainTransport and data.get("pipe"):
            cls = PipeTransport
        transport = cls(engine, router, transport_id, data)
        router.transports[transport_id] = transport
        engine.transports[transport_id] = transport
        return transport.answer()
    return create


def _closer(table: str, key: str) -> Callable[[Engine, dict], dict]:
    """A close request: closing what is already gone is not an error (the cascade got there first)."""
    def close(engine: Engine, data: dict) -> dict:
        item = getattr(engine, table).get(data[key])
        if item is not None:
            item.close()
        return {}
    return close


def _set_preferred_layers(engine: Engine, data: dict) -> dict:
    spatial, temporal = data["spatialLayer"], data.get("temporalLayer")
    for name, value in (("spatialLayer", spatial), ("temporalLayer", temporal)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise invalid_input(f"{name} must be a non-negative integer")
    if spatial is None:
        raise invalid_input("spatialLayer must be a non-negative integer")
    engine._consumer(data).set_preferred_layers(spatial, temporal)
    return {}


def _data_request(transport, data: dict, own: Callable, piped: Callable) -> dict:
    """produceData / consumeData: on a WebRTC transport's SCTP, or the relay ends of a pipe (media/engine/data_pipe.py)."""
    if isinstance(transport, PipeTransport) and data.get("pipe"):
        return piped(transport, data)
    return own(transport, data)


REQUESTS: dict[str, Callable[[Engine, dict], dict | None]] = {
    "worker.dump": lambda e, d: e.dump(),
    "worker.counters": lambda e, d: e.counters(),
    "router.create": _create_router,
    "router.close": _close_router,
    "router.dump": lambda e, d: e._router(d).dump(),
    "router.createWebRtcTransport": _transport_creator(_webrtc_transport),
    "router.createPlainTransport": _transport_creator(lambda: PlainTransport),
    "transport.connect": lambda e, d: e._transport(d).connect(d),
    "transport.restartIce": lambda e, d: e._transport(d).restart_ice(),
    "transport.close": _closer("transports", "transportId"),
    "transport.getStats": lambda e, d: {"stats": e._transport(d).get_stats()},
    "transport.setMaxIncomingBitrate": lambda e, d: e._transport(d).set_max_incoming_bitrate(d),
    "transport.produce": lambda e, d: e._transport(d).produce(d),
    "transport.consume": lambda e, d: e._transport(d).consume(d),
    "producer.close": _closer("producers", "producerId"),
    "producer.pause": lambda e, d: e._producer(d).set_paused(True),
    "producer.resume": lambda e, d: e._producer(d).set_paused(False),
    "producer.requestKeyFrame": lambda e, d: e._producer(d).request_key_frame(),
    "producer.getStats": lambda e, d: {"stats": e._producer(d).get_stats()},
    "consumer.close": _closer("consumers", "consumerId"),
    "consumer.pause": lambda e, d: e._consumer(d).set_paused(True),
    "consumer.resume": lambda e, d: e._consumer(d).set_paused(False),
    "consumer.setPreferredLayers": _set_preferred_layers,
    "consumer.requestKeyFrame": lambda e, d: e._consumer(d).request_key_frame(),
    "consumer.getStats": lambda e, d: {"stats": e._consumer(d).get_stats()},
    "transport.produceData": lambda e, d: _data_request(e._transport(d), d, produce_data, produce_pipe_data),
    "transport.consumeData": lambda e, d: _data_request(e._transport(d), d, consume_data, consume_pipe_data),
    "dataProducer.close": _closer("data_producers", "dataProducerId"),
    "dataProducer.getStats": lambda e, d: {
        "stats": e._data_object(d, "data_producers", "dataProducerId").get_stats()},
    "dataConsumer.close": _closer("data_consumers", "dataConsumerId"),
    "dataConsumer.getStats": lambda e, d: {
        "stats": e._data_object(d, "data_consumers", "dataConsumerId").get_stats()},
}
