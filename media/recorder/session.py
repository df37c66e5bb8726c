"""A recording as the main process runs it: a plain transport to a loopback socket, one consumer per
recorded producer on it, and the recorder thread behind the socket.

The recorder consumes like any other consumer (mediasoup's pattern for recording: a PlainTransport
to a process that writes files), so to the worker's fast path it is one more consumer: the same
rewrite, protect-free send and sender reports. A simulcast producer is consumed at its top layer
(a plain transport has no bandwidth estimate to hold it lower).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from common.log import get_logger
from media.recorder.depacketize import DEPACKETIZERS
from media.recorder.thread import STOPPED, RecorderThread

if TYPE_CHECKING:
    from media.api.consumer import Consumer
    from media.api.plain_transport import PlainTransport
    from media.api.producer import Producer
    from media.api.router import Router

log = get_logger("media.recorder")

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024  # a few seconds of a room's media if the thread lags
KEY_FRAME_RETRY_SECONDS = 0.5


def recordable_capabilities(router_caps: dict[str, Any]) -> dict[str, Any]:
    """The router's capabilities cut to what the recorder can mux: no RED (the worker then cuts RED to
    plain Opus), no RTX (the recorder sends no NACKs), no header extensions."""
    codecs = [c for c in router_caps["codecs"] if c["mimeType"].lower() in DEPACKETIZERS]
    return {"codecs": codecs, "headerExtensions": []}


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, thread: RecorderThread):
        self.thread = thread

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.thread.feed(data, time.time())


class Recorder:
    """Records producers of one router into `directory`. `on_done(summary)` runs once when it ends,
    for whatever reason: stop(), the size cap, the disk, or the router closing."""

    def __init__(self, router: Router, directory: str, *, max_bytes: int, min_free_bytes: int,
                 on_done: Callable[[dict], Awaitable[None]] | None = None):
        self.router = router
        self.directory = directory
        self.on_done = on_done
        self.transport: PlainTransport | None = None
        self.consumers: dict[str, Consumer] = {}  # by producer id
        self._loop = asyncio.get_running_loop()
        self._thread = RecorderThread(directory, max_bytes, min_free_bytes, self._from_thread)
        self._udp: asyncio.DatagramTransport | None = None
        self._done: asyncio.Future = self._loop.create_future()
        self._closing = False

    async def start(self) -> None:
        """Folder, socket, thread, then the transport; OSError if the folder or socket cannot be made
        (nothing is left running then), the worker's error if the transport cannot."""
        os.makedirs(self.directory, exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind(("127.0.0.1", 0))
            self._udp, _ = await self._loop.create_datagram_endpoint(lambda: _Socket(self._thread), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._thread.start()
        try:
            self.transport = await self.router.create_plain_transport(rtcp_mux=True, comedia=False,
                                                                      app_data={"recorder": True})
            self.transport.on("routerclose", lambda: asyncio.ensure_future(self.stop("room_closed")))
            await self.transport.connect(ip="127.0.0.1", port=sock.getsockname()[1])
        except BaseException:
            await self.stop("error")
            raise

    @property
    def active(self) -> bool:
        return not self._done.done() and not self._closing

    @property
    def stats(self) -> tuple[int, float]:
        return self._thread.stats

    def file_sizes(self) -> list[tuple[str, int]]:
        """(path, bytes on disk) of every segment so far (an open one is short of its last cluster)."""
        return self._thread.writer.sizes()

    async def add(self, producer: Producer, group: str) -> Consumer | None:
        """Record a producer into the file group `group` (a peer's audio and video share one)."""
        if not self.active or self.transport is None or producer.id in self.consumers or producer.closed:
            return None
        consumer = await self.transport.consume(producer.id, recordable_capabilities(self.router.rtp_capabilities),
                                                paused=False)
        codec = next(c for c in consumer.rtp_parameters["codecs"] if c["mimeType"].lower() in DEPACKETIZERS)
        encoding = consumer.rtp_parameters["encodings"][0]
        self._thread.add_track(consumer.id, group, consumer.kind, codec["mimeType"].lower(), encoding["ssrc"],
                               codec["payloadType"], codec["clockRate"], codec.get("channels") or 1)
        self.consumers[producer.id] = consumer
        consumer.on("producerclose", lambda: self._ended(producer.id, consumer))
        if consumer.kind == "video":
            # the consumer asks for one when it starts; a second one covers a lost first answer
            self._loop.call_later(KEY_FRAME_RETRY_SECONDS, self._key_frame, consumer.id)
        return consumer

    def _ended(self, producer_id: str, consumer: Consumer) -> None:
        self.consumers.pop(producer_id, None)
        self._thread.end_track(consumer.id)

    def _key_frame(self, consumer_id: str) -> None:
        consumer = next((c for c in self.consumers.values() if c.id == consumer_id), None)
        if consumer is not None and not consumer.closed and self.active:
            asyncio.ensure_future(self._ask_key_frame(consumer))

    @staticmethod
    async def _ask_key_frame(consumer: Consumer) -> None:
        with contextlib.suppress(Exception):  # closed meanwhile
            await consumer.request_key_frame()

    def _from_thread(self, event: str, data: object) -> None:
        """Called in the recorder thread."""
        try:
            if event == "keyframe":
                self._loop.call_soon_threadsafe(self._key_frame, data)
            elif event == "done":
                self._loop.call_soon_threadsafe(self._thread_done, data)
        except RuntimeError:  # the event loop is closed (the process is exiting): nobody to tell
            pass

    def _thread_done(self, summary: dict) -> None:
        if not self._done.done():
            self._done.set_result(summary)
        if not self._closing:  # the thread stopped by itself (size cap, disk): release the media too
            asyncio.ensure_future(self.stop(summary["reason"]))

    async def stop(self, reason: str = STOPPED) -> dict:
        """Stop recording (the files are closed and playable); returns the summary. Safe to call twice."""
        if self._closing:
            return await asyncio.shield(self._done)
        self._closing = True
        self._thread.stop(reason)
        if self.transport is not None and not self.transport.closed:
            with contextlib.suppress(Exception):
                await self.transport.close()
        summary = await asyncio.shield(self._done)  # the thread always reports, whatever ended it
        if self._udp is not None:
            self._udp.close()
        if self.on_done is not None:
            on_done, self.on_done = self.on_done, None
            try:
                await on_done(summary)
            except Exception:
                log.exception("after a recording in %s ended", self.directory)
        return summary
