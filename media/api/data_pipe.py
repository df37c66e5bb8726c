"""Data producers piped between routers of two workers (mediasoup's pipeToRouter with dataProducerId).

The pipe reuses the router pair's pipe transports (media/api/pipe_transport.py): on the source
end a *pipe data consumer* of the data producer, on the target end a *pipe data producer* with
its id, label, protocol, stream parameters and appData, which the target router's transports
consume like a local data producer. The messages are relayed, not sent over SCTP
(media/engine/data_pipe.py says why): the source worker notifies each one, and `DataRelay` here
writes it to the target worker's channel, in order.

The relay is bounded per pipe. It writes at once while the target worker takes its channel's
bytes; when the target lags (its channel backlog passes `RELAY_BACKLOG_BYTES`) messages wait in
the pipe's queue, and beyond `RELAY_QUEUE_MESSAGES` or `RELAY_QUEUE_BYTES` they are dropped and
counted (`relayDrops` in the pipe data consumer's stats), as an SCTP send buffer that is full
drops. Closing either end closes the other; the pipe data producer closing tells its data
consumers (`dataproducerclose`), as a local data producer closing does.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Protocol

from media.api.data_consumer import DataConsumer
from media.api.data_producer import DataProducer
from media.api.errors import InvalidStateError, NotFoundError, worker_request
from media.api.pipe_transport import check_pipe_ends
from media.channel import ChannelClosed

if TYPE_CHECKING:
    from media.api.pipe_transport import PipeTransport
    from media.api.router import Router
    from media.api.worker import Worker

# The target's channel backlog beyond which messages wait in the pipe's own queue.
RELAY_BACKLOG_BYTES = 256 * 1024
# What one pipe's queue may hold while the target lags; beyond, messages are dropped and counted.
RELAY_QUEUE_MESSAGES = 1024
RELAY_QUEUE_BYTES = 4 * 1024 * 1024


class Relay(Protocol):
    """Where a pipe data consumer's messages go: another worker (DataRelay) or another node
    (signaling/cascade_data.py); ordered, bounded, drops counted by reason."""

    drops: Counter[str]

    def push(self, message: Any) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


def message_size(message: Any) -> int:
    """A message's size on the wire (text as UTF-8, RFC 8831 section 6.6); 0 for what is neither."""
    if isinstance(message, str):
        return len(message.encode("utf-8"))
    return len(message) if isinstance(message, bytes) else 0


