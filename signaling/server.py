"""The Socket.IO server: authenticates at connect, runs each socket's requests in order, shapes acks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from socketio.exceptions import ConnectionRefusedError

from common.log import get_logger
from common.ratelimit import SlidingWindow
from media.api.errors import SwitchyardError
from signaling.cascade import Cascade
from signaling.cluster import Cluster, RoomEvents
from signaling.errors import RequestError, from_engine
from signaling.handlers import data, media, presence, room, transport
from signaling.metrics import SIGNALING_REQUESTS, SIGNALING_SECONDS
from signaling.placement import DEFAULT_SPREAD_CONSUMERS
from signaling.registry import RoomRegistry
from signaling.sockets import SocketServer

if TYPE_CHECKING:
    from aiohttp import web

    from app.models import ChatMessage, User
    from app.store import Store
    from signaling.peer import Peer
    from signaling.room import Room

log = get_logger("signaling")

# Larger than any valid request (rtpParameters are a few KiB); bigger frames close the socket.
MAX_MESSAGE_BYTES = 256 * 1024
CHAT_PER_SECOND = 10
MAX_PENDING_REQUESTS = 64
# What the application gives signaling (app/server.py composes them): who a token belongs to
# (None: refused), and a stored chat message in the contract's `message` shape.
Authenticate = Callable[[str], Awaitable["User | None"]]
MessageShape = Callable[["ChatMessage"], dict[str, Any]]


@dataclass(eq=False)
class Connection:
    """One authenticated socket; `peer` is set between join and leave."""

    sid: str
    user: User
    peer: Peer | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0


class SignalingServer:
    """PROTOCOL.md §3 over python-socketio; one per node, on every HTTP port the app serves."""

    def __init__(self, workers: list, store: Store, authenticate: Authenticate, message_shape: MessageShape,
                 redis_url: str | None = None, public_url: str | None = None, pipe_ip: str | None = None,
                 max_peers: int = 0, spread_consumers: int = DEFAULT_SPREAD_CONSUMERS, pipe_srtp: bool = False):
        # pipe_srtp: every pipe, between this node's workers and to other nodes, carries SRTP
        self.registry = RoomRegistry(workers, spread_consumers, pipe_srtp)
        self.registry.on_room_closed = self._room_closed
        self.registry.on_peers_lost = self._peers_lost
        manager = None
        # with Redis: the room's peers and producers on other nodes, and the pipes to them
        self.cascade: Cascade | None = None
        if redis_url:
            if not public_url:
                raise ValueError("many nodes (Redis) need this node's public URL")
            cluster = Cluster(redis_url, public_url, self.registry, pipe_ip or "127.0.0.1", max_peers)
            self.registry.cluster = cluster
            self.cascade = cluster.cascade = Cascade(cluster, self.registry, pipe_srtp)
            self.cascade.emit_local = self.emit_here
            self.cascade.pipes.on_fed = self._piped_away
            manager = RoomEvents(redis_url, cluster)
        self.sio = SocketServer(
            async_mode="aiohttp", client_manager=manager, cors_allowed_origins="*",
            max_http_buffer_size=MAX_MESSAGE_BYTES, logger=False, engineio_logger=False,
        )
        self.store = store
        self.authenticate = authenticate
        self.message_shape = message_shape
        self.connections: dict[str, Connection] = {}
        self.chat_limits = SlidingWindow(CHAT_PER_SECOND, 1.0)
        # TURN servers with credentials minted for a peer (app/turn/), put in createWebRtcTransport's answer
        self.ice_servers: Callable[[Peer], list[dict[str, Any]]] | None = None
        self.handlers = {**room.HANDLERS, **transport.HANDLERS, **media.HANDLERS, **presence.HANDLERS,
                         **data.HANDLERS}
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("*", self._request)

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app, socketio_path="socket.io")
        cluster = self.registry.cluster
        if cluster is not None:
            app.on_startup.append(lambda _: cluster.start())
            app.on_cleanup.append(lambda _: cluster.stop())
        # before aiohttp waits for open connections: end every socket, or it waits for them
        app.on_shutdown.append(lambda _: self.close())

    async def close(self) -> None:
        """Disconnect every client (their rooms are cleaned up as on any disconnect)."""
        for sid in list(self.connections):
            try:
                await self.sio.disconnect(sid)
            except Exception:
                log.exception("disconnecting %s at shutdown failed", sid)
        log.debug("signaling clients disconnected")
        await self.sio.shutdown()
        log.debug("signaling shut down")

    # ---- connection lifecycle ---------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectionRefusedError("unauthorized")
        user = await self.authenticate(token)
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        self.connections[sid] = Connection(sid, user)

    async def _disconnect(self, sid: str, *args: Any) -> None:
        connection = self.connections.get(sid)
        if connection is None:
            return
        async with connection.lock:
            try:
                await room.leave_room(self, connection)
            except Exception:
                log.exception("cleanup after %s disconnected failed", sid)
        self.connections.pop(sid, None)

    # ---- requests ------------------------------------------------------------------------------

    async def _request(self, event: str, sid: str, *args: Any) -> dict:
        started = time.perf_counter()
        connection = self.connections.get(sid)
        payload = args[0] if args else None
        handler = self.handlers.get(event)
        if connection is None:
            reply = RequestError("unauthorized", "not connected").ack()
        elif handler is None:
            reply = RequestError("not_found", f"unknown request {event[:64]!r}").ack()
        elif connection.pending >= MAX_PENDING_REQUESTS:
            # a client that does not wait for its acks cannot queue unbounded work here
            reply = RequestError("limit_exceeded", f"more than {MAX_PENDING_REQUESTS} requests waiting").ack()
        else:
            # one request of a socket at a time: the contract promises arrival order
            connection.pending += 1
            try:
                async with connection.lock:
                    reply = await self._run(handler, connection, payload, event)
            finally:
                connection.pending -= 1
        outcome = "ok" if reply["ok"] else reply["error"]["code"]
        label = event if handler is not None else "unknown"
        SIGNALING_REQUESTS.labels(event=label, outcome=outcome).inc()
        SIGNALING_SECONDS.labels(event=label).observe(time.perf_counter() - started)
        return reply

    async def _run(self, handler, connection: Connection, payload: Any, event: str) -> dict:
        try:
            data = await handler(self, connection, payload)
            return {"ok": True, "data": data if data is not None else {}}
        except RequestError as exc:
            return exc.ack()
        except SwitchyardError as exc:
            return from_engine(exc).ack()
        except Exception:
            log.exception("request %s failed", event)
            return RequestError("internal_error", "the server failed to handle this request").ack()

    # ---- sending -------------------------------------------------------------------------------

    def emit_later(self, event: str, data: dict, **where: Any) -> None:
        """Emit from a synchronous engine callback; tasks keep the order they were made in."""
        asyncio.ensure_future(self.sio.emit(event, data, **where))

    async def to_others(self, peer: Peer, event: str, data: dict) -> None:
        if self.cascade is not None:  # the other nodes of the room learn it before their peers hear it
            await self.cascade.share(peer, event, data)
        await self.sio.emit(event, data, room=peer.room.id, skip_sid=peer.sid)

    async def emit_here(self, event: str, data: dict, room_id: str) -> None:
        """To this node's sockets of a room only (what happened to this node's part of the room)."""
        await self.sio.emit(event, data, room=room_id, ignore_queue=True)

    async def _piped_away(self, live_room: Room, producer_id: str) -> None:
        """A producer here is now piped to another node: its simulcast layers all stay on."""
        owner = live_room.producer_owner(producer_id)
        if owner is not None:
            await media.announce_layers_needed(self, owner, producer_id)

    async def _room_closed(self, live_room: Room, reason: str) -> None:
        """Deleted (REST) or lost its worker: tell its peers on this node (each node of a deleted room
        tells its own), drop them; deleted rooms disconnect."""
        data = {"roomId": live_room.id} if reason == "deleted" else {"roomId": live_room.id, "reason": reason}
        await self.emit_here("room-closed", data, live_room.id)
        for peer in list(live_room.peers.values()):
            connection = self.connections.get(peer.sid)
            if connection is not None and connection.peer is peer:
                await room.drop_peer(self, connection, notify=False)
            if reason == "deleted":
                await self.sio.disconnect(peer.sid)

    async def _peers_lost(self, live_room: Room, peers: list[Peer], reason: str) -> None:
        """Some peers of a room that goes on lost it (their worker died, signaling.placement): they get
        `room-closed`; the others hear `producer-closed` and `user-left` for each, as when a peer leaves."""
        for peer in peers:  # out of the room's broadcasts first: the lost do not hear of each other
            await self.sio.leave_room(peer.sid, live_room.id)
        for peer in peers:
            await self.sio.emit("room-closed", {"roomId": live_room.id, "reason": reason}, to=peer.sid)
            connection = self.connections.get(peer.sid)
            if connection is not None and connection.peer is peer:
                await room.drop_peer(self, connection, notify=True)
            else:
                live_room.peers.pop(peer.peer_id, None)
