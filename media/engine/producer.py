"""A producer in the worker: one Forwarder stream per encoding (simulcast layer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastpath.codecs import CODEC_AV1, codec_from_mime
from fastpath.rtp import find_extension_py

from media.ortc.capabilities import (
    AUDIO_LEVEL_URI,
    DEPENDENCY_DESCRIPTOR_URI,
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
)

if TYPE_CHECKING:
    from media.engine.consumer import Consumer
    from media.engine.transport import Transport


def media_codec(rtp_parameters: dict) -> dict:
    """The first codec that is not RTX: the one the encodings carry."""
    for codec in rtp_parameters["codecs"]:
        if not codec["mimeType"].lower().endswith("/rtx"):
            return codec
    raise ValueError("rtpParameters have no media codec")


def extension_ids(rtp_parameters: dict) -> dict[str, int]:
    """Header extension URI -> id as this side of the wire uses them."""
    return {ext["uri"]: ext["id"] for ext in rtp_parameters.get("headerExtensions", [])}


def rtx_payload_types(rtp_parameters: dict, codec: dict) -> tuple[int, int] | None:
    """(RTX payload type, media payload type) when RTX is signalled for the media codec (RFC 4588 §8.6)."""
    for candidate in rtp_parameters["codecs"]:
        if candidate["mimeType"].lower().endswith("/rtx") and \
                int((candidate.get("parameters") or {}).get("apt", -1)) == codec["payloadType"]:
            return int(candidate["payloadType"]), int(codec["payloadType"])
    return None


def rid_of(producer: Producer, packet: bytes) -> tuple[str | None, bool]:
    """The RID (or repaired RID, for RTX) in a packet, as text (RFC 8852)."""
    for uri, repaired in ((RID_URI, False), (REPAIRED_RID_URI, True)):
        ext_id = producer.ext_ids.get(uri)
        if ext_id:
            value = find_extension_py(packet, ext_id)
            if value:
                return value.decode("ascii", "replace"), repaired
    return None, False


class Producer:
    """Maps the producer's encodings to Forwarder streams, found by SSRC or, for RID simulcast, on first packet."""

    def __init__(self, transport: Transport, producer_id: str, kind: str, rtp_parameters: dict,
                 rtp_mapping: dict, paused: bool):
        self.transport = transport
        self.engine = transport.engine
        self.id = producer_id
        self.kind = kind
        self.rtp_parameters = rtp_parameters
        self.rtp_mapping = rtp_mapping
        self.paused = paused
        self.closed = False
        self.mid = rtp_parameters.get("mid")
        codec = media_codec(rtp_parameters)
        self.codec_id = codec_from_mime(codec["mimeType"])
        self.clock_rate = int(codec["clockRate"])
        self.ext_ids = extension_ids(rtp_parameters)
        self.rtx = rtx_payload_types(rtp_parameters, codec)
        self.encodings = rtp_parameters["encodings"]
        self.streams: list[int | None] = [None] * len(self.encodings)
        self.consumers: set[Consumer] = set()
        for layer, encoding in enumerate(self.encodings):
            if encoding.get("ssrc"):
                rtx = (encoding.get("rtx") or {}).get("ssrc", 0)
                self._add_stream(layer, int(encoding["ssrc"]), int(rtx))

    def read_mid(self, packet: bytes) -> str | None:
        ext_id = self.ext_ids.get(MID_URI)
        if not ext_id:
            return None
        value = find_extension_py(packet, ext_id)
        return value.decode("ascii", "replace") if value else None

    def claim(self, ssrc: int, rid: str | None, repaired: bool) -> bool:
        """Take an unknown SSRC if it is one of our RID encodings (or its RTX)."""
        for layer, encoding in enumerate(self.encodings):
            if rid is None or encoding.get("rid") != rid:
                continue
            stream = self.streams[layer]
            if repaired:
                if stream is not None:
                    self.engine.forwarder.set_stream_rtx_ssrc(stream, ssrc)
                    self._enable_rtx(stream)
                return stream is not None
            if stream is None:
                self._add_stream(layer, ssrc, 0)
            return True
        return False

    def _add_stream(self, layer: int, ssrc: int, rtx_ssrc: int) -> None:
        fwd = self.engine.forwarder
        stream = fwd.add_producer_stream(self.transport.slot, ssrc, rtx_ssrc, self.codec_id,
                                         self.clock_rate, layer, self.kind == "video")
        fwd.set_stream_paused(stream, self.paused)
        if rtx_ssrc:
            self._enable_rtx(stream)
        if self.kind == "audio" and self.ext_ids.get(AUDIO_LEVEL_URI):
            fwd.set_stream_audio_level_ext(stream, self.ext_ids[AUDIO_LEVEL_URI])
        if self.kind == "video" and self.ext_ids.get(DEPENDENCY_DESCRIPTOR_URI) \
                and self.codec_id == CODEC_AV1:
            # AV1 frame bounds, layers and switch points come from the descriptor
            fwd.set_stream_dependency_descriptor(stream, self.ext_ids[DEPENDENCY_DESCRIPTOR_URI])
        self.streams[layer] = stream
        for consumer in self.consumers:
            consumer.attach(layer, stream)

    def _enable_rtx(self, stream: int) -> None:
        if self.rtx is not None:
            self.engine.forwarder.set_stream_rtx_payload(stream, *self.rtx)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        for stream in self.streams:
            if stream is not None:
                self.engine.forwarder.set_stream_paused(stream, paused)
        for consumer in list(self.consumers):
            consumer.set_producer_paused(paused)

    def request_key_frame(self, layer: int | None = None) -> None:
        for index, stream in enumerate(self.streams):
            if stream is not None and (layer is None or layer == index):
                self.engine.forwarder.request_key_frame(stream)

    def audio_level(self) -> float | None:
        """Mean level (dBov) of the first stream since the last call; None when nothing was heard."""
        stream = self.streams[0]
        if self.kind != "audio" or stream is None or self.paused:
            return None
        return self.engine.forwarder.take_audio_level(stream)

    def get_stats(self) -> list[dict]:
        stats = []
        for layer, stream in enumerate(self.streams):
            if stream is None:
                continue
            entry = self.engine.forwarder.stream_stats(stream)
            stats.append({"type": "inbound-rtp", "kind": self.kind,
                          "mimeType": media_codec(self.rtp_parameters)["mimeType"],
                          "rid": self.encodings[layer].get("rid"), **entry})
        return stats

    def close(self) -> None:
        """Close every consumer of this producer, then free the streams."""
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers):
            consumer.close()
        for stream in self.streams:
            if stream is not None:
                self.engine.forwarder.remove_producer_stream(stream)
        self.streams = [None] * len(self.encodings)
        self.transport.producers.pop(self.id, None)
        self.transport.router.producers.pop(self.id, None)
        self.engine.producers.pop(self.id, None)
