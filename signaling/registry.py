"""The live rooms of this node: which router hosts each, on which worker; what REST asks of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from app.log import get_logger
from fastpath.errors import SwitchyardError
from signaling.errors import RequestError
from signaling.room import Room

if TYPE_CHECKING:
    from app.models import Room as RoomRecord
    from fastpath.worker import Worker

log = get_logger("signaling.rooms")


class RoomRegistry:
    """Rooms by id; a room's router lives on the least-loaded worker alive when it opens.

    It implements app.live.RoomsLive, so REST sees live participant counts and can close a room.
    """

    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self.rooms: dict[str, Room] = {}
        self._opening: dict[str, asyncio.Future] = {}
        # set by the signaling server: tells a room's peers and removes them
        self.on_room_closed: Callable[[Room, str], Awaitable[None]] | None = None

    def pick_worker(self) -> Worker:
        alive = [w for w in self.workers if not w.closed]
        if not alive:
            raise RequestError("internal_error", "no media worker is running")
        return min(alive, key=lambda w: (len(w.routers), w.index))

    async def open(self, record: RoomRecord) -> Room:
        """The live room for a database room, creating its router on first use."""
        room = self.rooms.get(record.id)
        if room is not None:
            return room
        pending = self._opening.get(record.id)
        if pending is not None:  # two first joins at once share one router
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._opening[record.id] = future
        try:
            worker = self.pick_worker()
            try:
                router = await worker.create_router(app_data={"roomId": record.id})
            except SwitchyardError as exc:
                raise RequestError("internal_error", f"the room's media could not start: {exc.message}") from None
            room = Room(record.id, record.name, record.max_participants, router)
            router.on("workerclose", lambda: asyncio.ensure_future(self._worker_died(room)))
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

    async def release_if_empty(self, room: Room) -> None:
        """The last peer left: free the router."""
        if not room.peers and self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            await room.router.close()
            log.info("room %s closed (empty)", room.id)

    async def _worker_died(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            log.warning("room %s lost its media worker; peers are told and may join again", room.id)
            if self.on_room_closed is not None:
                await self.on_room_closed(room, "worker_died")

    # app.live.RoomsLive

    async def participant_counts(self, room_ids: Sequence[str]) -> Mapping[str, int]:
        return {rid: len(self.rooms[rid].peers) for rid in room_ids if rid in self.rooms}

    async def close_room(self, room_id: str) -> None:
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        if self.on_room_closed is not None:
            await self.on_room_closed(room, "deleted")
        await room.router.close()
