"""What every transport shares, seen from the main process (mediasoup's Transport).

A transport owns the producers sent over it and the consumers it sends;
`produce` and `consume` run mediasoup's ORTC rules here, before anything
reaches the worker, so that bad parameters fail with the field they name.
Closing is one cascade: consumers first (they hear "transportclose"), then
producers (whose consumers on other transports hear "producerclose").
WebRtcTransport and PlainTransport add how the remote end connects.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from pyee.asyncio import AsyncIOEventEmitter

from media import ortc
from media.api.consumer import Consumer, initial_layers
from media.api.errors import (
    CannotConsumeError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    close_request,
    from_ortc,
    log_listener_error,
    worker_request,
)
from media.api.producer import Producer
from media.limits import MAX_INCOMING_BITRATE

if TYPE_CHECKING:
    from media.api.data_consumer import DataConsumer
    from media.api.data_producer import DataProducer
    from media.api.router import Router

MEDIA_KINDS = ("audio", "video")
# mediasoup keeps consumer MIDs to 8 characters and starts over after that.
MAX_MID = 100_000_000


def app_data_of(app_data: Any) -> dict[str, Any]:
    """The application's own data for an object: a dict, {} when not given."""
    if app_data is None:
        return {}
    if not isinstance(app_data, dict):
        raise InvalidInputError("appData must be an object")
    return app_data


def _check_stream_ids(params: ortc.RtpParameters, others: list[Producer]) -> None:
    """A transport tells its producers' packets apart by SSRC, MID or RID, so none may be reused (as mediasoup)."""
    mid = params.get("mid")
    if mid is not None and any(p.rtp_parameters.get("mid") == mid for p in others):
        raise InvalidInputError(f"rtpParameters.mid {mid!r} is already used on this transport")
    used_ssrcs = {
        ssrc
        for p in others
        for encoding in p.rtp_parameters["encodings"]
        for ssrc in (encoding.get("ssrc"), encoding.get("rtx", {}).get("ssrc"))
        if ssrc is not None
    }
    used_rids = {e["rid"] for p in others for e in p.rtp_parameters["encodings"] if "rid" in e}
    for encoding in params["encodings"]:
        for ssrc in (encoding.get("ssrc"), encoding.get("rtx", {}).get("ssrc")):
            if ssrc is not None and ssrc in used_ssrcs:
                raise InvalidInputError(f"ssrc {ssrc} is already used on this transport")
        # Without a MID a RID alone must say which producer a packet is for.
        if mid is None and encoding.get("rid") in used_rids:
            raise InvalidInputError(
                f"rid {encoding['rid']!r} is already used on this transport and no mid is given"
            )


