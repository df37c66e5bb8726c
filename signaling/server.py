"""The Socket.IO server: authenticates at connect, runs each socket's requests in order, shapes acks."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import engineio.json
import socketio
from socketio import packet as sio_packet
from socketio.exceptions import ConnectionRefusedError

from common.log import get_logger
from common.ratelimit import SlidingWindow
from media.api.errors import SwitchyardError
from signaling.cluster import Cluster, RoomEvents
from signaling.errors import RequestError, from_engine
from signaling.handlers import media, presence, room, transport
from signaling.metrics import SIGNALING_MALFORMED, SIGNALING_REQUESTS, SIGNALING_SECONDS
from signaling.registry import RoomRegistry

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
# Socket.IO's own event names (socket.io-parser's RESERVED_EVENTS): never a request.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting", "newListener",
                             "removeListener"})
# A request nests a few levels (an rtpCapabilities codec's rtcpFeedback entry is 7 deep, counting the
# packet's array); deeper is refused before anything walks it recursively.
MAX_NESTING = 32
# Binary attachments one packet may announce (python-socketio would buffer up to 9,999,999,999).
MAX_ATTACHMENTS = 16


class _Packet(sio_packet.Packet):
    """python-socketio's packet, stricter when it decodes what a client sent."""

    # NaN, Infinity or a number beyond a double in the data (decoded as null): no JSON.parse reads it,
    # so it must not reach other peers
    not_json: str | None = None

    def decode(self, encoded_packet):
        # on the instance only: the client manager (Redis) reads the class's `json` for its own messages
        self.json = SimpleNamespace(loads=functools.partial(
            engineio.json.loads, parse_constant=self._not_json, parse_float=self._float))
        try:
            return super().decode(encoded_packet)
        finally:
            del self.json

    def _not_json(self, text: str) -> None:
        self.not_json = self.not_json or text[:32]

    def _float(self, text: str) -> float | None:
        value = float(text)
        return value if math.isfinite(value) else self._not_json(text)

    @classmethod
    def _reconstruct_binary_internal(cls, data, attachments):
        # a placeholder's `num` must be an index of an attachment (python-socketio takes any key)
        if isinstance(data, dict) and data.get("_placeholder") and "num" in data:
            num = data["num"]
            if type(num) is not int or not 0 <= num < len(attachments):
                raise ValueError("a binary placeholder names no attachment")
            return attachments[num]
        if isinstance(data, list):
            return [cls._reconstruct_binary_internal(item, attachments) for item in data]
        if isinstance(data, dict):
            return {key: cls._reconstruct_binary_internal(value, attachments) for key, value in data.items()}
        return data


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` holds lists or objects more than `limit` levels deep (without recursing)."""
    level = [value]
    for _ in range(limit):
        below = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            below.extend(child for child in children if isinstance(child, (dict, list)))
        if not below:
            return False
        level = below
    return True


def _event_problem(pkt: _Packet) -> str | None:
    """Why an EVENT packet is not `[name, ...arguments]` in JSON, or None."""
    data = pkt.data
    if not isinstance(data, list):
        return "an event is a JSON array"
    if not data:
        return "an event needs a name"
    if not isinstance(data[0], str):
        return "an event's name is a string"
    return _data_problem(pkt)


def _data_problem(pkt: _Packet) -> str | None:
    if pkt.not_json is not None:
        return f"{pkt.not_json} is not a JSON number"
    if _nested_deeper_than(pkt.data, MAX_NESTING):
        return f"nested more than {MAX_NESTING} levels deep"
    return None


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


class _SocketServer(socketio.AsyncServer):
    """python-socketio's server, where only the real connection packets run `connect` and `disconnect`.

    python-socketio (checked on 5.18) hands a client's EVENT packet named "connect" or "disconnect" to
    the handlers registered for those names: a peer could drop its own state while its socket stays
    open, or raise from the connect handler in a task nobody awaits. Here an event with a reserved
    name goes to the catch-all ("*") handler like any other name, so it is answered as an unknown
    request.

    It also decodes every packet itself (python-socketio 5.x's `_handle_eio_message`, same dispatch): a
    packet python-socketio would raise on, in its decoder or in its event dispatch, is refused here
    instead. An EVENT that was decoded but is no `[name: str, ...]` in JSON (NaN, Infinity) or nests more
    than MAX_NESTING deep is answered `invalid_input` when it has an ack id; anything else malformed is
    dropped. Either way it is counted (`switchyard_signaling_malformed_total`), logged at debug only (a
    client cannot fill the log), and changes nothing; the socket stays open.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, serializer=_Packet, **kwargs)

    async def _handle_eio_message(self, eio_sid, data):
        pending = self._binary_packet.get(eio_sid)
        if pending is not None:
            if isinstance(data, str):
                # text where an attachment was due: that binary packet is incomplete; the text is a packet
                del self._binary_packet[eio_sid]
                await self._malformed(eio_sid, pending, "the binary attachments are missing")
            else:
                try:
                    complete = pending.add_attachment(data)
                except ValueError as exc:
                    del self._binary_packet[eio_sid]
                    return await self._malformed(eio_sid, pending, str(exc))
                if complete:
                    del self._binary_packet[eio_sid]
                    await self._dispatch(eio_sid, pending)
                return
        if not isinstance(data, str):
            return await self._malformed(eio_sid, None, "a binary message no packet announced")
        try:
            pkt = self.packet_class(encoded_packet=data)
        except (ValueError, RecursionError):  # not JSON (a JSONDecodeError is a ValueError), or ~1000 deep
            return await self._malformed(eio_sid, None, "not a Socket.IO packet")
        if pkt.packet_type in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK) and pkt.attachment_count:
            # checked before the attachments come: putting them in walks the data recursively
            binary_event = pkt.packet_type == sio_packet.BINARY_EVENT
            problem = _event_problem(pkt) if binary_event else _data_problem(pkt)
            if problem is None and pkt.attachment_count > MAX_ATTACHMENTS:
                problem = f"more than {MAX_ATTACHMENTS} binary attachments"
            if problem is not None:
                return await self._malformed(eio_sid, pkt, problem)
            if not self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
                return await self._malformed(eio_sid, None, "a binary packet outside a connected namespace")
            self._binary_packet[eio_sid] = pkt
            return
        await self._dispatch(eio_sid, pkt)

    async def _dispatch(self, eio_sid, pkt) -> None:
        """A decoded packet, with all its attachments, to python-socketio's handlers."""
        kind = pkt.packet_type
        if kind == sio_packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == sio_packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif kind in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            problem = _event_problem(pkt)
            if problem is not None:
                return await self._malformed(eio_sid, pkt, problem)
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind in (sio_packet.ACK, sio_packet.BINARY_ACK):
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        else:  # CONNECT_ERROR, or a digit past BINARY_ACK: only servers send the former
            await self._malformed(eio_sid, None, f"packet type {kind!r} from a client")

    async def _malformed(self, eio_sid, pkt, problem: str) -> None:
        """Answer an EVENT with an ack id `invalid_input`; drop anything else. Count and log it either way."""
        namespace = (pkt.namespace if pkt is not None else None) or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        answer = (pkt is not None and pkt.id is not None and sid is not None
                  and pkt.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT)
                  and self.manager.is_connected(sid, namespace))
        if answer:
            reply = RequestError("invalid_input", f"malformed request: {problem}").ack()
            await self._send_packet(eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=pkt.id,
                                                               data=[reply]))
        outcome = "invalid_input" if answer else "dropped"
        SIGNALING_MALFORMED.labels(outcome=outcome).inc()
        log.debug("malformed Socket.IO packet from %s (%s): %s", sid or eio_sid, outcome, problem)

    async def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        event = data[0] if data else None
        if not (isinstance(event, str) and event in RESERVED_EVENTS):
            return await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
        catch_all = self.handlers.get(namespace, {}).get("*")
        if catch_all is None:
            return  # as python-socketio does with an event nobody handles
        reply = await catch_all(event, sid, *data[1:])
        if id is not None:
            ack = self.packet_class(socketio.packet.ACK, namespace=namespace, id=id, data=[reply])
            await server._send_packet(eio_sid, ack)


class SignalingServer:
    """PROTOCOL.md §3 over python-socketio; one per node, on every HTTP port the app serves."""

    def __init__(self, workers: list, store: Store, authenticate: Authenticate, message_shape: MessageShape,
                 redis_url: str | None = None, public_url: str | None = None):
        self.registry = RoomRegistry(workers)
        self.registry.on_room_closed = self._room_closed
        manager = None
        if redis_url:
            if not public_url:
                raise ValueError("many nodes (Redis) need this node's public URL")
            self.registry.cluster = Cluster(redis_url, public_url, self.registry)
            manager = RoomEvents(redis_url, self.registry.cluster)
        self.sio = _SocketServer(
            async_mode="aiohttp", client_manager=manager, cors_allowed_origins="*",
            max_http_buffer_size=MAX_MESSAGE_BYTES, logger=False, engineio_logger=False,
        )
        self.store = store
        self.authenticate = authenticate
        self.message_shape = message_shape
        self.connections: dict[str, Connection] = {}
        self.chat_limits = SlidingWindow(CHAT_PER_SECOND, 1.0)
        self.handlers = {**room.HANDLERS, **transport.HANDLERS, **media.HANDLERS, **presence.HANDLERS}
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
        await self.sio.emit(event, data, room=peer.room.id, skip_sid=peer.sid)

    async def _room_closed(self, live_room: Room, reason: str) -> None:
        """Deleted (REST) or lost its worker: tell everyone, drop their peers; deleted rooms disconnect."""
        data = {"roomId": live_room.id} if reason == "deleted" else {"roomId": live_room.id, "reason": reason}
        await self.sio.emit("room-closed", data, room=live_room.id)
        for peer in list(live_room.peers.values()):
            connection = self.connections.get(peer.sid)
            if connection is not None and connection.peer is peer:
                await room.drop_peer(self, connection, notify=False)
            if reason == "deleted":
                await self.sio.disconnect(peer.sid)
