"""A data consumer in the worker: a data producer's messages sent on a stream of another transport.

The stream is the server's choice (the lowest free one below the transport's
stream count) and its reliability is the data producer's: ordered or not,
maxPacketLifeTime or maxRetransmits, as mediasoup mirrors them. A message that
finds the stream closed or its send buffer full is dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from media.engine.data_producer import stream_options
from media.engine.errors import invalid_state, not_found

if TYPE_CHECKING:
    from aiortc.rtcdatachannel import RTCDataChannel

    from media.engine.data_producer import DataProducer
    from media.engine.webrtc_transport import WebRtcTransport


class DataConsumer:
    """Sends one data producer's messages on one stream of its transport's association."""

    def __init__(self, transport: WebRtcTransport, consumer_id: str, producer: DataProducer, params: dict):
        self.transport = transport
        self.engine = transport.engine
        self.id = consumer_id
        self.data_producer = producer
        self.sctp_stream_parameters = params
        self.closed = False
        self.messages_sent = 0
        self.bytes_sent = 0
        self.drops: Counter[str] = Counter()
        assert transport.sctp is not None
        self.channel: RTCDataChannel = transport.sctp.open_stream(
            params["streamId"], producer.label, producer.protocol, **stream_options(params))

    def send(self, message: str | bytes, size: int) -> None:
        reason = self.transport.sctp.send(self.channel, message)
        if reason is not None:
            self.drops[reason] += 1
            return
        self.messages_sent += 1
        self.bytes_sent += size

    def get_stats(self) -> list[dict]:
        return [{"type": "data-consumer", "label": self.data_producer.label,
                 "protocol": self.data_producer.protocol, "messagesSent": self.messages_sent,
                 "bytesSent": self.bytes_sent, "bufferedAmount": self.channel.bufferedAmount,
                 "drops": dict(self.drops)}]

    def close(self) -> None:
        """Reset the stream (RFC 8831 section 6.7) and leave the data producer."""
        if self.closed:
            return
        self.closed = True
        self.channel.close()
        self.data_producer.consumers.pop(self.id, None)
        self.transport.data_consumers.pop(self.id, None)
        self.engine.data_consumers.pop(self.id, None)


def free_stream(transport: WebRtcTransport) -> int | None:
    """The lowest stream no channel of the transport holds, below its stream count."""
    sctp = transport.sctp
    assert sctp is not None
    return next((s for s in range(sctp.num_streams) if not sctp.stream_in_use(s)), None)


def consume_data(transport: WebRtcTransport, data: dict) -> dict:
    """transport.consumeData: the answer names the stream the client opens (its sctpStreamParameters)."""
    consumer_id = data["dataConsumerId"]
    if consumer_id in transport.engine.data_consumers:
        raise invalid_state(f"data consumer {consumer_id!r} already exists")
    # a plain transport has no association at all
    if getattr(transport, "sctp", None) is None:
        raise invalid_state(f"transport {transport.id} has no SCTP (create it with sctpCapabilities)")
    producer = transport.router.data_producers.get(data["dataProducerId"])
    if producer is None:
        raise not_found("data producer", data["dataProducerId"])
    stream_id = free_stream(transport)
    if stream_id is None:
        raise invalid_state(f"transport {transport.id} has no free SCTP stream")
    params = {**producer.sctp_stream_parameters, "streamId": stream_id}
    consumer = DataConsumer(transport, consumer_id, producer, params)
    producer.consumers[consumer_id] = consumer
    transport.data_consumers[consumer_id] = consumer
    transport.engine.data_consumers[consumer_id] = consumer
    return {"sctpStreamParameters": params}
