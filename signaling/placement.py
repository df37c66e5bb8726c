"""How a room spreads over the workers of one node: one router per worker it uses, producers piped on demand.

A room opens with one router on the least-loaded worker (RoomRegistry.open). Each new peer goes to
the room's least-loaded router; once every router of the room carries `threshold` consumers, the
next peer opens a router on the least-loaded worker the room does not use yet, if any. A peer's
transports, producers and consumers all live on its router. When a peer consumes a producer of
another router, that producer is piped there once (router.pipe_to_router, mediasoup's
pipeToRouter): the pipe producer on the consumer's router has the producer's id, carries every
simulcast layer, and follows its pause, resume and close, so events keyed by producer id hold for
every peer whatever its router. The pipes carry SRTP when the node's pipes do (SWITCHYARD_PIPE_SRTP,
the same setting as the pipes to other nodes): loopback never leaves the host, but one setting
for every pipe is what an operator who asked for encrypted pipes expects. A data producer is piped
the same way on its first data consumer on another router (router.pipe_data_to_router), over the
same pipe transport pair: its messages are relayed, its close closes the far data consumers.

Why count consumers, and count them ahead: the worker's cost is per forwarded copy (docs/benchmarks.md),
and a peer joins before it consumes, so a burst of joins would otherwise all land on one router.
A peer counts as the consumers it has, or as the room's producers it does not own yet when it has
fewer, and at least one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from common.log import get_logger

if TYPE_CHECKING:
    from media.api.consumer import Consumer
    from media.api.data_producer import DataProducer
    from media.api.producer import Producer
    from media.api.router import Router
    from media.api.worker import Worker
    from signaling.room import Room

log = get_logger("signaling.placement")

# Consumers of one room on one worker before the room spreads to another (SWITCHYARD_SPREAD_CONSUMERS).
# Sized from bench_forward.py (docs/benchmarks.md, "Latest figures"): at 500 consumers of one
# producer a worker core forwards 383k (AES-CM) to 545k (AES-GCM) copies/s without loss, that is
# 766-1,090 packets/s per consumer, 3-7x what a camera consumer takes (150-250 packets/s), which
# leaves room for RTCP, ICE, key-frame bursts and the worker's other rooms; and at 500 the median
# copy already leaves 3.5-4.1 ms after its input (p99 6.9-8.5 ms) at half that load, latency that
# grows with every consumer a core fans out to. 500 is also the largest fan-out measured there.
DEFAULT_SPREAD_CONSUMERS = 500


def router_of(peer) -> Router:
    """The router a peer's transports live on (its room's first one when it has none of its own)."""
    return peer.router if peer.router is not None else peer.room.router


def room_load(room: Room, router: Router) -> int:
    """The consumers the room's peers on `router` have, or will have soon (see the module's docstring)."""
    producers = sum(len(p.producers) for p in room.peers.values())
    return sum(max(len(p.consumers), producers - len(p.producers), 1)
               for p in room.peers.values() if router_of(p) is router)


def consumers_of(room: Room, producer_id: str) -> list[Consumer]:
    """The peers' consumers of a producer on every router of the room (not the pipes carrying it)."""
    consumers: list[Consumer] = []
    for router in room.routers:
        producer = router.producers.get(producer_id)
        if producer is not None:
            consumers += [c for c in producer.consumers.values() if c.type != "pipe" and not c.closed]
    return consumers


