"""A consumer in the worker: a Forwarder consumer fed by its producer's streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.engine.producer import extension_ids, media_codec
from media.ortc.capabilities import (
    DEPENDENCY_DESCRIPTOR_URI,
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
    TRANSPORT_WIDE_CC_URI,
)
from media.ortc.codecs import is_red_codec, is_rtx_codec
from media.ortc.streams import parse_scalability_mode

if TYPE_CHECKING:
    from media.engine.producer import Producer
    from media.engine.transport import Transport

# mediasoup-client's probator receiver (ortc.generateProbatorRtpParameters): SSRC 1234, this type
PROBATOR_PAYLOAD_TYPE = 127

# what one Forwarder consumer can choose from (fastpath/state.pxd)
MAX_SPATIAL_LAYERS = 3
MAX_TEMPORAL_LAYERS = 4

# The consumer's MID differs from the producer's and RIDs mean nothing to a
# receiver of one layer: these are dropped rather than copied (the receiver
# demuxes by the SSRC it was signalled).
NOT_FORWARDED_EXTENSIONS = {MID_URI, RID_URI, REPAIRED_RID_URI}


def payload_type_map(rtp_mapping: dict, consumer_parameters: dict) -> dict[int, int]:
    """Producer payload type -> ours, through the router's payload types (the ORTC mapping)."""
    ours = {codec["payloadType"] for codec in consumer_parameters["codecs"]}
    return {
        m["payloadType"]: m["mappedPayloadType"]
        for m in rtp_mapping["codecs"]
        if m["mappedPayloadType"] in ours
    }


def red_stream(producer_parameters: dict, rtp_mapping: dict, consumer_parameters: dict) -> tuple[int, bool]:
    """The producer's RED payload type (RFC 2198), and whether this consumer gets RED cut to its
    primary encoding because it did not negotiate RED; (-1, False) for a producer without RED."""
    red_pt = next((int(c["payloadType"]) for c in producer_parameters["codecs"] if is_red_codec(c)), None)
    if red_pt is None:
        return -1, False
    ours = {codec["payloadType"] for codec in consumer_parameters["codecs"]}
    mapped = next(m["mappedPayloadType"] for m in rtp_mapping["codecs"] if m["payloadType"] == red_pt)
    return red_pt, mapped not in ours


def rtx_stream(consumer_parameters: dict) -> tuple[int, int]:
    """The RTX SSRC and payload type (RFC 4588) retransmissions use; (0, -1) without RTX."""
    ssrc = (consumer_parameters["encodings"][0].get("rtx") or {}).get("ssrc")
    media_pt = media_codec(consumer_parameters)["payloadType"]
    rtx_pt = next(
        (c["payloadType"] for c in consumer_parameters["codecs"]
         if is_rtx_codec(c) and c.get("parameters", {}).get("apt") == media_pt),
        None,
    )
    if ssrc is None or rtx_pt is None:
        return 0, -1
    return int(ssrc), int(rtx_pt)


def extension_map(producer_parameters: dict, consumer_parameters: dict) -> dict[int, int]:
    """Producer extension id -> ours, by URI; extensions we don't send are dropped.

    The dependency descriptor goes to AV1 consumers only: it is what their layers are chosen by,
    and their receiver learns from it which frames a reduced stream still needs. Chromium sends
    it with every codec once negotiated; a VP8 receiver would then follow the descriptor's frame
    numbers across a simulcast switch, from another encoder, instead of the picture ids we rewrite.
    """
    ours = extension_ids(consumer_parameters)
    av1 = media_codec(consumer_parameters)["mimeType"].lower() == "video/av1"
    return {
        ext_id: ours[uri]
        for uri, ext_id in extension_ids(producer_parameters).items()
        if uri in ours and uri not in NOT_FORWARDED_EXTENSIONS
        and (av1 or uri != DEPENDENCY_DESCRIPTOR_URI)
    }


