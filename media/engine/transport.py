"""What every transport in the worker shares: a Forwarder slot, producers, consumers, close cascade."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from fastpath.rtp import parse_rtp_py

from media.engine.consumer import Consumer
from media.engine.errors import invalid_input, invalid_state, not_found
from media.engine.pipe_consumer import PipeConsumer
from media.engine.producer import Producer, extension_ids, rid_of
from media.limits import MAX_INCOMING_BITRATE
from media.ortc.capabilities import TRANSPORT_WIDE_CC_URI

if TYPE_CHECKING:
    from media.engine.core import Engine
    from media.engine.data_consumer import DataConsumer
    from media.engine.data_producer import DataProducer
    from media.engine.router import Router


def incoming_feedback(producers: list[Producer]) -> tuple[int, bool]:
    """What the senders on a transport expect to hear about the path from them.

    (transport-cc extension id, REMB): the id when a producer negotiated both the transport-cc
    feedback and its header extension (browsers), REMB when one negotiated goog-remb (aiortc);
    the Forwarder sends REMB estimates only where there is no transport-cc. The header extension
    id is the transport's (mediasoup-client uses one per transport, as the router's capabilities
    give it).
    """
    twcc_id, remb = 0, False
    for producer in producers:
        feedback = {fb.get("type") for codec in producer.rtp_parameters["codecs"]
                    for fb in codec.get("rtcpFeedback") or []}
        ext_id = extension_ids(producer.rtp_parameters).get(TRANSPORT_WIDE_CC_URI, 0)
        if "transport-cc" in feedback and ext_id and not twcc_id:
            twcc_id = int(ext_id)
        remb = remb or "goog-remb" in feedback
    return twcc_id, remb


class Transport:
    """A transport's packet state lives in the Forwarder slot; this object owns the control state."""

    kind = "transport"

    def __init__(self, engine: Engine, router: Router, transport_id: str):
        self.engine = engine
        self.router = router
        self.id = transport_id
        self.closed = False
        self.slot = engine.forwarder.add_transport(secrets.randbits(32) or 1)
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer | PipeConsumer] = {}
        self.probator_pt: int | None = None  # set by the first video consumer (probing without RTX)
        # DataChannels (SCTP): only a WebRTC transport with an association has any
        self.data_producers: dict[str, DataProducer] = {}
        self.data_consumers: dict[str, DataConsumer] = {}
        engine.transports_by_slot[self.slot] = self
        engine.forwarder.set_max_incoming_bitrate(self.slot, engine.max_incoming_bitrate)

    # ---- producers and consumers ----------------------------------------------------------

    def produce(self, data: dict) -> dict:
        """Create a producer from main-process-validated parameters and its ORTC mapping."""
        producer_id = data["producerId"]
        if producer_id in self.engine.producers:
            raise invalid_state(f"producer {producer_id!r} already exists")
        params = data["rtpParameters"]
        mid = params.get("mid")
        if mid and any(p.mid == mid for p in self.producers.values()):
            raise invalid_input(f"mid {mid!r} is already used by a producer of this transport")
        producer = Producer(self, producer_id, data["kind"], params, data["rtpMapping"],
                            bool(data.get("paused")))
        self.producers[producer_id] = producer
        self.router.producers[producer_id] = producer
        self.engine.producers[producer_id] = producer
        self.engine.forwarder.set_transport_incoming_feedback(
            self.slot, *incoming_feedback(list(self.producers.values())))
        return {}

    def set_max_incoming_bitrate(self, data: dict) -> dict:
        """The most the remote sender is told it may send on this transport (bits/s; 0: no ceiling)."""
        bitrate = data.get("bitrate")
        if isinstance(bitrate, bool) or not isinstance(bitrate, int) or not 0 <= bitrate <= MAX_INCOMING_BITRATE:
            raise invalid_input(f"bitrate must be an integer from 0 to {MAX_INCOMING_BITRATE}")
        self.engine.forwarder.set_max_incoming_bitrate(self.slot, bitrate)
        return {}

    def consume(self, data: dict) -> dict:
        """Create a consumer of a producer of the same router."""
        consumer_id = data["consumerId"]
        if consumer_id in self.engine.consumers:
            raise invalid_state(f"consumer {consumer_id!r} already exists")
        producer = self.router.producers.get(data["producerId"])
        if producer is None:
            raise not_found("producer", data["producerId"])
        if data.get("type") == "pipe":
            consumer: Consumer | PipeConsumer = PipeConsumer(self, consumer_id, producer, data)
        else:
            consumer = Consumer(self, consumer_id, producer, data)
        self.consumers[consumer_id] = consumer
        self.engine.consumers[consumer_id] = consumer
        return {}

    def on_unknown_rtp(self, packet: bytes) -> None:
        """The first packet of an SSRC no stream has claimed: match it by MID and RID."""
        header = parse_rtp_py(packet)
        if isinstance(header, int):
            return
        ssrc = header["ssrc"]
        for producer in self.producers.values():
            mid = producer.read_mid(packet)
            if producer.mid and mid is not None and mid != producer.mid:
                continue
            rid, repaired = rid_of(producer, packet)
            if producer.claim(ssrc, rid, repaired):
                return
        self.engine.control_drops["unmatched_ssrc"] += 1

    def check_consent(self, now: float) -> None:
        """ICE consent (RFC 7675) applies to WebRTC transports only."""

    def restart_ice(self) -> dict:
        raise invalid_state(f"a {self.kind} transport has no ICE to restart")

    # ---- close cascade ----------------------------------------------------------------------

    def close(self) -> None:
        """Close consumers and producers, then free the Forwarder slot."""
        if self.closed:
            return
        self.closed = True
        self.close_data()
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        self.engine.forwarder.remove_transport(self.slot)
        self.engine.transports_by_slot.pop(self.slot, None)
        self.engine.transports.pop(self.id, None)
        self.router.transports.pop(self.id, None)

    def close_data(self) -> None:
        """Close the data consumers, then the data producers (whose consumers elsewhere close with them)."""
        for data_consumer in list(self.data_consumers.values()):
            data_consumer.close()
        for data_producer in list(self.data_producers.values()):
            data_producer.close()

    def base_stats(self) -> dict:
        stats = self.engine.forwarder.transport_stats(self.slot)
        return {"type": f"{self.kind}-transport", "transportId": self.id, **stats}
