"""The node-to-node control path over Redis pub/sub: requests with replies, and room broadcasts.

Each node listens on its own channel `switchyard:cascade:node:<nodeId>` (requests to it and replies
to its requests) and on `switchyard:cascade:rooms` (what changed in a room on some node: a peer
joined, a producer was added, a node left the room...). A request names a method and carries JSON
params; the reply comes back on the asker's channel with the request's id, in the contract's
`{ok, data}` / `{ok:false, error:{code, message}}` shape. One subscriber connection receives both
channels in the order Redis delivered them, so a node sees a room's broadcasts in the order
another node published them. Media never takes this path: it flows over pipe transports.
DataChannel messages relayed between nodes (signaling/cascade_data.py) come on a third channel,
`switchyard:cascade:data:<nodeId>`, with a subscriber connection of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from common.log import get_logger
from media.api.errors import SwitchyardError
from signaling.errors import RequestError, from_engine

if TYPE_CHECKING:
    from signaling.cluster import Cluster

log = get_logger("signaling.cascade")

ROOMS_CHANNEL = "switchyard:cascade:rooms"
NODE_CHANNEL_PREFIX = "switchyard:cascade:node:"
# DataChannel messages relayed to a node (signaling/cascade_data.py): msgpack, as bytes stay bytes
DATA_CHANNEL_PREFIX = "switchyard:cascade:data:"
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_MESSAGE_BYTES = 256 * 1024
# a batch of relayed DataChannel messages (one of them may be as large as SCTP's max message size)
MAX_DATA_FRAME_BYTES = 4 * 1024 * 1024

Handler = Callable[[str, dict], Awaitable[dict]]
EventHandler = Callable[[str, str, str, dict], Awaitable[None]]


def node_channel(node_id: str) -> str:
    return NODE_CHANNEL_PREFIX + node_id


def data_channel(node_id: str) -> str:
    return DATA_CHANNEL_PREFIX + node_id


class Bus:
    """Requests to one node and broadcasts to all, through the cluster's Redis connection."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.node_id = cluster.node_id
        self.handlers: dict[str, Handler] = {}
        self.on_event: EventHandler | None = None
        # a frame of relayed DataChannel messages from another node (its raw bytes)
        self.on_data: Callable[[bytes], None] | None = None
        self._waiting: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self.listening = asyncio.Event()
        self.data_listening = asyncio.Event()

    async def request(self, node_id: str, method: str, params: dict[str, Any],
                      timeout: float = REQUEST_TIMEOUT_SECONDS) -> dict:
        """Ask another node; its reply's data, or the RequestError it answered (`unavailable` when no
        answer comes: the node is gone or Redis is down)."""
        request_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {"type": "request", "id": request_id, "from": self.node_id, "method": method, "params": params}
        try:
            async with asyncio.timeout(timeout):
                receivers = await self.cluster.redis.publish(node_channel(node_id), json.dumps(message))
                if receivers == 0:
                    raise RequestError("unavailable", f"node {node_id} is not listening")
                reply = await future
        except TimeoutError:
            raise RequestError("unavailable", f"node {node_id} did not answer {method} in {timeout:.0f}s") from None
        except (RedisError, OSError) as exc:
            self.cluster._lost(exc)
            raise RequestError("unavailable", f"the other node could not be reached: {exc}") from None
        finally:
            self._waiting.pop(request_id, None)
        if reply.get("ok"):
            return reply.get("data") or {}
        error = reply.get("error") or {}
        raise RequestError(str(error.get("code", "internal_error")), str(error.get("message", "")))

    async def broadcast(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        """Tell every node what changed in a room here (they keep their view of it)."""
        if not self.cluster.reachable:
            return
        message = {"type": "event", "from": self.node_id, "roomId": room_id, "event": event, "data": data}
        try:
            await self.cluster.redis.publish(ROOMS_CHANNEL, json.dumps(message))
        except Exception as exc:  # the outage is the cluster's to report
            self.cluster._lost(exc)

    async def publish_data(self, node_id: str, frame: bytes) -> bool:
        """Relayed DataChannel messages to a node; False when no node listens (gone) or Redis failed."""
        try:
            return await self.cluster.redis.publish(data_channel(node_id), frame) > 0
        except (RedisError, OSError) as exc:
            self.cluster._lost(exc)
            return False

    async def run(self) -> None:
        """Receive requests, replies and broadcasts, and relayed DataChannel messages, until cancelled.

        The data has a subscriber connection of its own: Redis disconnects a subscriber whose
        output buffer overflows, and a flood of messages must cost data, not the control path.
        """
        control = (ROOMS_CHANNEL, node_channel(self.node_id))
        await asyncio.gather(self._listen(control, self._dispatch, self.listening),
                             self._listen((data_channel(self.node_id),), self._dispatch_data, self.data_listening))

    async def _listen(self, channels: tuple[str, ...], dispatch: Callable[[bytes], Any],
                      listening: asyncio.Event) -> None:
        """One subscription, resubscribing after an outage."""
        while True:
            pubsub = self.cluster.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                listening.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        handled = dispatch(message["data"])
                        if handled is not None:
                            await handled
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                listening.clear()
                self.cluster._lost(exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch_data(self, raw: bytes) -> None:
        if len(raw) > MAX_DATA_FRAME_BYTES or self.on_data is None:
            return
        try:
            self.on_data(raw)
        except Exception:  # one bad frame must not stop the node's control path
            log.exception("a relayed data frame failed")

    async def _dispatch(self, raw: bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            log.warning("a cascade message of %d bytes was dropped", len(raw))
            return
        try:
            message = json.loads(raw)
            kind, sender = message["type"], str(message["from"])
        except (ValueError, KeyError, TypeError):
            log.warning("a malformed cascade message was dropped")
            return
        if sender == self.node_id and kind != "response":
            return
        if kind == "response":
            future = self._waiting.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "request":
            task = asyncio.ensure_future(self._answer(sender, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "event" and self.on_event is not None:
            room_id, event, data = message.get("roomId"), message.get("event"), message.get("data") or {}
            if not (isinstance(room_id, str) and isinstance(event, str) and isinstance(data, dict)):
                log.warning("a cascade event without roomId, event or data from %s was dropped", sender[:64])
                return
            try:
                await self.on_event(sender, room_id, event, data)
            except Exception:
                log.exception("cascade event %s from %s failed", message.get("event"), sender)

    async def _answer(self, sender: str, message: dict) -> None:
        handler = self.handlers.get(str(message.get("method")))
        params = message.get("params")
        try:
            if handler is None:
                raise RequestError("not_found", f"unknown cascade method {str(message.get('method'))[:64]!r}")
            if not isinstance(params, dict):
                raise RequestError("invalid_input", "params must be an object")
            reply: dict[str, Any] = {"ok": True, "data": await handler(sender, params)}
        except RequestError as exc:
            reply = exc.ack()
        except SwitchyardError as exc:
            reply = from_engine(exc).ack()
        except Exception:
            log.exception("cascade request %s from %s failed", message.get("method"), sender)
            reply = RequestError("internal_error", "the node failed to handle this request").ack()
        reply.update(type="response", id=message.get("id"), **{"from": self.node_id})
        with contextlib.suppress(Exception):
            await self.cluster.redis.publish(node_channel(sender), json.dumps(reply))