class BoundedRelay:
    """One pipe's messages in order, queued while the far end is not there yet or lags, bounded.

    Subclasses send what is queued in `_send_queued` (one task at a time, so order holds); a message
    beyond `RELAY_QUEUE_MESSAGES` or `RELAY_QUEUE_BYTES` is dropped and counted ("queue_full").
    """

    def __init__(self) -> None:
        self.queue: deque[str | bytes] = deque()
        self.queued_bytes = 0
        self.relayed = 0
        self.drops: Counter[str] = Counter()
        # held until the far end exists (start())
        self.holding = True
        self.closed = False
        self._task: asyncio.Task | None = None

    def _enqueue(self, message: Any) -> None:
        size = message_size(message)
        if len(self.queue) >= RELAY_QUEUE_MESSAGES or self.queued_bytes + size > RELAY_QUEUE_BYTES:
            self.drops["queue_full"] += 1
            return
        self.queue.append(message)
        self.queued_bytes += size
        self._send_later()

    def start(self) -> None:
        """The far end is there: what waited goes first, in order."""
        self.holding = False
        self._send_later()

    def _send_later(self) -> None:
        if self._task is None and self.queue and not self.holding:
            self._task = asyncio.ensure_future(self._send_queued())

    async def _send_queued(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
        self.queue.clear()
        self.queued_bytes = 0
        if self._task is not None:
            self._task.cancel()

    def stats(self) -> dict[str, Any]:
        return {"messagesRelayed": self.relayed, "relayQueued": len(self.queue), "relayDrops": dict(self.drops)}


class DataRelay(BoundedRelay):
    """One pipe's messages on their way to the pipe data producer in the target worker."""

    def __init__(self, worker: Worker, data_producer_id: str):
        super().__init__()
        self.worker = worker
        self.target = data_producer_id

    def push(self, message: Any) -> None:
        if self.closed:
            return
        if not self.holding and not self.queue and not self._lagging():
            self._write(message)
            return
        self._enqueue(message)

    def _lagging(self) -> bool:
        channel = self.worker.channel
        return channel is not None and channel.write_backlog() > RELAY_BACKLOG_BYTES

    def _write(self, message: Any) -> None:
        channel = self.worker.channel
        try:
            if channel is None:
                raise ChannelClosed("no channel")
            channel.notify("dataProducer.message", {"message": message}, self.target)
            self.relayed += 1
        except ChannelClosed:  # the target worker died: its pipe end closes with it
            self.drops["target_closed"] += 1

    async def _send_queued(self) -> None:
        try:
            while self.queue and not self.closed:
                channel = self.worker.channel
                if channel is None or channel.closed:
                    self.drops["target_closed"] += len(self.queue)
                    self.queue.clear()
                    break
                if self._lagging():
                    await channel.drain()
                    if self._lagging():  # the writer resumed above our mark: give it a moment
                        await asyncio.sleep(0.001)
                    continue
                message = self.queue.popleft()
                self.queued_bytes -= message_size(message)
                self._write(message)
        except (ConnectionError, ChannelClosed):
            self.drops["target_closed"] += len(self.queue)
            self.queue.clear()
        finally:
            self._task = None
            if not self.queue:
                self.queued_bytes = 0

class PipeDataConsumer(DataConsumer):
    """The source end of a data pipe: its worker's handle gives each message it notifies to the relay
    (Worker.pipe_data_consumers, one lookup a message)."""

    def __init__(self, transport: PipeTransport, data_producer: DataProducer, data_consumer_id: str,
                 sctp_stream_parameters: dict[str, Any], relay: Relay):
        super().__init__(transport, data_producer, data_consumer_id, sctp_stream_parameters, {})
        self.type = "pipe"
        self.relay = relay
        transport.worker.pipe_data_consumers[data_consumer_id] = self

    async def get_stats(self) -> list[dict[str, Any]]:
        stats = await super().get_stats()
        return [{**entry, **self.relay.stats()} for entry in stats]

    def _close_here(self) -> None:
        super()._close_here()
        self.relay.close()
        self.transport.worker.pipe_data_consumers.pop(self.id, None)


async def pipe_data_to_router(source: Router, data_producer_id: str, target: Router,
                              enable_srtp: bool = False) -> tuple[PipeDataConsumer, DataProducer]:
    """(pipe data consumer on source, pipe data producer on target, with the data producer's id).

    enable_srtp: what a pipe transport pair made for it carries (the messages never take it, but
    the RTP pipes of the same router pair will, SWITCHYARD_PIPE_SRTP)."""
    check_pipe_ends(source, target)
    producer = source.data_producers.get(data_producer_id) if isinstance(data_producer_id, str) else None
    if producer is None:
        raise NotFoundError(f"data producer {data_producer_id!r} not found")
    if data_producer_id in target.data_producers:
        raise InvalidStateError(f"data producer {data_producer_id} is already piped to router {target.id}")
    local, remote = await source._pipe_pair(target, enable_srtp)
    pipe_consumer = await consume_pipe_data(local, producer, DataRelay(remote.worker, producer.id))
    try:
        pipe_producer = await produce_pipe_data(remote, producer.id, producer.sctp_stream_parameters,
                                                producer.label, producer.protocol, producer.app_data)
    except BaseException:
        await pipe_consumer.close()
        raise
    wire_data_pipe(pipe_consumer, pipe_producer, source._pipe_tasks)
    if pipe_consumer.closed:  # its data producer closed while the far end was made
        await pipe_producer.close()
        raise InvalidStateError(f"data producer {producer.id} closed while it was being piped")
    pipe_consumer.relay.start()
    return pipe_consumer, pipe_producer


async def consume_pipe_data(end: PipeTransport, producer: DataProducer, relay: Relay) -> PipeDataConsumer:
    """The source end on a pipe transport: a consumer of `producer` (of the end's router) whose messages
    go to `relay` (a DataRelay to another worker, or the cascade's to another node)."""
    consumer_id = str(uuid.uuid4())
    answer = await worker_request(end.worker, "transport.consumeData", {
        "transportId": end.id, "dataConsumerId": consumer_id, "dataProducerId": producer.id, "pipe": True})
    end._check_open()
    if producer.closed:
        raise InvalidStateError(f"data producer {producer.id} closed while it was being piped")
    pipe_consumer = PipeDataConsumer(end, producer, consumer_id, answer["sctpStreamParameters"], relay)
    end.data_consumers[consumer_id] = pipe_consumer
    producer.data_consumers[consumer_id] = pipe_consumer
    return pipe_consumer


async def produce_pipe_data(end: PipeTransport, data_producer_id: str, sctp_stream_parameters: dict[str, Any],
                            label: str, protocol: str, app_data: dict[str, Any]) -> DataProducer:
    """The target end on a pipe transport: a data producer with the source's id, fed by the relay."""
    params = copy.deepcopy(sctp_stream_parameters)
    await worker_request(end.worker, "transport.produceData", {
        "transportId": end.id, "dataProducerId": data_producer_id, "pipe": True,
        "sctpStreamParameters": params, "label": label, "protocol": protocol})
    end._check_open()
    pipe_producer = DataProducer(end, data_producer_id, params, label, protocol, copy.deepcopy(app_data))
    end.data_producers[data_producer_id] = pipe_producer
    end.router.data_producers[data_producer_id] = pipe_producer
    return pipe_producer


def wire_data_pipe(pipe_consumer: PipeDataConsumer, pipe_producer: DataProducer, tasks: set[asyncio.Task]) -> None:
    """Either end closing closes the other (the far data consumers hear `dataproducerclose`)."""

    def run(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for event in ("@close", "dataproducerclose", "transportclose"):
        pipe_consumer.on(event, lambda *_: run(pipe_producer.close()))
    for event in ("@close", "transportclose"):
        pipe_producer.on(event, lambda *_: run(pipe_consumer.close()))
