"""Many nodes over Redis: the directory of which node hosts each room, kept alive by heartbeats,
and the control channel through which any node closes a room where it is hosted.

One key per hosted room, `switchyard:room:<roomId>`, holds a JSON `HostEntry` with a TTL of
ENTRY_TTL_MS; the hosting node rewrites it every HEARTBEAT_SECONDS (and at once when its
participant count changes) and deletes it when the room closes, so the rooms of a node that
dies are free again within the TTL. Claims and refreshes are one Lua script, so two nodes can
never both believe they hold a room. `DELETE /api/rooms/{id}` on a node that does not host the
room is published on CLOSE_CHANNEL; the hosting node closes it.

While Redis is unreachable the node says so once, keeps its rooms, opens new rooms without the
directory, and registers them all again when Redis is back (a room another node claimed meanwhile
is given up: its peers here get `room-closed` with reason `moved` and are redirected on rejoin).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from common.log import get_logger

if TYPE_CHECKING:
    from signaling.registry import RoomRegistry
    from signaling.room import Room

log = get_logger("signaling.cluster")

ROOM_KEY_PREFIX = "switchyard:room:"
CLOSE_CHANNEL = "switchyard:rooms:close"
HEARTBEAT_SECONDS = 2.0
ENTRY_TTL_MS = 6000
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_ERRORS = (RedisError, OSError, TimeoutError)

# Put this node's entry for a room unless another node holds it; the holder's entry otherwise.
# An entry with this node's URL but another node id is a previous run of this node: taken over.
HOLD_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local holder = cjson.decode(current)
  if holder['nodeId'] ~= ARGV[1] and holder['url'] ~= ARGV[2] then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return false
"""

# Delete a room's entry only if this node still holds it.
RELEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['nodeId'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def room_key(room_id: str) -> str:
    return ROOM_KEY_PREFIX + room_id


def redis_options() -> dict[str, Any]:
    """Fail fast while Redis is down: one attempt, a short connect timeout; callers retry on their own clock."""
    return {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "retry": Retry(NoBackoff(), 0)}


def shown_url(url: str) -> str:
    """A Redis URL without its password, for logs."""
    parts = urlsplit(url)
    return url if parts.password is None else url.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True)
