"""Data producers across nodes: a data producer of a room on another node, consumed here.

Media crosses nodes as RTP on pipe transports (signaling/cascade_pipes.py); DataChannel messages
take the cascade's Redis path instead, on a channel of their own per receiving node
(`switchyard:cascade:data:<nodeId>`, msgpack so that binary stays binary and text stays text).
Why not a pipe: a pipe transport carries plain RTP, and DataChannel messages need what SCTP gives
(reliable, ordered delivery, any size up to maxMessageSize), which the nodes' Redis connection
already gives (TCP, in publish order), where a datagram pipe would need SCTP again on both
workers; and data is a chat's rate, not video's (docs/benchmarks.md gives the cost per message).

The pipe's ends are the media pipe's (NodePipes, one transport pair per room and node pair): the
puller asks the data producer's node `pipe.consumeData`; that node makes a pipe data consumer on
its end (media/api/data_pipe.py) whose relay publishes the messages here in batches, in order,
bounded like a pipe between workers (drop and count past `RELAY_QUEUE_MESSAGES`); the puller makes
a pipe data producer with the data producer's id on its end, whose relay writes each message to
its worker. The data producer closing is broadcast (`data-producer-closed`): the pipe data
producer here closes and its data consumers hear `dataproducerclose`; a node that leaves or
dies takes its pipe ends, hence the data pipes in them, along.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgpack

from common.log import get_logger
from media.api.data_pipe import (
    BoundedRelay,
    DataRelay,
    consume_pipe_data,
    message_size,
    produce_pipe_data,
)
from signaling.cascade_pipes import single_flight
from signaling.errors import invalid_input, not_found

if TYPE_CHECKING:
    from media.api.data_producer import DataProducer
    from signaling.cascade_bus import Bus
    from signaling.cascade_pipes import NodePipes
    from signaling.registry import RoomRegistry
    from signaling.room import Room

log = get_logger("signaling.cascade")

# One publish carries at most this many messages, or this many bytes (plus one message).
BATCH_MESSAGES = 256
BATCH_BYTES = 256 * 1024


def _text(params: dict, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise invalid_input(f"{name} must be a non-empty string")
    return value


class NodeDataRelay(BoundedRelay):
    """One pipe's messages to another node, published in order (one publish at a time, batched)."""

    def __init__(self, bus: Bus, node_id: str, room_id: str, data_producer_id: str):
        super().__init__()
        self.bus = bus
        self.node_id = node_id
        self.header = {"roomId": room_id, "dataProducerId": data_producer_id}

    def push(self, message: Any) -> None:
        if not self.closed:
            self._enqueue(message)

    async def _send_queued(self) -> None:
        try:
            while self.queue and not self.closed:
                batch: list[str | bytes] = []
                size = 0
                while self.queue and len(batch) < BATCH_MESSAGES and size < BATCH_BYTES:
                    message = self.queue.popleft()
                    batch.append(message)
                    size += message_size(message)
                self.queued_bytes -= size
                frame = msgpack.packb({**self.header, "messages": batch}, use_bin_type=True)
                if await self.bus.publish_data(self.node_id, frame):
                    self.relayed += len(batch)
                else:  # the node is gone (or Redis is): its pipe ends close when the node is dropped
                    self.drops["node_unreachable"] += len(batch)
        finally:
            self._task = None

class NodeDataPipes:
    """The data pipes of this node's rooms to and from the other nodes."""

    def __init__(self, registry: RoomRegistry, bus: Bus, pipes: NodePipes):
        self.registry = registry
        self.bus = bus
        self.pipes = pipes
        # relays into this node's workers, by (room id, data producer id)
        self.incoming: dict[tuple[str, str], DataRelay] = {}
        self.pulling: dict[tuple[str, str], asyncio.Future[DataProducer]] = {}
        bus.handlers["pipe.consumeData"] = self._on_consume_data
        bus.on_data = self._on_data

    # ---- the puller's side -------------------------------------------------------------------

    async def pull(self, room: Room, node_id: str, data_producer_id: str) -> DataProducer:
        """The pipe data producer of `data_producer_id` (of `node_id`) in this node's first router of the room."""
        existing = room.router.data_producers.get(data_producer_id)
        if existing is not None:
            return existing
        return await single_flight(self.pulling, (room.id, data_producer_id),
                                   lambda: self._pull(room, node_id, data_producer_id))

    async def _pull(self, room: Room, node_id: str, data_producer_id: str) -> DataProducer:
        end, remote_id = await self.pipes._pull_end(room, node_id)
        key = (room.id, data_producer_id)
        # registered before the other node starts publishing: what comes first waits in it
        relay = self.incoming[key] = DataRelay(end.worker, data_producer_id)
        try:
            reply = await self.bus.request(node_id, "pipe.consumeData", {
                "roomId": room.id, "transportId": remote_id, "dataProducerId": data_producer_id})
            producer = await produce_pipe_data(
                end, data_producer_id, reply.get("sctpStreamParameters") or {"streamId": 0},
                str(reply.get("label") or ""), str(reply.get("protocol") or ""), reply.get("appData") or {})
        except BaseException:
            relay.close()
            self.incoming.pop(key, None)
            raise

        def closed(*_: Any) -> None:
            relay.close()
            if self.incoming.get(key) is relay:
                del self.incoming[key]

        for event in ("@close", "transportclose"):
            producer.on(event, closed)
        relay.start()
        log.info("data producer %s of node %s piped into room %s here", data_producer_id, node_id, room.id)
        return producer

    def _on_data(self, raw: bytes) -> None:
        """A batch of messages from another node: into the pipe data producer's relay, in order."""
        try:
            frame = msgpack.unpackb(raw, raw=False)
            key = (frame["roomId"], frame["dataProducerId"])
            messages = frame["messages"]
        except (ValueError, KeyError, TypeError, msgpack.UnpackException):
            log.warning("a malformed relayed data frame was dropped")
            return
        relay = self.incoming.get(key) if isinstance(key[0], str) and isinstance(key[1], str) else None
        if relay is None or not isinstance(messages, list):
            return
        for message in messages:
            if isinstance(message, (str, bytes)):
                relay.push(message)

    # ---- the data producer's side --------------------------------------------------------------

    async def _on_consume_data(self, sender: str, params: dict) -> dict[str, Any]:
        room = self.registry.rooms.get(_text(params, "roomId"))
        if room is None:
            raise not_found("room on this node")
        end = self.pipes.feeds.get((room.id, sender))
        if end is None or end.closed or end.id != params.get("transportId"):
            raise not_found("pipe transport")
        data_producer_id = _text(params, "dataProducerId")
        owner = room.data_producer_owner(data_producer_id)
        if owner is None:  # only a local peer's data producers are fed
            raise not_found("data producer")
        # pipes to other nodes leave from the room's first router (as for media, cascade_pipes.py)
        await self.registry.placement.pipe_data_for(owner.data_producers[data_producer_id], room.router)
        producer = room.router.data_producers[data_producer_id]
        if not any(c.data_producer_id == data_producer_id and not c.closed for c in end.data_consumers.values()):
            relay = NodeDataRelay(self.bus, sender, room.id, data_producer_id)
            # it closes with its data producer (the far node hears so from the room's broadcast) or
            # with its end (the far node left the room or died)
            await consume_pipe_data(end, producer, relay)
            relay.start()
        return {"sctpStreamParameters": producer.sctp_stream_parameters, "label": producer.label,
                "protocol": producer.protocol, "appData": producer.app_data}

    def forget_room(self, room_id: str) -> None:
        for key in [k for k in self.incoming if k[0] == room_id]:
            self.incoming.pop(key).close()