class Placement:
    """Chooses a new peer's router, opening a room's next router when the others are full, and pipes
    producers to the routers that consume them; one per node (RoomRegistry.placement)."""

    def __init__(self, workers: Callable[[], list[Worker]], threshold: int = DEFAULT_SPREAD_CONSUMERS,
                 watch: Callable[[Room, Router], None] | None = None, enable_srtp: bool = False):
        # the node's workers as they are now (a respawned worker takes a dead one's place)
        self.workers = workers
        self.threshold = threshold
        # pipes between this node's workers carry SRTP (each end's signalled key) rather than plain RTP
        self.enable_srtp = enable_srtp
        # told of each router a room opens here (the registry watches its worker)
        self.watch = watch
        # pipes under way, by (producer id, target router id): concurrent consumers share one
        self._piping: dict[tuple[str, str], asyncio.Future[object]] = {}

    def spare_worker(self, room: Room) -> Worker | None:
        """The least-loaded live worker the room has no router on (by routers, as RoomRegistry.pick_worker)."""
        used = {router.worker for router in room.routers}
        spare = [w for w in self.workers() if not w.closed and w not in used]
        return min(spare, key=lambda w: (len(w.routers), w.index), default=None)

    async def router_for_new_peer(self, room: Room) -> Router:
        """The room's least-loaded router; a new one on a spare worker when every router has reached
        the threshold (one decision at a time per room, so a burst of joins opens one router)."""
        async with room.placing:
            live = [r for r in room.routers if not r.closed]
            if not live:  # the room is closing; its peers are told by whoever closed it
                return room.router
            loads = {r.id: room_load(room, r) for r in live}
            best = min(live, key=lambda r: (loads[r.id], r.worker.index))
            if self.threshold <= 0 or loads[best.id] < self.threshold:  # 0: never spread
                return best
            worker = self.spare_worker(room)
            if worker is None:
                return best
            router = await worker.create_router(app_data={"roomId": room.id})
            if room.router.closed:  # the room closed while the router was made: nobody else would close it
                await router.close()
                return best
            room.routers.append(router)
            if self.watch is not None:
                self.watch(room, router)
            log.info("room %s spreads to worker %d (%d consumers on each of its %d router(s))",
                     room.id, worker.index, loads[best.id], len(live))
            return router

    async def pipe_for(self, producer: Producer, target: Router) -> None:
        """Make `producer` (of its own router) consumable on `target`: piped once, on the first consumer."""
        source = producer.transport.router
        if source is target or producer.id in target.producers:
            return
        await self._pipe_once((producer.id, target.id),
                              lambda: source.pipe_to_router(producer.id, target, self.enable_srtp))

    async def pipe_data_for(self, data_producer: DataProducer, target: Router) -> None:
        """Make a data producer (of its own router) consumable on `target`: piped once, on the first data
        consumer (its messages relayed through this process, media/api/data_pipe.py)."""
        source = data_producer.transport.router
        if source is target or data_producer.id in target.data_producers:
            return
        await self._pipe_once((data_producer.id, target.id),
                              lambda: source.pipe_data_to_router(data_producer.id, target, self.enable_srtp))

    async def _pipe_once(self, key: tuple[str, str], start: Callable[[], Awaitable[object]]) -> None:
        """Start the pipe `key` (object id, target router id) unless one is under way; wait for it
        either way (shielded: a caller that gives up does not cancel it for the others)."""
        pending = self._piping.get(key)
        if pending is None:
            pending = asyncio.ensure_future(start())
            self._piping[key] = pending
            pending.add_done_callback(lambda _: self._piping.pop(key, None))
        await asyncio.shield(pending)

    async def shrink(self, room: Room) -> None:
        """Close the routers (other than the first) no peer of the room uses any more: their pipes
        close with them, and the pipe consumers feeding them on the other routers."""
        used = {router_of(p).id for p in room.peers.values()}
        for router in list(room.routers[1:]):
            if router.id not in used:
                room.routers.remove(router)
                room.speakers.pop(router.id, None)
                await router.close()
                log.info("room %s left worker %d", room.id, router.worker.index)

    @staticmethod
    async def close_routers(room: Room) -> None:
        """The room is over: close every router (the first last, so the pipes close from the far end)."""
        for router in reversed(room.routers):
            await router.close()
        room.speakers.clear()

    @staticmethod
    def drop_router(room: Room, router: Router) -> bool:
        """Forget a router of the room whose worker died; False when it was the room's only one (the room
        is lost)."""
        if len(room.routers) == 1:
            return False
        room.routers.remove(router)
        room.speakers.pop(router.id, None)
        if room.router is router:
            room.router = room.routers[0]
        return True


def active_speaker(room: Room, router_id: str, producer_id: str | None, volume: float | None) -> bool:
    """One router's choice (each router measures the audio producers it carries, its own and the piped
    ones); True when the room's choice, the loudest of its routers' choices, changed."""
    if producer_id is None:
        room.speakers.pop(router_id, None)
    else:
        room.speakers[router_id] = (producer_id, volume if volume is not None else -127.0)
    choices = [c for c in room.speakers.values() if room.producer_owner(c[0]) is not None]
    loudest = max(choices, key=lambda c: c[1], default=None)
    if (loudest[0] if loudest else None) == room.speaker:
        return False
    room.speaker = loudest[0] if loudest else None
    room.speaker_volume = loudest[1] if loudest else None
    return True
