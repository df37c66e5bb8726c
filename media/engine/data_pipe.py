"""Data producers across workers: a relay over the control channel, owned by the pipe transports.

mediasoup pipes a data producer (pipeToRouter with dataProducerId) as SCTP over the pipe
transport. Here the data path already runs in Python inside the worker (aiortc's SCTP,
media/engine/sctp.py), so a second association per pipe would cost a full SCTP stack per
message on each side for a loopback hop that loses nothing. Instead:

- on the source router, a *pipe data consumer* (on the pipe transport towards the target) is
  one more consumer of the data producer: each message it is handed becomes a
  `dataConsumer.message` notification on the worker channel, the message itself in the msgpack
  frame (str stays str, bytes stay bytes: the WebRTC String or Binary PPID, RFC 8831 section 6.6,
  is chosen again from that type on the far side, empty messages included);
- the main process passes it on, in order, to the target worker (media/api/data_pipe.py bounds
  that queue per pipe and drops and counts when the target lags);
- on the target router, a *pipe data producer* with the data producer's id, label, protocol and
  stream parameters, on the pipe transport's other end, has no SCTP stream: each notification is
  injected into its data consumers as if its stream had received it.

Both are owned by their pipe transport (closed with it, as the transport's other data objects),
and closing the source data producer closes the pipe data consumer with its other consumers.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from media.channel import MAX_FRAME
from media.engine.data_producer import DataProducerBase
from media.engine.errors import invalid_state, not_found
from media.engine.sctp import message_size

if TYPE_CHECKING:
    from media.engine.data_producer import DataProducer
    from media.engine.pipe_transport import PipeTransport

# What a relayed message may weigh: a channel frame with room for its envelope (a transport's
# maxSctpMessageSize, 262144 by default, is far below; a larger configured one is refused here).
MAX_RELAYED_MESSAGE = MAX_FRAME - 1024


class PipeDataConsumer:
    """Duck-typed like DataConsumer for its data producer: `send`, `close`, stats."""

    def __init__(self, transport: PipeTransport, consumer_id: str, producer: DataProducer):
        self.transport = transport
        self.engine = transport.engine
        self.id = consumer_id
        self.data_producer = producer
        self.sctp_stream_parameters = producer.sctp_stream_parameters
        self.closed = False
        self.messages_sent = 0
        self.bytes_sent = 0
        self.drops: Counter[str] = Counter()

    def send(self, message: str | bytes, size: int) -> None:
        if size > MAX_RELAYED_MESSAGE:
            self.drops["too_large"] += 1
            return
        self.engine.notify("dataConsumer.message", self.id, {"message": message})
        self.messages_sent += 1
        self.bytes_sent += size

    def get_stats(self) -> list[dict]:
        return [{"type": "data-consumer", "label": self.data_producer.label,
                 "protocol": self.data_producer.protocol, "messagesSent": self.messages_sent,
                 "bytesSent": self.bytes_sent, "bufferedAmount": 0, "drops": dict(self.drops)}]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.data_producer.consumers.pop(self.id, None)
        self.transport.data_consumers.pop(self.id, None)
        self.engine.data_consumers.pop(self.id, None)


class PipeDataProducer(DataProducerBase):
    """The far end of a data producer piped here: no SCTP stream of its own; each relayed message is
    injected into its data consumers (label, protocol and stream parameters are the source's)."""

    def inject(self, message: object) -> None:
        """One relayed message: to every data consumer, as the source's own stream would hand it."""
        if not isinstance(message, (str, bytes)):
            self.drops["bad_message"] += 1
            return
        self._deliver(message, message_size(message))


def produce_pipe_data(transport: PipeTransport, data: dict) -> dict:
    """transport.produceData on a pipe transport: the far end of a data producer piped here."""
    producer_id = data["dataProducerId"]
    if producer_id in transport.engine.data_producers:
        raise invalid_state(f"data producer {producer_id!r} already exists")
    producer = PipeDataProducer(transport, producer_id, dict(data["sctpStreamParameters"]),
                                str(data.get("label", "")), str(data.get("protocol", "")))
    transport.data_producers[producer_id] = producer
    transport.router.data_producers[producer_id] = producer
    transport.engine.data_producers[producer_id] = producer
    return {}


def consume_pipe_data(transport: PipeTransport, data: dict) -> dict:
    """transport.consumeData on a pipe transport: a data producer of this router, relayed to the far end."""
    consumer_id = data["dataConsumerId"]
    if consumer_id in transport.engine.data_consumers:
        raise invalid_state(f"data consumer {consumer_id!r} already exists")
    producer = transport.router.data_producers.get(data["dataProducerId"])
    if producer is None:
        raise not_found("data producer", data["dataProducerId"])
    consumer = PipeDataConsumer(transport, consumer_id, producer)
    producer.consumers[consumer_id] = consumer
    transport.data_consumers[consumer_id] = consumer
    transport.engine.data_consumers[consumer_id] = consumer
    return {"sctpStreamParameters": producer.sctp_stream_parameters}


def relayed_message(engine, target: str | None, data: dict) -> None:
    """A `dataProducer.message` notification from the main process: into its pipe data producer."""
    producer = engine.data_producers.get(target) if isinstance(target, str) else None
    if not isinstance(producer, PipeDataProducer):
        engine.control_drops["data_relay_unknown_producer"] += 1
        return
    producer.inject(data.get("message"))
