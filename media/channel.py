"""The control channel between the main process and a worker: requests with ids, responses, notifications.

Frames are a 4-byte big-endian length and a msgpack map, over a pair of pipes,
as mediasoup's Node side talks to its C++ worker. Shapes:
  request       {"id": int, "method": str, "target": str|None, "data": map}
  response      {"id": int, "ok": true, "data": map} or {"id": int, "ok": false, "error": {"code", "message"}}
  notification  {"event": str, "target": str|None, "data": map}
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

MAX_FRAME = 4 * 1024 * 1024
HEADER = struct.Struct("!I")

RequestHandler = Callable[[str, str | None, dict], Awaitable[dict | None]]
NotificationHandler = Callable[[str, str | None, dict], None]


class ChannelClosed(Exception):
    """The other side went away (a worker that exited or was killed)."""


class ChannelRequestError(Exception):
    """The other side answered a request with an error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


async def open_pipe_streams(read_fd: int, write_fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap two pipe file descriptors in asyncio streams."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME + HEADER.size)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


class Channel:
    """One end of the control channel; both processes use the same class."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_request: RequestHandler | None = None,
        on_notification: NotificationHandler | None = None,
    ):
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._closed = False
        self._read_task: asyncio.Task | None = None
        self.closed_event = asyncio.Event()

    def start(self) -> None:
        """Begin reading frames."""
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def closed(self) -> bool:
        return self._closed

    def _send(self, message: dict) -> None:
        if self._closed:
            raise ChannelClosed("channel is closed")
        payload = msgpack.packb(message, use_bin_type=True)
        if len(payload) > MAX_FRAME:
            raise ValueError(f"control message of {len(payload)} bytes exceeds {MAX_FRAME}")
        self._writer.write(HEADER.pack(len(payload)) + payload)

    async def request(self, method: str, data: dict | None = None, target: str | None = None,
                      timeout: float = 15.0) -> dict:
        """Send a request and wait for its response's data."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._send({"id": request_id, "method": method, "target": target, "data": data or {}})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    def notify(self, event: str, data: dict | None = None, target: str | None = None) -> None:
        """Send a notification (no answer expected); dropped when the channel is closed."""
        if not self._closed:
            self._send({"event": event, "target": target, "data": data or {}})

    def write_backlog(self) -> int:
        """Bytes written but not yet taken by the other side (the pipe is full while it is slow)."""
        transport = self._writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Until the backlog is below the writer's low-water mark (at once when it already is)."""
        await self._writer.drain()

    async def _read_loop(self) -> None:
        try:
            while True:
                header = await self._reader.readexactly(HEADER.size)
                (length,) = HEADER.unpack(header)
                if length > MAX_FRAME:
                    raise ChannelClosed(f"frame of {length} bytes exceeds {MAX_FRAME}")
                message = msgpack.unpackb(await self._reader.readexactly(length), raw=False)
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, ChannelClosed, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._mark_closed()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message:
            asyncio.get_running_loop().create_task(self._answer(message))
        elif "event" in message:
            if self._on_notification is not None:
                self._on_notification(message["event"], message.get("target"), message.get("data") or {})
        else:
            future = self._pending.get(message.get("id"))
            if future is None or future.done():
                return
            if message.get("ok"):
                future.set_result(message.get("data") or {})
            else:
                error = message.get("error") or {}
                future.set_exception(
                    ChannelRequestError(error.get("code", "error"), error.get("message", "request failed"))
                )

    async def _answer(self, message: dict) -> None:
        request_id = message.get("id")
        try:
            if self._on_request is None:
                raise ChannelRequestError("not_found", "this side takes no requests")
            data = await self._on_request(message["method"], message.get("target"), message.get("data") or {})
            reply = {"id": request_id, "ok": True, "data": data or {}}
        except ChannelRequestError as exc:
            reply = {"id": request_id, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a bug in one handler must not take the worker down
            reply = {"id": request_id, "ok": False,
                     "error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}}
        try:
            self._send(reply)
        except ChannelClosed:
            pass

    def _mark_closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed("channel closed before the answer"))
        self._pending.clear()
        self.closed_event.set()

    def close(self) -> None:
        """Close our side; pending requests fail with ChannelClosed."""
        self._mark_closed()
        try:
            self._writer.close()
        except Exception:
            pass
        if self._read_task is not None:
            self._read_task.cancel()