class HostEntry:
    """Who hosts a room: the node (its id and public base URL), the worker, and how many are in it."""

    node_id: str
    url: str
    worker: int
    participants: int

    def to_json(self) -> str:
        return json.dumps({"nodeId": self.node_id, "url": self.url, "worker": self.worker,
                           "participants": self.participants})

    @classmethod
    def parse(cls, data: bytes | str) -> HostEntry:
        try:
            fields = json.loads(data)
            return cls(str(fields["nodeId"]), str(fields["url"]), int(fields["worker"]),
                       int(fields["participants"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"room directory entry is invalid: {exc}") from None


class Cluster:
    """This node's part of the room directory in Redis; the registry asks it before opening a room."""

    def __init__(self, redis_url: str, public_url: str, registry: RoomRegistry):
        self.redis_url = redis_url
        self.public_url = public_url
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.registry = registry
        self.reachable = True
        self.redis = aioredis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, **redis_options())
        self._hold = self.redis.register_script(HOLD_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._heartbeats(), name="cluster-heartbeats"),
                       asyncio.create_task(self._close_requests(), name="cluster-close-requests")]
        log.info("node %s in the room directory at %s as %s", self.node_id, shown_url(self.redis_url),
                 self.public_url)

    async def stop(self) -> None:
        """Stop the heartbeats and give up this node's rooms, so other nodes can take them at once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.reachable:
            for room_id in list(self.registry.rooms):
                await self.release(room_id)
        await self.redis.aclose()

    # ---- the registry's questions --------------------------------------------------------------

    async def claim(self, room_id: str, worker_index: int) -> str | None:
        """None when this node may host the room (now registered as its host); else the host's URL."""
        if not self.reachable:
            log.info("room %s opens on this node without the directory (Redis unreachable)", room_id)
            return None
        entry = HostEntry(self.node_id, self.public_url, worker_index, 0)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                holder = await self._hold(keys=[room_key(room_id)], args=self._hold_args(entry))
        except REDIS_ERRORS as exc:
            self._lost(exc)
            log.info("room %s opens on this node without the directory (Redis unreachable)", room_id)
            return None
        return None if holder is None else HostEntry.parse(holder).url

    async def release(self, room_id: str) -> None:
        """The room closed here: drop its entry (if Redis is down, it expires on its own)."""
        if not self.reachable:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self._release(keys=[room_key(room_id)], args=[self.node_id])
        except REDIS_ERRORS as exc:
            self._lost(exc)

    def touch(self) -> None:
        """A hosted room's participant count changed: refresh the entries now rather than at the next beat."""
        self._wake.set()

    async def participant_counts(self, room_ids: Sequence[str]) -> Mapping[str, int]:
        """Counts of rooms hosted anywhere, from the directory; none while Redis is unreachable."""
        if not room_ids or not self.reachable:
            return {}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                values = await self.redis.mget([room_key(room_id) for room_id in room_ids])
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return {}
        counts = {}
        for room_id, value in zip(room_ids, values, strict=True):
            if value is not None:
                with contextlib.suppress(ValueError):
                    counts[room_id] = HostEntry.parse(value).participants
        return counts

    async def request_close(self, room_id: str) -> None:
        """Ask whichever node hosts the room to close it (a deleted room)."""
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self.redis.publish(CLOSE_CHANNEL, room_id)
        except REDIS_ERRORS as exc:
            self._lost(exc)
            log.warning("room %s was deleted, but its hosting node could not be told (Redis unreachable)",
                        room_id)

    # ---- background ------------------------------------------------------------------------------

    def _hold_args(self, entry: HostEntry) -> list:
        return [self.node_id, self.public_url, entry.to_json(), ENTRY_TTL_MS]

    def _entry(self, room: Room) -> HostEntry:
        return HostEntry(self.node_id, self.public_url, room.router.worker.index, len(room.peers))

    async def _heartbeats(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._beat()
            except Exception:
                log.exception("room directory heartbeat failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await self._wake.wait()

    async def _beat(self) -> None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                moved = await self._hold_rooms()
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return
        self._regained()
        for room_id in moved:
            log.warning("room %s is hosted by another node now; its peers here are sent there", room_id)
            await self.registry.close_here(room_id, "moved")

    async def _hold_rooms(self) -> list[str]:
        """Rewrite every hosted room's entry (re-registering any Redis lost); the rooms another node holds."""
        rooms = list(self.registry.rooms.values())
        if not rooms:
            await self.redis.ping()
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                await self._hold(keys=[room_key(room.id)], args=self._hold_args(self._entry(room)), client=pipe)
            holders = await pipe.execute()
        return [room.id for room, holder in zip(rooms, holders, strict=True) if holder is not None]

    async def _close_requests(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CLOSE_CHANNEL)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        await self._close_requested(message["data"])
            except REDIS_ERRORS as exc:
                self._lost(exc)
                await asyncio.sleep(HEARTBEAT_SECONDS)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()

    async def _close_requested(self, data: bytes) -> None:
        room_id = data.decode("utf-8", "replace")
        try:
            await self.registry.close_here(room_id, "deleted")
        except Exception:
            log.exception("closing room %s for another node failed", room_id)

    def _lost(self, exc: BaseException) -> None:
        if self.reachable:
            self.reachable = False
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("Redis at %s is unreachable (%s): this node keeps serving its rooms and opens new "
                        "ones without the room directory until Redis is back", shown_url(self.redis_url), reason)

    def _regained(self) -> None:
        if not self.reachable:
            self.reachable = True
            log.info("Redis at %s is reachable again: this node's %d room(s) are registered again",
                     shown_url(self.redis_url), len(self.registry.rooms))


class _Debug(logging.LoggerAdapter):
    """python-socketio logs every failed publish as an error; the cluster reports an outage once."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class RoomEvents(socketio.AsyncRedisManager):
    """python-socketio's Redis manager (room events reach sockets on every node); it does not try
    to publish while the cluster knows Redis is down, so no emit waits on a dead connection."""

    def __init__(self, redis_url: str, cluster: Cluster):
        super().__init__(redis_url, logger=_Debug(get_logger("signaling.pubsub"), {}),
                         redis_options=redis_options())
        self.cluster = cluster

    async def _publish(self, data: dict) -> None:
        if self.cluster.reachable:
            await super()._publish(data)
