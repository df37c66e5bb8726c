"""A room's media on one worker, seen from the main process (mediasoup's Router).

The router owns the transports and knows every producer of the room, so any
transport can consume any of them. It also routes the worker's notifications
(ICE and DTLS states, layer changes) to the transport or consumer they name;
that table, like every other, loses an object the moment it closes.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import TYPE_CHECKING, Any

from pyee.asyncio import AsyncIOEventEmitter

from common.log import get_logger
from media import ortc
from media.api.data_pipe import PipeDataConsumer, pipe_data_to_router
from media.api.errors import (
    InvalidInputError,
    InvalidStateError,
    close_request,
    from_ortc,
    log_listener_error,
    worker_request,
)
from media.api.pipe_transport import PipeTransport, create_pipe_pair, pipe_to_router
from media.api.plain_transport import PlainTransport, check_srtp_crypto_suite
from media.api.sctp import MAX_SCTP_MESSAGE_SIZE, sctp_request
from media.api.transport import Transport, app_data_of
from media.api.webrtc_transport import WebRtcTransport

if TYPE_CHECKING:
    from media.api.consumer import Consumer
    from media.api.data_producer import DataProducer
    from media.api.producer import Producer
    from media.api.worker import Worker

log = get_logger("router")


class Router(AsyncIOEventEmitter):
    """Events: `workerclose` (its worker closed or died), `activespeaker` ({producerId, volume}: the
    loudest audio producer, or None for both when nobody speaks); private `@close` (closed by the application)."""

    def __init__(
        self, worker: Worker, router_id: str, rtp_capabilities: ortc.RtpCapabilities, app_data: dict[str, Any]
    ):
        super().__init__()
        self.on("error", log_listener_error)
        self.worker = worker
        self.id = router_id
        self.rtp_capabilities = rtp_capabilities
        self.app_data = app_data
        self.closed = False
        self.transports: dict[str, Transport] = {}
        self.producers: dict[str, Producer] = {}
        self.data_producers: dict[str, DataProducer] = {}
        self._targets: dict[str, Transport | Consumer] = {}
        # pipe transport pairs by the other router's id (this end first), pending while created
        self._pipes: dict[str, asyncio.Future[tuple[PipeTransport, PipeTransport]]] = {}
        # pipe close and pause follow-ups run as tasks; kept here so none is collected early
        self._pipe_tasks: set[asyncio.Task] = set()
        worker.on("notification", self._on_notification)

    @classmethod
    async def create(
        cls, worker: Worker, media_codecs: list[dict[str, Any]] | None, app_data: dict[str, Any] | None
    ) -> Router:
        """Validate the media codecs, then create the router in the worker (Worker.create_router)."""
        app_data = app_data_of(app_data)
        try:
            rtp_capabilities = ortc.generate_router_rtp_capabilities(media_codecs)
        except ortc.OrtcError as exc:
            raise from_ortc(exc) from None
        router_id = str(uuid.uuid4())
        await worker_request(worker, "router.create", {"routerId": router_id})
        if worker.closed:
            raise InvalidStateError(f"worker {worker.index} closed while the router was being created")
        return cls(worker, router_id, rtp_capabilities, app_data)

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidStateError(f"router {self.id} is closed")

    def can_consume(self, producer_id: str, rtp_capabilities: ortc.RtpCapabilities) -> bool:
        """Whether an endpoint with these RtpCapabilities can receive the producer (False if unknown)."""
        self._check_open()
        producer = self.producers.get(producer_id) if isinstance(producer_id, str) else None
        if producer is None:
            return False
        try:
            return ortc.can_consume(producer.consumable_rtp_parameters, copy.deepcopy(rtp_capabilities))
        except ortc.OrtcError:
            return False

    async def create_webrtc_transport(
        self,
        enable_udp: bool = True,
        enable_tcp: bool = True,
        prefer_udp: bool = True,
        app_data: dict[str, Any] | None = None,
        enable_sctp: bool = False,
        num_sctp_streams: dict[str, int] | None = None,
        max_sctp_message_size: int = MAX_SCTP_MESSAGE_SIZE,
    ) -> WebRtcTransport:
        """A transport for a browser or another WebRTC client: ICE-lite on the worker's shared port.

        enable_sctp: DataChannels over the transport's DTLS (RFC 8261), with mediasoup's
        numSctpStreams ({OS, MIS}, 1024 each by default) and maxSctpMessageSize (262144).
        """
        self._check_open()
        app_data = app_data_of(app_data)
        if not (enable_udp or enable_tcp):
            raise InvalidInputError("enable_udp or enable_tcp must be true")
        transport_id = str(uuid.uuid4())
        data = await worker_request(self.worker, "router.createWebRtcTransport", {
            "routerId": self.id,
            "transportId": transport_id,
            "enableUdp": bool(enable_udp),
            "enableTcp": bool(enable_tcp),
            "preferUdp": bool(prefer_udp),
            **sctp_request(enable_sctp, num_sctp_streams, max_sctp_message_size),
        })
        self._check_created()
        transport = WebRtcTransport(self, transport_id, data, app_data)
        self._adopt(transport)
        return transport

    async def create_plain_transport(
        self,
        rtcp_mux: bool = True,
        comedia: bool = False,
        enable_srtp: bool = False,
        srtp_crypto_suite: str = "AES_CM_128_HMAC_SHA1_80",
        app_data: dict[str, Any] | None = None,
        transport_class: type[PlainTransport] = PlainTransport,
    ) -> PlainTransport:
        """A plain RTP transport for ffmpeg, GStreamer or a recorder (optionally SRTP with signalled keys).

        transport_class: PipeTransport for one end of a pipe (pipe_to_router makes those).
        """
        self._check_open()
        app_data = app_data_of(app_data)
        check_srtp_crypto_suite(srtp_crypto_suite)
        transport_id = str(uuid.uuid4())
        data = await worker_request(self.worker, "router.createPlainTransport", {
            "routerId": self.id,
            "transportId": transport_id,
            "rtcpMux": bool(rtcp_mux),
            "comedia": bool(comedia),
            "enableSrtp": bool(enable_srtp),
            "srtpCryptoSuite": srtp_crypto_suite,
            "pipe": issubclass(transport_class, PipeTransport),
        })
        self._check_created()
        transport = transport_class(
            self, transport_id, data, app_data, bool(rtcp_mux), bool(comedia), bool(enable_srtp)
        )
        self._adopt(transport)
        return transport

    async def pipe_to_router(
        self, producer_id: str, router: Router, enable_srtp: bool = False
    ) -> tuple[Consumer, Producer]:
        """Consume a producer of this router on `router` (of another worker), as mediasoup's pipeToRouter.

        Returns (pipe consumer here, pipe producer there, with the producer's id); one pipe transport
        pair per router pair, made on first use and kept until either end closes.
        """
        return await pipe_to_router(self, producer_id, router, enable_srtp)

    async def pipe_data_to_router(self, data_producer_id: str, router: Router,
                                  enable_srtp: bool = False) -> tuple[PipeDataConsumer, DataProducer]:
        """Consume a data producer of this router on `router` (of another worker), as mediasoup's
        pipeToRouter({dataProducerId}): (pipe data consumer here, pipe data producer there, with the
        data producer's id), over the same pipe transport pair as media (media/api/data_pipe.py)."""
        return await pipe_data_to_router(self, data_producer_id, router, enable_srtp)

    async def _pipe_pair(self, other: Router, enable_srtp: bool) -> tuple[PipeTransport, PipeTransport]:
        """The pipe pair to `other` (this router's end first), made once even under concurrent calls."""
        pending = self._pipes.get(other.id)
        if pending is None:
            pending = asyncio.ensure_future(create_pipe_pair(self, other, enable_srtp))
            self._pipes[other.id] = pending
            other._pipes[self.id] = pending
            try:
                await asyncio.shield(pending)
            except BaseException:
                self._forget_pipe(other.id)
                other._forget_pipe(self.id)
                raise
        a, b = await asyncio.shield(pending)
        if a.closed or b.closed:
            raise InvalidStateError(f"the pipe between routers {self.id} and {other.id} closed")
        return (a, b) if a.router is self else (b, a)

    def _forget_pipe(self, other_id: str) -> None:
        self._pipes.pop(other_id, None)

    def _check_created(self) -> None:
        # Closed while the worker created it: the worker closes it with the router.
        if self.closed:
            raise InvalidStateError(f"router {self.id} closed while a transport was being created")

    def _adopt(self, transport: Transport) -> None:
        self.transports[transport.id] = transport
        self._add_target(transport)

    async def dump(self) -> dict[str, Any]:
        """The worker's view of the router: its transport, producer and consumer ids."""
        self._check_open()
        return await worker_request(self.worker, "router.dump", {"routerId": self.id})

    async def close(self) -> None:
        """Close the router with everything in it; the worker is told once."""
        if self.closed:
            return
        self._close_here()
        self.emit("@close")
        await close_request(self.worker, "router.close", {"routerId": self.id})

    def worker_closed(self) -> None:
        """Its worker closed or died: close without a request."""
        if self.closed:
            return
        self._close_here()
        self.emit("workerclose")

    def _close_here(self) -> None:
        self.closed = True
        self.worker.remove_listener("notification", self._on_notification)
        self.worker.routers.pop(self.id, None)
        for transport in list(self.transports.values()):
            transport.router_closed()
        self.transports.clear()
        self.producers.clear()
        self.data_producers.clear()
        self._targets.clear()

    # ---- worker notifications, by the id of the object they are for ----------------------

    def _add_target(self, target: Transport | Consumer) -> None:
        self._targets[target.id] = target

    def _forget_target(self, target_id: str) -> None:
        self._targets.pop(target_id, None)

    def _on_notification(self, event: str, target_id: str | None, data: dict[str, Any]) -> None:
        if target_id == self.id:
            if event == "router.activespeaker":
                self.emit("activespeaker", data)
            return
        target = self._targets.get(target_id) if target_id is not None else None
        if target is None:
            return
        # This runs in the channel's read loop: a bad notification must not stop it.
        try:
            target._handle_notification(event, data)
        except Exception:
            log.exception("notification %s for %s failed", event, target_id)
