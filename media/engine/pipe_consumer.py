"""A pipe consumer in the worker: every encoding of a producer, sent on to another router's pipe transport.

mediasoup's PipeConsumer forwards all the streams of a producer unchanged, so that the far
router's consumers still choose their own simulcast layer. Here that is one Forwarder consumer per
encoding (all its temporal layers, each with its own SSRC from the pipe's rtpParameters): the per-packet work (rewrite, send, PLI relay, SR) is the Forwarder's native path,
nothing new runs per packet. A PLI the far router sends for one of these SSRCs reaches the
producer's stream of that encoding through the Forwarder's ordinary PLI relay (RFC 4585 6.3.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.engine.consumer import MAX_SPATIAL_LAYERS, extension_map, payload_type_map, red_stream
from media.engine.errors import invalid_input, invalid_state
from media.engine.producer import media_codec

if TYPE_CHECKING:
    from media.engine.producer import Producer
    from media.engine.transport import Transport


class PipeConsumer:
    """Duck-typed like Consumer (attach, pause, close, stats) for the producer and the engine tables."""

    type = "pipe"

    def __init__(self, transport: Transport, consumer_id: str, producer: Producer, data: dict):
        self.transport = transport
        self.engine = transport.engine
        self.id = consumer_id
        self.producer = producer
        self.kind = producer.kind
        self.closed = False
        self.rtp_parameters = data["rtpParameters"]
        encodings = self.rtp_parameters["encodings"]
        if len(encodings) != len(producer.encodings) or len(encodings) > MAX_SPATIAL_LAYERS:
            raise invalid_input("a pipe consumer has one encoding per encoding of its producer")
        ssrcs = [encoding.get("ssrc") for encoding in encodings]
        # checked before any Forwarder consumer is made, so a refusal leaves nothing behind
        if any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s < 1 << 32 for s in ssrcs) \
                or len(set(ssrcs)) != len(ssrcs):
            raise invalid_input("every pipe encoding needs an SSRC of its own (1..2^32-1)")
        self.paused = bool(data.get("paused"))
        self.producer_paused = producer.paused
        pt_map = payload_type_map(producer.rtp_mapping, self.rtp_parameters)
        ext_map = extension_map(producer.rtp_parameters, self.rtp_parameters)
        red_pt, _ = red_stream(producer.rtp_parameters, producer.rtp_mapping, self.rtp_parameters)
        clock_rate = int(media_codec(self.rtp_parameters)["clockRate"])
        fwd = self.engine.forwarder
        self.slots: list[int] = []
        for layer, ssrc in enumerate(ssrcs):
            # The fan-out stage feeds a consumer by the stream's spatial layer, so the consumer of
            # encoding n has n + 1 layers, aims at the top one and is fed only that one.
            slot = fwd.add_consumer(transport.slot, ssrc, layer + 1, pt_map, ext_map, 0,
                                    producer.codec_id, clock_rate, self.kind == "video", self.paused)
            if red_pt >= 0:  # RED passes through whole: the far router cuts it for its own consumers
                fwd.set_consumer_red(slot, red_pt, False)
            if self.producer_paused:
                fwd.set_consumer_paused(slot, self.paused, True)
            self.slots.append(slot)
        producer.consumers.add(self)
        for layer, stream in enumerate(producer.streams):
            if stream is not None:
                self.attach(layer, stream)

    def attach(self, layer: int, stream: int) -> None:
        """The producer's encoding `layer` got its stream: it feeds the pipe consumer of that encoding."""
        if not self.closed and layer < len(self.slots):
            self.engine.forwarder.attach_stream(self.slots[layer], layer, stream)

    def _apply_paused(self) -> None:
        for slot in self.slots:
            self.engine.forwarder.set_consumer_paused(slot, self.paused, self.producer_paused)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._apply_paused()

    def set_producer_paused(self, paused: bool) -> None:
        self.producer_paused = paused
        self._apply_paused()

    def set_preferred_layers(self, spatial_layer: int, temporal_layer: int | None = None) -> None:
        raise invalid_state("a pipe consumer forwards every layer; the far router's consumers choose")

    def request_key_frame(self) -> None:
        self.producer.request_key_frame()

    def get_stats(self) -> list[dict]:
        codec = media_codec(self.rtp_parameters)["mimeType"]
        return [{"type": "outbound-rtp", "kind": self.kind, "mimeType": codec,
                 **self.engine.forwarder.consumer_stats(slot)} for slot in self.slots]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for slot in self.slots:
            self.engine.forwarder.remove_consumer(slot)
        self.producer.consumers.discard(self)
        self.transport.consumers.pop(self.id, None)
        self.engine.consumers.pop(self.id, None)
