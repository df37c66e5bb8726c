"""A room across nodes (cascade): this node's view of the room's peers and producers on other nodes.

Every node can host every room. The peers of a room connected to this node are its own (Room.peers);
the others are *remote*: each node keeps a mirror of them per room, learnt when the room opens here
(`room.snapshot` asked of each other node carrying it) and kept up to date by the broadcasts every
node sends when something changes in a room on it (a peer joined, changed its mute or hand, left; a
producer was added, paused, resumed or closed; the node left the room). Socket.IO events already
reach the room's sockets on every node (python-socketio's Redis manager, signaling/cluster.py); the
mirror is what lets this node answer `join` with the whole room and `consume` a remote producer:
the producer is piped from its node on demand (signaling/cascade_pipes.py).

A node that leaves a room (its last peer left, its worker died, it was killed) takes its peers
with it: each remaining node tells its own peers `producer-closed` and `user-left` for whatever
the mirror still holds of that node, and closes the pipes to it, so consumers of its producers
hear `consumer-closed` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.log import get_logger
from signaling.cascade_bus import Bus
from signaling.cascade_data import NodeDataPipes
from signaling.cascade_pipes import NodePipes
from signaling.errors import RequestError, invalid_input, not_found
from signaling.room import data_producer_info, producer_info

if TYPE_CHECKING:
    from media.api.data_producer import DataProducer
    from media.api.producer import Producer
    from signaling.cluster import Cluster
    from signaling.peer import Peer
    from signaling.registry import RoomRegistry
    from signaling.room import Room

log = get_logger("signaling.cascade")

# A consume may race the broadcast that tells this node of a new producer: it waits this long.
PRODUCER_WAIT_SECONDS = 3.0
SNAPSHOT_TIMEOUT_SECONDS = 3.0
# Socket.IO events of a peer that change what other nodes must know of the room
PEER_EVENTS = ("user-joined", "audio-mute", "video-mute", "raised-hand")
PRODUCER_EVENTS = ("producer-closed", "producer-paused", "producer-resumed")

EmitLocal = Callable[[str, dict, str], Awaitable[None]]


@dataclass
class RemoteDataProducer:
    node_id: str
    info: dict[str, Any]  # the contract's dataProducerInfo


@dataclass
class RemoteProducer:
    node_id: str
    info: dict[str, Any]  # the contract's producerInfo
    paused: bool = False


@dataclass
class RoomMirror:
    """What this node knows of a room on the other nodes."""

    nodes: set[str] = field(default_factory=set)
    peers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # peer id -> (node, peer info)
    producers: dict[str, RemoteProducer] = field(default_factory=dict)
    data_producers: dict[str, RemoteDataProducer] = field(default_factory=dict)
    # producer and data producer ids a consume or consumeData waits for
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)

    def add_producer(self, node_id: str, info: dict[str, Any]) -> None:
        producer_id = info["producerId"]
        self.producers[producer_id] = RemoteProducer(node_id, info)
        self._arrived(producer_id)

    def add_data_producer(self, node_id: str, info: dict[str, Any]) -> None:
        self.data_producers[info["dataProducerId"]] = RemoteDataProducer(node_id, info)
        self._arrived(info["dataProducerId"])

    def _arrived(self, object_id: str) -> None:
        event = self.waiting.pop(object_id, None)
        if event is not None:
            event.set()

    async def wait_for(self, object_id: str, known: dict) -> bool:
        """Whether `object_id` is (or within PRODUCER_WAIT_SECONDS becomes) a key of `known`."""
        if object_id in known:
            return True
        event = self.waiting.setdefault(object_id, asyncio.Event())
        try:
            async with asyncio.timeout(PRODUCER_WAIT_SECONDS):
                await event.wait()
        except TimeoutError:
            return False
        finally:
            if self.waiting.get(object_id) is event and not event.is_set():
                del self.waiting[object_id]
        return object_id in known


def _peer_info(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("peerId"), str):
        raise ValueError("a peer needs a peerId")
    return data


def _data_producer_info(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("dataProducerId"), str) \
            or not isinstance(data.get("peerId"), str):
        raise ValueError("a data producer needs a dataProducerId and a peerId")
    return data


def _producer_info(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("producerId"), str) \
            or not isinstance(data.get("peerId"), str):
        raise ValueError("a producer needs a producerId and a peerId")
    return data


class Cascade:
    """The other nodes of this node's rooms: their peers and producers, and the pipes to them."""

    def __init__(self, cluster: Cluster, registry: RoomRegistry, pipe_srtp: bool = False):
        self.cluster = cluster
        self.registry = registry
        self.bus = Bus(cluster)
        self.bus.on_event = self._on_event
        self.bus.handlers["room.snapshot"] = self._on_snapshot
        self.pipes = NodePipes(cluster, registry, self.bus, enable_srtp=pipe_srtp)
        self.data_pipes = NodeDataPipes(registry, self.bus, self.pipes)
        self.mirrors: dict[str, RoomMirror] = {}
        # set by the signaling server: emit to this node's sockets of a room only
        self.emit_local: EmitLocal | None = None

    # ---- what the handlers ask --------------------------------------------------------------

    def remote_peers(self, room_id: str) -> list[dict[str, Any]]:
        mirror = self.mirrors.get(room_id)
        return [dict(info) for _, info in mirror.peers.values()] if mirror else []

    def remote_producers(self, room_id: str) -> list[dict[str, Any]]:
        mirror = self.mirrors.get(room_id)
        return [dict(p.info) for p in mirror.producers.values()] if mirror else []

    def remote_data_producers(self, room_id: str) -> list[dict[str, Any]]:
        mirror = self.mirrors.get(room_id)
        return [dict(p.info) for p in mirror.data_producers.values()] if mirror else []

    def remote_owner(self, room_id: str, producer_id: str) -> str | None:
        """The peer id of a remote producer's peer."""
        mirror = self.mirrors.get(room_id)
        producer = mirror.producers.get(producer_id) if mirror else None
        return producer.info["peerId"] if producer else None

    def nodes_of(self, room_id: str) -> set[str]:
        """The other nodes this node knows carry the room (peers, producers or pipes there)."""
        mirror = self.mirrors.get(room_id)
        nodes = set(mirror.nodes) if mirror else set()
        return nodes | self.pipes.nodes_of(room_id)

    async def make_consumable(self, room: Room, producer_id: str) -> Producer:
        """A remote producer piped into this node's first router of the room (not_found if none is
        known): the pipe producer that stands for it here, paused as its source is."""
        producer, remote = await self._pull(room, producer_id, "producer", lambda m: m.producers, self.pipes)
        if producer.paused != remote.paused:
            await (producer.pause() if remote.paused else producer.resume())
        return producer

    async def make_data_consumable(self, room: Room, data_producer_id: str) -> DataProducer:
        """A remote data producer piped into this node's first router of the room (signaling/cascade_data.py)."""
        producer, _ = await self._pull(room, data_producer_id, "data producer", lambda m: m.data_producers,
                                       self.data_pipes)
        return producer

    async def _pull(self, room: Room, object_id: str, what: str, table_of, pipes):
        """Wait until the room's mirror knows the remote object, pull it through `pipes` from its node
        into this node's router, and check it was not closed meanwhile. Returns what stands for it
        here and the mirror's entry; not_found for anything missing on the way."""
        mirror = self.mirrors.get(room.id)
        if mirror is None or not await mirror.wait_for(object_id, table_of(mirror)):
            raise not_found(what)
        entry = table_of(mirror).get(object_id)
        if entry is None:
            raise not_found(what)
        try:
            piped = await pipes.pull(room, entry.node_id, object_id)
        except RequestError as exc:
            if exc.code in ("unavailable", "not_found"):
                raise RequestError("not_found", f"{what} not found ({exc.message})") from None
            raise
        if object_id not in table_of(mirror) or room.router.closed:
            await piped.close()  # closed on its node while it was being piped
            raise not_found(what)
        return piped, entry

    # ---- what happens here --------------------------------------------------------------------

    def room_opening(self, room_id: str) -> None:
        """The room is about to open here: from now on its broadcasts are kept."""
        self.mirrors.setdefault(room_id, RoomMirror())

    async def learn_room(self, room_id: str, node_ids: list[str]) -> None:
        """The room is already on other nodes: their peers and producers, asked of each."""
        mirror = self.mirrors.setdefault(room_id, RoomMirror())
        replies = await asyncio.gather(*(self.bus.request(n, "room.snapshot", {"roomId": room_id},
                                                          timeout=SNAPSHOT_TIMEOUT_SECONDS) for n in node_ids),
                                       return_exceptions=True)
        for node_id, reply in zip(node_ids, replies, strict=True):
            if isinstance(reply, BaseException):
                log.warning("node %s did not tell what it has of room %s: %s", node_id, room_id, reply)
                continue
            mirror.nodes.add(node_id)
            try:
                for info in reply.get("peers") or []:
                    info = _peer_info(info)
                    mirror.peers.setdefault(info["peerId"], (node_id, info))
                for info in reply.get("producers") or []:
                    info = dict(_producer_info(info))
                    paused = bool(info.pop("paused", False))  # not part of the contract's producerInfo
                    if info["producerId"] not in mirror.producers:
                        mirror.add_producer(node_id, info)
                        mirror.producers[info["producerId"]].paused = paused
                for info in reply.get("dataProducers") or []:
                    info = _data_producer_info(info)
                    if info["dataProducerId"] not in mirror.data_producers:
                        mirror.add_data_producer(node_id, info)
            except ValueError as exc:
                log.warning("node %s sent a bad snapshot of room %s: %s", node_id, room_id, exc)

    async def share(self, peer: Peer, event: str, data: dict[str, Any]) -> None:
        """A peer here did something the other nodes of its room must know (before they hear the event)."""
        room_id = peer.room.id
        if event in PEER_EVENTS:
            await self.bus.broadcast(room_id, "peer", peer.info())
        elif event == "new-producer":
            await self.bus.broadcast(room_id, "producer-added", data)
        elif event in PRODUCER_EVENTS:
            await self.bus.broadcast(room_id, event, data)
        elif event == "new-data-producer":
            await self.bus.broadcast(room_id, "data-producer-added", data)
        elif event == "data-producer-closed":
            await self.bus.broadcast(room_id, event, data)

    async def peer_left(self, room_id: str, peer_id: str) -> None:
        await self.bus.broadcast(room_id, "peer-left", {"peerId": peer_id})

    async def room_left_here(self, room_id: str) -> None:
        """The room closed on this node: the others drop this node from it."""
        self.mirrors.pop(room_id, None)
        self.pipes.forget_room(room_id)
        self.data_pipes.forget_room(room_id)
        await self.bus.broadcast(room_id, "room-left", {})

    async def node_gone(self, room_id: str, node_id: str) -> None:
        """A node of the room died or left it: tell this node's peers its peers left; close the pipes."""
        mirror = self.mirrors.get(room_id)
        if mirror is None:
            return
        mirror.nodes.discard(node_id)
        producers = [pid for pid, p in mirror.producers.items() if p.node_id == node_id]
        peers = [pid for pid, (node, _) in mirror.peers.items() if node == node_id]
        closed = [(pid, mirror.producers.pop(pid).info["peerId"]) for pid in producers]
        data_closed = [(did, mirror.data_producers.pop(did).info["peerId"])
                       for did, p in list(mirror.data_producers.items()) if p.node_id == node_id]
        for peer_id in peers:
            del mirror.peers[peer_id]
        await self.pipes.close_node(room_id, node_id)
        if self.emit_local is not None:
            for producer_id, peer_id in closed:
                await self.emit_local("producer-closed", {"producerId": producer_id, "peerId": peer_id}, room_id)
            for data_producer_id, peer_id in data_closed:
                await self.emit_local("data-producer-closed",
                                      {"dataProducerId": data_producer_id, "peerId": peer_id}, room_id)
            for peer_id in peers:
                await self.emit_local("user-left", {"peerId": peer_id}, room_id)
        if peers or producers:
            log.info("room %s: node %s left with %d peer(s) and %d producer(s)", room_id, node_id,
                     len(peers), len(producers))

    # ---- what other nodes say -----------------------------------------------------------------

    async def _on_snapshot(self, sender: str, params: dict) -> dict[str, Any]:
        room_id = params.get("roomId")
        if not isinstance(room_id, str):
            raise invalid_input("roomId must be a string")
        room = self.registry.rooms.get(room_id)
        if room is None:
            return {"peers": [], "producers": [], "dataProducers": []}
        mirror = self.mirrors.get(room_id)
        if mirror is not None:
            mirror.nodes.add(sender)
        return {"peers": [p.info() for p in room.peers.values()],
                "producers": [{**producer_info(producer, p), "paused": producer.paused}
                              for p in room.peers.values() for producer in p.producers.values()],
                "dataProducers": [data_producer_info(producer, p)
                                  for p in room.peers.values() for producer in p.data_producers.values()]}

    async def _on_event(self, sender: str, room_id: str, event: str, data: dict) -> None:
        mirror = self.mirrors.get(room_id)
        if mirror is None:
            return  # the room is not open here
        if event == "room-left":
            await self.node_gone(room_id, sender)
            return
        mirror.nodes.add(sender)
        try:
            if event == "peer":
                info = _peer_info(data)
                mirror.peers[info["peerId"]] = (sender, info)
            elif event == "peer-left":
                mirror.peers.pop(str(data.get("peerId")), None)
            elif event == "producer-added":
                mirror.add_producer(sender, _producer_info(data))
            elif event in PRODUCER_EVENTS:
                await self._producer_changed(room_id, mirror, event, str(data.get("producerId")))
            elif event == "data-producer-added":
                mirror.add_data_producer(sender, _data_producer_info(data))
            elif event == "data-producer-closed":
                await self._data_producer_closed(room_id, mirror, str(data.get("dataProducerId")))
        except ValueError as exc:
            log.warning("node %s sent a bad %s for room %s: %s", sender, event, room_id, exc)

    async def _producer_changed(self, room_id: str, mirror: RoomMirror, event: str, producer_id: str) -> None:
        """A remote producer closed, paused or resumed: its pipe producer here follows (its consumers
        here hear `consumer-closed`, `consumer-paused`, `consumer-resumed`)."""
        remote = mirror.producers.get(producer_id)
        if event == "producer-closed":
            mirror.producers.pop(producer_id, None)
        elif remote is not None:
            remote.paused = event == "producer-paused"
        room = self.registry.rooms.get(room_id)
        piped = room.router.producers.get(producer_id) if room is not None else None
        if piped is None or piped.closed or room.producer_owner(producer_id) is not None:
            return
        if event == "producer-closed":
            await piped.close()
        elif event == "producer-paused" and not piped.paused:
            await piped.pause()
        elif event == "producer-resumed" and piped.paused:
            await piped.resume()

    async def _data_producer_closed(self, room_id: str, mirror: RoomMirror, data_producer_id: str) -> None:
        """A remote data producer closed: its pipe data producer here closes (its data consumers here
        hear `dataproducerclose`, their peers `data-consumer-closed`)."""
        mirror.data_producers.pop(data_producer_id, None)
        room = self.registry.rooms.get(room_id)
        piped = room.router.data_producers.get(data_producer_id) if room is not None else None
        if piped is not None and not piped.closed and room.data_producer_owner(data_producer_id) is None:
            await piped.close()