class Consumer:
    """One receiver's copy of a producer; the layer choice and rewriting happen in the Forwarder."""

    def __init__(self, transport: Transport, consumer_id: str, producer: Producer, data: dict):
        self.transport = transport
        self.engine = transport.engine
        self.id = consumer_id
        self.producer = producer
        self.closed = False
        self.kind = producer.kind
        self.rtp_parameters = data["rtpParameters"]
        self.paused = bool(data.get("paused"))
        self.producer_paused = producer.paused
        self.type = data.get("type", "simple")
        encoding = self.rtp_parameters["encodings"][0]
        self.ssrc = int(encoding["ssrc"])
        codec = media_codec(self.rtp_parameters)
        layer_count = len(producer.encodings) if self.type == "simulcast" else 1
        # layers within a stream: temporal ones (simulcast and SVC), spatial ones of an SVC stream
        mode = parse_scalability_mode(encoding.get("scalabilityMode"))
        layered = self.type in ("simulcast", "svc") and self.kind == "video"
        temporal_layers = min(mode["temporalLayers"], MAX_TEMPORAL_LAYERS) if layered else 1
        svc_layers = min(mode["spatialLayers"], MAX_SPATIAL_LAYERS) if self.type == "svc" else 1
        preferred = (data.get("preferredLayers") or {}).get("spatialLayer")
        preferred_temporal = (data.get("preferredLayers") or {}).get("temporalLayer")
        twcc_id = extension_ids(self.rtp_parameters).get(TRANSPORT_WIDE_CC_URI, 0)
        rtx_ssrc, rtx_payload_type = rtx_stream(self.rtp_parameters)
        pt_map = payload_type_map(producer.rtp_mapping, self.rtp_parameters)
        red_pt, red_strip = red_stream(producer.rtp_parameters, producer.rtp_mapping, self.rtp_parameters)
        if red_strip:
            # forwarded, then sent as the payload type of its primary block (fastpath/red.pyx)
            pt_map[red_pt] = int(codec["payloadType"])
        fwd = self.engine.forwarder
        self.slot = fwd.add_consumer(
            transport.slot, self.ssrc, layer_count, pt_map,
            extension_map(producer.rtp_parameters, self.rtp_parameters),
            twcc_id, producer.codec_id, int(codec["clockRate"]), self.kind == "video",
            self.paused, -1 if preferred is None else int(preferred), rtx_ssrc, rtx_payload_type,
            temporal_layers=temporal_layers,
            preferred_temporal=-1 if preferred_temporal is None else int(preferred_temporal),
            svc_layers=svc_layers, ksvc=bool(mode["ksvc"]) and svc_layers > 1,
        )
        if red_pt >= 0:
            fwd.set_consumer_red(self.slot, red_pt, red_strip)
        if self.kind == "video" and twcc_id and transport.probator_pt is None:
            # with its first video consumer mediasoup-client receives SSRC 1234, payload type 127 (the
            # consumer's codec, its header extensions) for probation: a transport whose consumers
            # have no RTX is probed with padding there
            transport.probator_pt = PROBATOR_PAYLOAD_TYPE
            fwd.set_transport_probator(transport.slot, transport.probator_pt)
        if self.producer_paused:
            fwd.set_consumer_paused(self.slot, self.paused, True)
        self.engine.consumers_by_slot[self.slot] = self
        producer.consumers.add(self)
        for layer, stream in enumerate(producer.streams[:layer_count]):
            if stream is not None:
                self.attach(layer, stream)

    def attach(self, layer: int, stream: int) -> None:
        if not self.closed and layer < (len(self.producer.encodings) if self.type == "simulcast" else 1):
            self.engine.forwarder.attach_stream(self.slot, layer, stream)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.engine.forwarder.set_consumer_paused(self.slot, paused, self.producer_paused)

    def set_producer_paused(self, paused: bool) -> None:
        self.producer_paused = paused
        self.engine.forwarder.set_consumer_paused(self.slot, self.paused, paused)

    def set_preferred_layers(self, spatial_layer: int, temporal_layer: int | None = None) -> None:
        """Prefer these layers (None: the highest temporal one); clipped to what the stream has."""
        self.engine.forwarder.set_consumer_preferred_layer(
            self.slot, spatial_layer, -1 if temporal_layer is None else temporal_layer)

    def request_key_frame(self) -> None:
        stats = self.engine.forwarder.consumer_stats(self.slot)
        layer = stats["currentLayer"] if stats["currentLayer"] >= 0 else stats["targetLayer"]
        self.producer.request_key_frame(layer if self.type == "simulcast" else None)

    def get_stats(self) -> list[dict]:
        entry = self.engine.forwarder.consumer_stats(self.slot)
        return [{"type": "outbound-rtp", "kind": self.kind,
                 "mimeType": media_codec(self.rtp_parameters)["mimeType"], **entry}]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.forwarder.remove_consumer(self.slot)
        self.engine.consumers_by_slot.pop(self.slot, None)
        self.producer.consumers.discard(self)
        self.transport.consumers.pop(self.id, None)
        self.engine.consumers.pop(self.id, None)
