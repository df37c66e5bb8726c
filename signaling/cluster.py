"""Many nodes over Redis: which nodes carry each room, kept alive by heartbeats, and the control
channel through which a deleted room is closed on every node that carries it.

Every node can host every room (docs/architecture.md, "A room across nodes"): a peer joins on
whichever node it reached, and the nodes of a room pipe their producers to each other
(signaling/cascade.py). The directory says who is where:

- `switchyard:node:<nodeId>`: this node is alive: a JSON `NodeEntry` (public URL, pipe address,
  draining/full) with a TTL of NODE_TTL_MS, rewritten every HEARTBEAT_SECONDS;
- `switchyard:room-nodes:<roomId>`: a hash, one field per node carrying the room (its participant
  count and worker), the whole key expiring when no node renews it.

A node that stops renewing its key (killed, cut off) is dead to the others within NODE_TTL_MS:
every node watches the other nodes of its rooms every WATCH_SECONDS, drops a dead one from the
room's hash and tells its own peers that the dead node's peers left (cascade.node_gone).
`DELETE /api/rooms/{id}` is published on CLOSE_CHANNEL; every node carrying the room closes it.

While Redis is unreachable the node says so once, keeps its rooms, opens new rooms on its own,
and registers them all again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
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
    from signaling.cascade import Cascade
    from signaling.registry import RoomRegistry

log = get_logger("signaling.cluster")

NODE_KEY_PREFIX = "switchyard:node:"
ROOM_NODES_PREFIX = "switchyard:room-nodes:"
CLOSE_CHANNEL = "switchyard:rooms:close"
HEARTBEAT_SECONDS = 1.0
# A killed node is noticed within NODE_TTL_MS + WATCH_SECONDS of its last beat (~4 s at most).
NODE_TTL_MS = 3000
WATCH_SECONDS = 0.5
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def node_key(node_id: str) -> str:
    return NODE_KEY_PREFIX + node_id


def room_nodes_key(room_id: str) -> str:
    return ROOM_NODES_PREFIX + room_id


def redis_options() -> dict[str, Any]:
    """Fail fast while Redis is down: one attempt, a short connect timeout; callers retry on their own clock."""
    return {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "retry": Retry(NoBackoff(), 0)}


def shown_url(url: str) -> str:
    """A Redis URL without its password, for logs."""
    parts = urlsplit(url)
    return url if parts.password is None else url.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True)
class NodeEntry:
    """A live node: its id, public base URL, the IP other nodes pipe media to, and whether it takes joins."""

    node_id: str
    url: str
    pipe_ip: str
    draining: bool = False
    full: bool = False

    def to_json(self) -> str:
        return json.dumps({"nodeId": self.node_id, "url": self.url, "pipeIp": self.pipe_ip,
                           "draining": self.draining, "full": self.full})

    @classmethod
    def parse(cls, data: bytes | str) -> NodeEntry:
        try:
            fields = json.loads(data)
            return cls(str(fields["nodeId"]), str(fields["url"]), str(fields["pipeIp"]),
                       bool(fields.get("draining")), bool(fields.get("full")))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"node directory entry is invalid: {exc}") from None

    @property
    def takes_joins(self) -> bool:
        return not (self.draining or self.full)


def room_entry(participants: int, worker: int) -> str:
    """This node's field in a room's hash."""
    return json.dumps({"participants": participants, "worker": worker})


def entry_participants(data: bytes | str) -> int:
    try:
        return int(json.loads(data)["participants"])
    except (ValueError, TypeError, KeyError):
        return 0


class Cluster:
    """This node's part of the directory in Redis; the registry asks it before opening a room here."""

    def __init__(self, redis_url: str, public_url: str, registry: RoomRegistry, pipe_ip: str,
                 max_peers: int = 0):
        self.redis_url = redis_url
        self.public_url = public_url
        self.pipe_ip = pipe_ip
        self.max_peers = max_peers
        self.draining = False
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.registry = registry
        self.reachable = True
        self.redis = aioredis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, **redis_options())
        # node id -> entry, as last read (the pipe address of a room's other nodes)
        self.nodes: dict[str, NodeEntry] = {}
        self.cascade: Cascade | None = None  # set by the signaling server
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._watch_after = 0.0  # no node is judged dead before this (monotonic), e.g. after an outage

    async def start(self) -> None:
        await self._beat()
        self._tasks = [asyncio.create_task(self._heartbeats(), name="cluster-heartbeats"),
                       asyncio.create_task(self._watch(), name="cluster-watch"),
                       asyncio.create_task(self._close_requests(), name="cluster-close-requests")]
        if self.cascade is not None:
            self._tasks.append(asyncio.create_task(self.cascade.bus.run(), name="cascade-bus"))
        log.info("node %s in the room directory at %s as %s (pipes to %s)", self.node_id,
                 shown_url(self.redis_url), self.public_url, self.pipe_ip)

    async def stop(self) -> None:
        """Stop the heartbeats and leave the directory, so other nodes drop this one at once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.reachable:
            for room_id in list(self.registry.rooms):
                await self.release(room_id)
            with contextlib.suppress(*REDIS_ERRORS):
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    await self.redis.delete(node_key(self.node_id))
        await self.redis.aclose()

    def drain(self) -> None:
        """Take no new rooms from now on: joins to rooms not open here get `wrong_node` (SIGUSR1)."""
        if not self.draining:
            self.draining = True
            log.warning("node %s is draining: joins to rooms not open here go to other nodes", self.node_id)
            self.touch()

    # ---- the registry's questions --------------------------------------------------------------

    def local_peers(self) -> int:
        return sum(len(room.peers) for room in self.registry.rooms.values())

    def is_full(self) -> bool:
        return self.max_peers > 0 and self.local_peers() >= self.max_peers

    async def claim(self, room_id: str, worker_index: int) -> str | None:
        """None when the room may open here (now registered as one of its nodes); else the URL of a
        node that takes joins, when this one is draining or full."""
        elsewhere = await self.elsewhere(room_id, opening=True)
        if elsewhere is not None:
            return elsewhere
        if self.cascade is not None:
            self.cascade.room_opening(room_id)
        if not self.reachable:
            log.info("room %s opens on this node without the directory (Redis unreachable)", room_id)
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hset(room_nodes_key(room_id), self.node_id, room_entry(0, worker_index))
                    pipe.pexpire(room_nodes_key(room_id), NODE_TTL_MS * 2)
                    pipe.hkeys(room_nodes_key(room_id))
                    _, _, members = await pipe.execute()
        except REDIS_ERRORS as exc:
            self._lost(exc)
            log.info("room %s opens on this node without the directory (Redis unreachable)", room_id)
            return None
        others = [m.decode() for m in members if m.decode() != self.node_id]
        if others and self.cascade is not None:
            await self.cascade.learn_room(room_id, others)
        return None

    async def elsewhere(self, room_id: str, opening: bool) -> str | None:
        """The URL of a node that takes joins when this one takes none for the room: a full node takes
        no joins, a draining one no new rooms; None otherwise (or when no other node takes them)."""
        if not (self.is_full() or (opening and self.draining)):
            return None
        other = await self._node_taking_joins(room_id)
        if other is not None:
            return other.url
        log.warning("node is %s but no other node takes joins: room %s's join is taken here",
                    "full" if self.is_full() else "draining", room_id)
        return None

    async def release(self, room_id: str) -> None:
        """The room closed here: leave its hash (if Redis is down, the entry expires with the node key)."""
        if self.cascade is not None:
            await self.cascade.room_left_here(room_id)
        if not self.reachable:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self.redis.hdel(room_nodes_key(room_id), self.node_id)
        except REDIS_ERRORS as exc:
            self._lost(exc)

    def touch(self) -> None:
        """A room's participant count changed here: refresh the entries now rather than at the next beat."""
        self._wake.set()

    async def participant_counts(self, room_ids: Sequence[str], local: Mapping[str, int]) -> Mapping[str, int]:
        """Participants of each room over all its live nodes (this node's own count is `local`)."""
        counts = {rid: n for rid, n in local.items() if rid in room_ids}
        if not room_ids or not self.reachable:
            return counts
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                members = await self._room_members(room_ids)
                alive = await self._alive({node for fields in members.values() for node in fields})
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return counts
        for room_id, fields in members.items():
            elsewhere = [entry_participants(v) for node, v in fields.items()
                         if node != self.node_id and node in alive]
            if elsewhere or room_id in counts:
                counts[room_id] = counts.get(room_id, 0) + sum(elsewhere)
        return counts

    async def request_close(self, room_id: str) -> None:
        """Ask every node carrying the room to close it (a deleted room)."""
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self.redis.publish(CLOSE_CHANNEL, room_id)
        except REDIS_ERRORS as exc:
            self._lost(exc)
            log.warning("room %s was deleted, but other nodes could not be told (Redis unreachable)", room_id)

    async def node(self, node_id: str) -> NodeEntry | None:
        """A live node's entry (read again from Redis when not known)."""
        entry = self.nodes.get(node_id)
        if entry is None and self.reachable:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    value = await self.redis.get(node_key(node_id))
            except REDIS_ERRORS as exc:
                self._lost(exc)
                return None
            if value is not None:
                with contextlib.suppress(ValueError):
                    entry = self.nodes[node_id] = NodeEntry.parse(value)
        return entry

    # ---- background ------------------------------------------------------------------------------

    def _own_entry(self) -> NodeEntry:
        return NodeEntry(self.node_id, self.public_url, self.pipe_ip, self.draining, self.is_full())

    async def _room_members(self, room_ids: Sequence[str]) -> dict[str, dict[str, bytes]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.hgetall(room_nodes_key(room_id))
            values = await pipe.execute()
        return {rid: {k.decode(): v for k, v in fields.items()} for rid, fields in zip(room_ids, values, strict=True)}

    async def _alive(self, node_ids: set[str]) -> set[str]:
        """The nodes among `node_ids` whose key still exists (their entries are remembered)."""
        ids = sorted(node_ids - {self.node_id})
        alive = {self.node_id} & node_ids
        if not ids:
            return alive
        for node_id, value in zip(ids, await self.redis.mget([node_key(n) for n in ids]), strict=True):
            if value is None:
                self.nodes.pop(node_id, None)
                continue
            with contextlib.suppress(ValueError):
                self.nodes[node_id] = NodeEntry.parse(value)
                alive.add(node_id)
        return alive

    async def _node_taking_joins(self, room_id: str) -> NodeEntry | None:
        """Another live node for a join this node refuses: one of the room's first, else any."""
        if not self.reachable:
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                members = (await self._room_members([room_id]))[room_id]
                candidates = list(members)
                async for key in self.redis.scan_iter(match=NODE_KEY_PREFIX + "*", count=100):
                    candidates.append(key.decode()[len(NODE_KEY_PREFIX):])
                    if len(candidates) > 1000:
                        break
                alive = await self._alive(set(candidates))
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return None
        for node_id in candidates:
            entry = self.nodes.get(node_id)
            if node_id != self.node_id and node_id in alive and entry is not None and entry.takes_joins:
                return entry
        return None

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
        rooms = list(self.registry.rooms.values())
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(node_key(self.node_id), self._own_entry().to_json(), px=NODE_TTL_MS)
                    for room in rooms:
                        pipe.hset(room_nodes_key(room.id), self.node_id,
                                  room_entry(len(room.peers), room.router.worker.index))
                        pipe.pexpire(room_nodes_key(room.id), NODE_TTL_MS * 2)
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return
        self._regained()

    async def _watch(self) -> None:
        """Drop the dead nodes of this node's rooms (their peers here are told they left)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if not self.reachable or time.monotonic() < self._watch_after or not self.registry.rooms:
                continue
            try:
                await self._check_rooms()
            except REDIS_ERRORS as exc:
                self._lost(exc)
            except Exception:
                log.exception("watching the other nodes of this node's rooms failed")

    async def _check_rooms(self) -> None:
        room_ids = list(self.registry.rooms)
        # what this node knew before reading Redis: a node that joins a room meanwhile is not gone
        known_before = {rid: self.cascade.nodes_of(rid) if self.cascade is not None else set() for rid in room_ids}
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
            members = await self._room_members(room_ids)
            alive = await self._alive({node for fields in members.values() for node in fields})
        for room_id, fields in members.items():
            dead = [node for node in fields if node not in alive]
            known = known_before[room_id]
            for node_id in dead:
                log.warning("node %s stopped renewing its heartbeat: dropped from room %s", node_id, room_id)
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    await self.redis.hdel(room_nodes_key(room_id), node_id)
            for node_id in sorted(known - (alive & set(fields))):
                if self.cascade is not None:
                    await self.cascade.node_gone(room_id, node_id)

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
            # the other nodes need a beat to register again too: none is judged dead meanwhile
            self._watch_after = time.monotonic() + NODE_TTL_MS / 1000
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
