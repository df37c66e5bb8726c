"""The live rooms of this node: which router hosts each, on which worker; what REST asks of them.

With Redis, `cluster` (signaling.cluster) registers this node among the nodes of each room it opens
(a room spans nodes: signaling/cascade.py); a node that is draining or full refuses new rooms with
`wrong_node`; counts and closes reach the room on every node. Within the node a room spreads over
the workers (signaling.placement): a worker of a spread room dying costs only its router's peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from common.log import get_logger
from media.api.errors import SwitchyardError
from signaling.errors import RequestError
from signaling.placement import DEFAULT_SPREAD_CONSUMERS, Placement
from signaling.room import Room

if TYPE_CHECKING:
    from app.models import Room as RoomRecord
    from media.api.producer import Producer
    from media.api.router import Router
    from media.api.worker import Worker
    from signaling.cluster import Cluster
    from signaling.peer import Peer

log = get_logger("signaling.rooms")


class RoomRegistry:
    """Rooms by id; a room's router lives on the least-loaded worker alive when it opens.

    It implements app.live.RoomsLive, so REST sees live participant counts and can close a room.
    """

    def __init__(self, workers: list[Worker], spread_consumers: int = DEFAULT_SPREAD_CONSUMERS,
                 pipe_srtp: bool = False):
        self.workers = workers
        self.placement = Placement(lambda: self.workers, spread_consumers, watch=self._watch, enable_srtp=pipe_srtp)
        self.rooms: dict[str, Room] = {}
        self._opening: dict[str, asyncio.Future] = {}
        # set by the signaling server: tells a room's peers and removes them
        self.on_room_closed: Callable[[Room, str], Awaitable[None]] | None = None
        # set by the signaling server: tells some peers of a room they lost it, and removes them
        self.on_peers_lost: Callable[[Room, list[Peer], str], Awaitable[None]] | None = None
        # set by the signaling server when there are many nodes (Redis)
        self.cluster: Cluster | None = None
        # told of every new producer in a room here (recordings of a room take its new producers)
        self.producer_listeners: list[Callable[[Room, Peer, Producer], Awaitable[None]]] = []

    def pick_worker(self) -> Worker:
        alive = [w for w in self.workers if not w.closed]
        if not alive:
            raise RequestError("internal_error", "no media worker is running")
        return min(alive, key=lambda w: (len(w.routers), w.index))

    async def open(self, record: RoomRecord) -> Room:
        """The live room for a database room, creating its router on first use."""
        room = self.rooms.get(record.id)
        if room is not None:
            if self.cluster is not None:
                _refuse_elsewhere(await self.cluster.elsewhere(record.id, opening=False))
            return room
        pending = self._opening.get(record.id)
        if pending is not None:  # two first joins at once share one router
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._opening[record.id] = future
        try:
            worker = self.pick_worker()
            if self.cluster is not None:
                _refuse_elsewhere(await self.cluster.claim(record.id, worker.index))
            try:
                router = await worker.create_router(app_data={"roomId": record.id})
            except SwitchyardError as exc:
                await self._unregister(record.id)
                raise RequestError("internal_error", f"the room's media could not start: {exc.message}") from None
            room = Room(record.id, record.name, record.max_participants, router)
            self._watch(room, router)
            self.rooms[record.id] = room
            future.set_result(room)
            log.info("room %s opened on worker %d", record.id, worker.index)
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            self._opening.pop(record.id, None)

    def producer_added(self, room: Room, peer: Peer, producer: Producer) -> None:
        """A peer produced: the listeners run as tasks of their own, so the produce ack never waits."""
        for listener in self.producer_listeners:
            asyncio.ensure_future(listener(room, peer, producer))

    def peers_changed(self) -> None:
        """Someone joined or left a room here: other nodes see the new count soon."""
        if self.cluster is not None:
            self.cluster.touch()

    async def release_if_empty(self, room: Room) -> None:
        """The last peer left: free the router."""
        if not room.peers and self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            await self._unregister(room.id)
            await self.placement.close_routers(room)
            log.info("room %s closed (empty)", room.id)
        elif room.peers:
            await self.placement.shrink(room)

    def _watch(self, room: Room, router: Router) -> None:
        router.on("workerclose", lambda: asyncio.ensure_future(self._router_died(room, router)))

    async def _router_died(self, room: Room, router: Router) -> None:
        """A worker of the room died: while the room has other routers, only this one's peers lose it."""
        if self.rooms.get(room.id) is room and router not in room.routers:
            return  # a router the room had already left
        lost = [p for p in room.peers.values() if p.router is router]
        if self.rooms.get(room.id) is not room or not self.placement.drop_router(room, router):
            await self._worker_died(room)
            return
        log.warning("room %s lost its router on worker %d: its %d peer(s) are told, the others stay",
                    room.id, router.worker.index, len(lost))
        if lost and self.on_peers_lost is not None:
            await self.on_peers_lost(room, lost, "worker_died")
        await self.release_if_empty(room)

    async def _worker_died(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            await self._unregister(room.id)
            log.warning("room %s lost its media worker; peers are told and may join again", room.id)
            if self.on_room_closed is not None:
                await self.on_room_closed(room, "worker_died")

    async def _unregister(self, room_id: str) -> None:
        if self.cluster is not None:
            await self.cluster.release(room_id)

    async def close_here(self, room_id: str, reason: str) -> None:
        """Close a room this node hosts: `deleted`, or `moved` (another node holds it now; its entry
        in the directory is that node's, so it stays)."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        if reason != "moved":
            await self._unregister(room_id)
        if self.on_room_closed is not None:
            await self.on_room_closed(room, reason)
        await self.placement.close_routers(room)

    # app.live.RoomsLive

    async def participant_counts(self, room_ids: Sequence[str]) -> Mapping[str, int]:
        counts = {rid: len(self.rooms[rid].peers) for rid in room_ids if rid in self.rooms}
        if self.cluster is not None:  # a room's peers on every node
            return await self.cluster.participant_counts(room_ids, counts)
        return counts

    async def close_room(self, room_id: str) -> None:
        if room_id in self.rooms:
            await self.close_here(room_id, "deleted")
        if self.cluster is not None:  # the other nodes carrying it close theirs
            await self.cluster.request_close(room_id)


def _refuse_elsewhere(url: str | None) -> None:
    """A draining or full node sends the join to another node (PROTOCOL.md section 3, `wrong_node`)."""
    if url is not None:
        raise RequestError("wrong_node", "this node takes no more peers here (draining or full): "
                           "connect to the node at url and join again", url=url)