class Transport(AsyncIOEventEmitter):
    """Events: `routerclose`; private `@close` (closed by the application)."""

    def __init__(self, router: Router, transport_id: str, app_data: dict[str, Any]):
        super().__init__()
        self.on("error", log_listener_error)
        self.router = router
        self.worker = router.worker
        self.id = transport_id
        self.app_data = app_data
        self.closed = False
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        # SCTP streams of a WebRTC transport, or the relay ends of a data pipe (media/api/data_pipe.py)
        self.data_producers: dict[str, DataProducer] = {}
        self.data_consumers: dict[str, DataConsumer] = {}
        self._cname_for_producers: str | None = None
        self._next_mid = 0

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidStateError(f"transport {self.id} is closed")

    async def set_max_incoming_bitrate(self, bitrate: int) -> None:
        """Cap what the remote sender is told it may send here (bits/s; 0: no ceiling), as mediasoup's.

        The worker tells the sender by REMB; with transport-cc, libwebrtc caps its own estimate at it.
        """
        self._check_open()
        if isinstance(bitrate, bool) or not isinstance(bitrate, int) or not 0 <= bitrate <= MAX_INCOMING_BITRATE:
            raise InvalidInputError(f"bitrate must be an integer from 0 to {MAX_INCOMING_BITRATE}")
        await worker_request(self.worker, "transport.setMaxIncomingBitrate",
                             {"transportId": self.id, "bitrate": bitrate})

    async def produce(
        self,
        kind: str,
        rtp_parameters: ortc.RtpParameters,
        paused: bool = False,
        app_data: dict[str, Any] | None = None,
        producer_id: str | None = None,
    ) -> Producer:
        """Receive a media source over this transport; the parameters are validated and mapped first."""
        self._check_open()
        app_data = app_data_of(app_data)
        if kind not in MEDIA_KINDS:
            raise InvalidInputError(f"kind must be audio or video, not {kind!r}")
        if producer_id is not None and (not isinstance(producer_id, str) or not producer_id):
            raise InvalidInputError("producer id must be a non-empty string")
        if producer_id in self.router.producers:
            raise InvalidInputError(f"a producer with id {producer_id!r} already exists")
        # The caller's object stays untouched: validation normalises in place.
        params = copy.deepcopy(rtp_parameters)
        caps = self.router.rtp_capabilities
        try:
            ortc.validate_rtp_parameters(params)
            if not params["encodings"]:
                params["encodings"] = [{}]
            _check_stream_ids(params, list(self.producers.values()))
            self._set_cname(params)
            rtp_mapping = ortc.get_producer_rtp_parameters_mapping(params, caps)
            consumable = ortc.get_consumable_rtp_parameters(kind, params, caps, rtp_mapping)
        except ortc.OrtcError as exc:
            raise from_ortc(exc) from None
        producer_id = producer_id or str(uuid.uuid4())
        await worker_request(self.worker, "transport.produce", {
            "transportId": self.id,
            "producerId": producer_id,
            "kind": kind,
            "rtpParameters": params,
            "rtpMapping": rtp_mapping,
            "paused": bool(paused),
        })
        # Closed meanwhile: the worker closed the producer with the transport.
        self._check_open()
        producer = Producer(self, producer_id, kind, params, ortc.get_producer_type(params),
                            consumable, rtp_mapping, bool(paused), app_data)
        self.producers[producer_id] = producer
        self.router.producers[producer_id] = producer
        return producer

    def _set_cname(self, params: ortc.RtpParameters) -> None:
        """All producers of a transport share one RTCP CNAME, the first one given (as mediasoup)."""
        if self._cname_for_producers is None:
            self._cname_for_producers = params["rtcp"].get("cname") or secrets.token_hex(4)
        params["rtcp"]["cname"] = self._cname_for_producers

    async def consume(
        self,
        producer_id: str,
        rtp_capabilities: ortc.RtpCapabilities,
        paused: bool = True,
        preferred_layers: dict[str, int] | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> Consumer:
        """Send a producer of the router to the endpoint with these RtpCapabilities."""
        self._check_open()
        app_data = app_data_of(app_data)
        caps = copy.deepcopy(rtp_capabilities)
        try:
            ortc.validate_rtp_capabilities(caps)
        except ortc.OrtcError as exc:
            raise from_ortc(exc) from None
        producer = self.router.producers.get(producer_id) if isinstance(producer_id, str) else None
        if producer is None:
            raise NotFoundError(f"producer {producer_id!r} not found")
        if not self.router.can_consume(producer_id, caps):
            raise CannotConsumeError(f"these rtpCapabilities cannot receive producer {producer_id}")
        try:
            params = ortc.get_consumer_rtp_parameters(producer.consumable_rtp_parameters, caps)
        except ortc.OrtcError as exc:
            raise CannotConsumeError(str(exc)) from None
        layers = initial_layers(params, producer.type, preferred_layers)
        params["mid"] = self._take_mid()
        consumer_id = str(uuid.uuid4())
        await worker_request(self.worker, "transport.consume", {
            "transportId": self.id,
            "consumerId": consumer_id,
            "producerId": producer.id,
            "kind": producer.kind,
            "rtpParameters": params,
            "type": producer.type,
            "consumableRtpEncodings": producer.consumable_rtp_parameters["encodings"],
            "producerRtpParameters": producer.rtp_parameters,
            "rtpMapping": producer.rtp_mapping,
            "paused": bool(paused),
            "producerPaused": producer.paused,
            "preferredLayers": layers,
        })
        # Closed meanwhile: the worker closed the consumer with the transport or the producer.
        self._check_open()
        if producer.closed:
            raise InvalidStateError(f"producer {producer.id} closed while it was being consumed")
        consumer = Consumer(self, producer, consumer_id, params, producer.type, bool(paused), layers, app_data)
        self.consumers[consumer_id] = consumer
        producer.consumers[consumer_id] = consumer
        self.router._add_target(consumer)
        return consumer

    def _take_mid(self) -> str:
        mid = str(self._next_mid)
        self._next_mid = (self._next_mid + 1) % MAX_MID
        return mid

    async def get_stats(self) -> list[dict[str, Any]]:
        self._check_open()
        data = await worker_request(self.worker, "transport.getStats", {"transportId": self.id})
        return data.get("stats", [])

    async def close(self) -> None:
        """Close the transport with its producers and consumers; the worker is told once."""
        if self.closed:
            return
        self._close_here()
        self.emit("@close")
        await close_request(self.worker, "transport.close", {"transportId": self.id})

    def router_closed(self) -> None:
        """Its router closed (the worker already knows): close without a request."""
        if self.closed:
            return
        self._close_here()
        self.emit("routerclose")

    def _close_here(self) -> None:
        self.closed = True
        self._closed_states()
        self.router.transports.pop(self.id, None)
        self.router._forget_target(self.id)
        # data consumers first (they hear "transportclose"), then data producers (whose data
        # consumers on other transports hear "dataproducerclose"), as for media
        for data_consumer in list(self.data_consumers.values()):
            data_consumer.transport_closed()
        for data_producer in list(self.data_producers.values()):
            data_producer.transport_closed()
        for consumer in list(self.consumers.values()):
            consumer.transport_closed()
        for producer in list(self.producers.values()):
            producer.transport_closed()
        self.consumers.clear()
        self.producers.clear()

    def _closed_states(self) -> None:
        """Subclasses set their connection states to closed."""

    def _handle_notification(self, event: str, data: dict[str, Any]) -> None:
        """A worker notification addressed to this transport (subclasses know which)."""
