"""A data producer in the worker: one negotiated SCTP stream a client sends messages on (mediasoup's DataProducer).

Every message that arrives on the stream goes to each data consumer of it, on
any transport of the router, as one message on the consumer's own stream
(RFC 8831 section 6.6: text stays text, binary stays binary). A message larger
than the transport's maxMessageSize is dropped and counted, never forwarded.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from media.engine.errors import invalid_input, invalid_state
from media.engine.sctp import message_size

if TYPE_CHECKING:
    from aiortc.rtcdatachannel import RTCDataChannel

    from media.engine.data_consumer import DataConsumer
    from media.engine.transport import Transport
    from media.engine.webrtc_transport import WebRtcTransport


def stream_options(params: dict) -> dict:
    """aiortc's channel options from mediasoup's SctpStreamParameters (validated in the main process)."""
    return {"ordered": bool(params.get("ordered", True)),
            "max_packet_life_time": params.get("maxPacketLifeTime"),
            "max_retransmits": params.get("maxRetransmits")}


class DataProducerBase:
    """What every data producer of a router is to its data consumers: ids, label, protocol, the
    consumers it hands each message to, its counters, and the tables it leaves when closed."""

    def __init__(self, transport: Transport, producer_id: str, params: dict, label: str, protocol: str):
        self.transport = transport
        self.engine = transport.engine
        self.id = producer_id
        self.sctp_stream_parameters = params
        self.label = label
        self.protocol = protocol
        self.closed = False
        self.consumers: dict[str, DataConsumer] = {}
        self.messages_received = 0
        self.bytes_received = 0
        self.drops: Counter[str] = Counter()

    def _deliver(self, message: str | bytes, size: int) -> None:
        self.messages_received += 1
        self.bytes_received += size
        for consumer in list(self.consumers.values()):
            consumer.send(message, size)

    def get_stats(self) -> list[dict]:
        return [{"type": "data-producer", "label": self.label, "protocol": self.protocol,
                 "messagesReceived": self.messages_received, "bytesReceived": self.bytes_received,
                 "drops": dict(self.drops)}]

    def _close_source(self) -> None:
        """What a subclass lets go of between closing the consumers and leaving the tables."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers.values()):
            consumer.close()
        self._close_source()
        self.transport.data_producers.pop(self.id, None)
        self.transport.router.data_producers.pop(self.id, None)
        self.engine.data_producers.pop(self.id, None)


class DataProducer(DataProducerBase):
    """Receives on one stream of its transport's association and hands each message to its consumers."""

    def __init__(self, transport: WebRtcTransport, producer_id: str, params: dict, label: str, protocol: str):
        super().__init__(transport, producer_id, params, label, protocol)
        assert transport.sctp is not None
        self.channel: RTCDataChannel = transport.sctp.open_stream(
            params["streamId"], label, protocol, **stream_options(params))
        self.channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        size = message_size(message)
        if size > self.transport.sctp.max_message_size:
            self.drops["message_too_large"] += 1
            return
        self._deliver(message, size)

    def _close_source(self) -> None:
        """Closing resets the stream (RFC 8831 section 6.7), after every consumer is closed."""
        self.channel.remove_all_listeners("message")
        self.channel.close()


def produce_data(transport: WebRtcTransport, data: dict) -> dict:
    """transport.produceData: a data producer on the stream the client chose."""
    producer_id = data["dataProducerId"]
    if producer_id in transport.engine.data_producers:
        raise invalid_state(f"data producer {producer_id!r} already exists")
    # a plain transport has no association at all
    if getattr(transport, "sctp", None) is None:
        raise invalid_state(f"transport {transport.id} has no SCTP (create it with sctpCapabilities)")
    params = data["sctpStreamParameters"]
    stream_id = params["streamId"]
    if transport.sctp.stream_in_use(stream_id):
        raise invalid_input(f"sctpStreamParameters.streamId {stream_id} is already in use on this transport")
    producer = DataProducer(transport, producer_id, params, str(data.get("label", "")),
                            str(data.get("protocol", "")))
    transport.data_producers[producer_id] = producer
    transport.router.data_producers[producer_id] = producer
    transport.engine.data_producers[producer_id] = producer
    return {}
