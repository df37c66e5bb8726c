"""python-socketio's and python-engineio's servers, hardened against what clients may send.

- Socket.IO's reserved event names sent as events are ordinary (unknown) requests.
- Every packet is decoded here, strictly: a malformed one is answered `invalid_input` (an EVENT
  with an ack id) or dropped, counted, and never raises.
- An Engine.IO socket's pending ping ends with the socket, so a closed connection is freed at
  once rather than 25 s later.
"""

from __future__ import annotations

import asyncio
import functools
import math
from types import SimpleNamespace
from typing import Any

import engineio
import engineio.json
import socketio
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from common.log import get_logger
from signaling.errors import RequestError
from signaling.metrics import SIGNALING_MALFORMED

log = get_logger("signaling")

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


# the coroutine function an Engine.IO socket schedules its next ping with (see EngineIOServer)
_SEND_PING = getattr(AsyncSocket, "_send_ping", None)


class EngineIOServer(engineio.AsyncServer):
    """python-engineio's server, except that a socket's ping timer ends with the socket.

    Every Engine.IO socket schedules its next ping as a task that sleeps `ping_interval` (25 s) and
    holds the socket (its queue, events and timer) until it wakes, also after the client has gone.
    So each connection outlived its disconnect by up to 25 s, and the main process held as many
    dead sockets as connections had closed in the last 25 s: its memory grew with the connection
    rate, and the allocator kept the peak. Here the pending ping is cancelled when the socket
    disconnects (a socket that closes never pings again anyway). This leans on python-engineio's
    internals (`AsyncSocket._send_ping`, `_trigger_event`); should they change, the pings are
    simply not tracked, and tests/test_soak.py sees the memory grow again.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pings: dict[str, asyncio.Task] = {}

    def start_background_task(self, target, *args: Any, **kwargs: Any) -> asyncio.Task:
        task = super().start_background_task(target, *args, **kwargs)
        if _SEND_PING is not None and getattr(target, "__func__", None) is _SEND_PING:
            sid = target.__self__.sid
            self._pings[sid] = task
            task.add_done_callback(lambda done: self._ping_done(sid, done))
        return task

    def _ping_done(self, sid: str, task: asyncio.Task) -> None:
        if self._pings.get(sid) is task:
            del self._pings[sid]

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "disconnect" and args:
            ping = self._pings.pop(args[0], None)
            # the ping task itself may be closing the socket (the client stopped answering)
            if ping is not None and ping is not asyncio.current_task():
                ping.cancel()
        return await super()._trigger_event(event, *args, **kwargs)


class SocketServer(socketio.AsyncServer):
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

    def _engineio_server_class(self) -> type:
        return EngineIOServer

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
