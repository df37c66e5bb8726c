"""Pipes between nodes: a producer of a room on another node, consumed here (mediasoup's pipeToRouter,
each router on its own node).

The node that wants a producer (the *puller*) makes a PipeTransport in its room's router and asks
the producer's node (over the cascade bus, `pipe.connect`) for the other end: that node makes a
PipeTransport in its router, connects it to the puller's pipe address (the node's announced pipe
IP and the worker's RTC port, plus SRTP parameters when the ends use SRTP) and answers with its
own; the puller connects its end to it. Then, per producer, `pipe.produce`: the producer's node
makes a pipe consumer of it on its end (every encoding, each under its own SSRC) and answers with
the pipe's rtpParameters; the puller makes a pipe producer with the same id, which the room's
consumers on this node consume like a local producer. RTP and RTCP (key frame requests included)
then flow node to node on the workers' UDP ports; nothing of the media passes through Redis.

Pipes carry plain RTP, or SRTP with each end's key in `pipe.connect` when the node is told to
(SWITCHYARD_PIPE_SRTP, `enable_srtp`). Every node of a deployment must say the same: in a worker,
the pipes to one far worker share one link, all plain or all SRTP (media/engine/pipe_transport.py),
so a node refuses a `pipe.connect` of the other kind (`invalid_state`, naming the setting) rather
than let a mixed pair fail later and by chance.

One pipe transport pair per room, node pair and direction: a node pulls from another on the pair
it made, and feeds it on the pair the other made. Closing a room here closes its router, hence
every pipe end of it; a node that left the room or died has its ends here closed
(`close_node`), which closes the pipe producers it fed, whose consumers hear `producerclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from common.log import get_logger
from media.api.pipe_transport import PipeTransport
from signaling.errors import RequestError, invalid_input, not_found

if TYPE_CHECKING:
    from media.api.producer import Producer
    from signaling.cascade_bus import Bus
    from signaling.cluster import Cluster
    from signaling.registry import RoomRegistry
    from signaling.room import Room

log = get_logger("signaling.cascade")
K = TypeVar("K")
T = TypeVar("T")


async def single_flight(pending: dict[K, asyncio.Future[T]], key: K, start: Callable[[], Awaitable[T]]) -> T:
    """start() once per key at a time: callers that come while it runs await its result (shielded, so
    one caller's cancellation does not cancel it for the others); the key is free again once it ends."""
    future = pending.get(key)
    if future is None:
        future = pending[key] = asyncio.ensure_future(start())
        future.add_done_callback(lambda _: pending.pop(key, None))
    return await asyncio.shield(future)


def _text(params: dict, name: str, limit: int = 200) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise invalid_input(f"{name} must be a non-empty string")
    return value


class NodePipes:
    """This node's pipe ends to the other nodes of its rooms, by (room id, node id)."""

    def __init__(self, cluster: Cluster, registry: RoomRegistry, bus: Bus, enable_srtp: bool = False):
        self.cluster = cluster
        self.registry = registry
        self.bus = bus
        self.enable_srtp = enable_srtp
        # ends this node made to pull from a node (pending while being connected)
        self.pulls: dict[tuple[str, str], asyncio.Future[tuple[PipeTransport, str]]] = {}
        # ends a node made here to pull from this node
        self.feeds: dict[tuple[str, str], PipeTransport] = {}
        # pipe producers here being made, by (room id, producer id)
        self.pulling: dict[tuple[str, str], asyncio.Future[Producer]] = {}
        # told when a producer here starts feeding a pipe (its peer then sends every simulcast layer)
        self.on_fed: Callable[[Room, str], Awaitable[None]] | None = None
        bus.handlers["pipe.connect"] = self._on_connect
        bus.handlers["pipe.produce"] = self._on_produce

    # ---- the puller's side -------------------------------------------------------------------

    async def pull(self, room: Room, node_id: str, producer_id: str) -> Producer:
        """The pipe producer of `producer_id` (a producer of `node_id`) in this node's router of the room."""
        existing = room.router.producers.get(producer_id)
        if existing is not None:
            return existing
        return await single_flight(self.pulling, (room.id, producer_id), lambda: self._pull(room, node_id, producer_id))

    async def _pull(self, room: Room, node_id: str, producer_id: str) -> Producer:
        end, remote_id = await self._pull_end(room, node_id)
        reply = await self.bus.request(node_id, "pipe.produce", {
            "roomId": room.id, "transportId": remote_id, "producerId": producer_id})
        producer = await end.produce(reply.get("kind"), reply.get("rtpParameters"),
                                     paused=bool(reply.get("paused")), app_data=reply.get("appData") or {},
                                     producer_id=producer_id)
        log.info("producer %s of node %s piped into room %s here", producer_id, node_id, room.id)
        return producer

    async def _pull_end(self, room: Room, node_id: str) -> tuple[PipeTransport, str]:
        key = (room.id, node_id)
        pending = self.pulls.get(key)
        if pending is None:
            pending = self.pulls[key] = asyncio.ensure_future(self._connect_end(room, node_id))
            try:
                await asyncio.shield(pending)
            except BaseException:
                if self.pulls.get(key) is pending:
                    del self.pulls[key]
                raise
        end, remote_id = await asyncio.shield(pending)
        if end.closed:
            if self.pulls.get(key) is pending:
                del self.pulls[key]
            raise RequestError("unavailable", f"the pipe to node {node_id} closed")
        return end, remote_id

    async def _connect_end(self, room: Room, node_id: str) -> tuple[PipeTransport, str]:
        end = await room.router.create_plain_transport(enable_srtp=self.enable_srtp, transport_class=PipeTransport,
                                                       app_data={"pipeTo": node_id})
        try:
            reply = await self.bus.request(node_id, "pipe.connect", {
                "roomId": room.id, "ip": self.cluster.pipe_ip, "port": end.tuple["localPort"],
                "srtpParameters": end.srtp_parameters})
            await end.connect(ip=reply.get("ip"), port=reply.get("port"),
                              srtp_parameters=reply.get("srtpParameters"))
            transport_id = _text(reply, "transportId")
        except BaseException:
            await end.close()
            raise
        return end, transport_id

    # ---- the producer's side (requests from a puller) ----------------------------------------

    def _room(self, params: dict) -> Room:
        room = self.registry.rooms.get(_text(params, "roomId"))
        if room is None:
            raise not_found("room on this node")
        return room

    async def _on_connect(self, sender: str, params: dict) -> dict[str, Any]:
        room = self._room(params)
        srtp = params.get("srtpParameters")
        if (srtp is not None) != self.enable_srtp:
            ours = "SRTP" if self.enable_srtp else "plain RTP"
            log.warning("node %s asked for a %s pipe of room %s; this node's pipes carry %s", sender,
                        "plain RTP" if srtp is None else "SRTP", room.id, ours)
            raise RequestError("invalid_state", f"pipes to node {self.cluster.node_id} carry {ours}: "
                                                "SWITCHYARD_PIPE_SRTP must be the same on every node")
        end = await room.router.create_plain_transport(enable_srtp=self.enable_srtp, transport_class=PipeTransport,
                                                       app_data={"pipeFrom": sender})
        try:
            await end.connect(ip=params.get("ip"), port=params.get("port"), srtp_parameters=srtp)
        except BaseException:
            await end.close()
            raise
        old = self.feeds.pop((room.id, sender), None)
        self.feeds[(room.id, sender)] = end
        if old is not None:  # the puller made a new pair: its old end is gone
            await old.close()
        return {"transportId": end.id, "ip": self.cluster.pipe_ip, "port": end.tuple["localPort"],
                "srtpParameters": end.srtp_parameters}

    async def _on_produce(self, sender: str, params: dict) -> dict[str, Any]:
        room = self._room(params)
        end = self.feeds.get((room.id, sender))
        if end is None or end.closed or end.id != params.get("transportId"):
            raise not_found("pipe transport")
        producer_id = _text(params, "producerId")
        owner = room.producer_owner(producer_id)
        if owner is None:  # only a local peer's producers are fed
            raise not_found("producer")
        # pipes to other nodes leave from the room's first router: a producer of another of its
        # routers (the room spread over this node's workers, signaling/placement.py) comes there first
        await self.registry.placement.pipe_for(owner.producers[producer_id], room.router)
        producer = room.router.producers[producer_id]
        for consumer in end.consumers.values():
            if consumer.producer_id == producer_id and not consumer.closed:
                pipe = consumer
                break
        else:
            pipe = await end.consume_pipe(producer)
            if self.on_fed is not None:
                await self.on_fed(room, producer_id)
        return {"kind": producer.kind, "rtpParameters": pipe.rtp_parameters, "paused": producer.paused,
                "appData": producer.app_data}

    # ---- endings ---------------------------------------------------------------------------------

    async def close_node(self, room_id: str, node_id: str) -> None:
        """A node left the room (or died): close the ends to it; its pipe producers here close with them."""
        pending = self.pulls.pop((room_id, node_id), None)
        if pending is not None:
            if not pending.done():  # still connecting: its end closes when made
                pending.add_done_callback(_close_when_made)
            elif not pending.cancelled() and pending.exception() is None:
                await pending.result()[0].close()
        feed = self.feeds.pop((room_id, node_id), None)
        if feed is not None:
            await feed.close()

    def nodes_of(self, room_id: str) -> set[str]:
        return {node for room, node in (*self.pulls, *self.feeds) if room == room_id}

    def forget_room(self, room_id: str) -> None:
        """The room closed here: its router closed every end already."""
        for table in (self.pulls, self.feeds):
            for key in [k for k in table if k[0] == room_id]:
                del table[key]


def _close_when_made(pending: asyncio.Future) -> None:
    if not pending.cancelled() and pending.exception() is None:
        asyncio.ensure_future(pending.result()[0].close())
