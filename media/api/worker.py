"""The main process's handle on a media worker process (mediasoup's Worker, seen from Node).

A worker is a process of its own (the GIL rules out threads for the hot path)
that owns one UDP socket and one TCP listener, both bound here first so that a
taken port is reported before anything starts. The handle talks to it only
through the control channel and notices its death at once: the channel hits
end-of-file when the process goes, whatever killed it.

A worker started as a standby (app/worker_pool.py) is the same process with the
engine not yet made: it answers its channel but touches neither socket until
`activate()`, one request, after which the handle is an ordinary worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass

from pyee.asyncio import AsyncIOEventEmitter

from common.log import get_logger
from media.api.data_pipe import PipeDataConsumer
from media.api.errors import InvalidStateError
from media.api.router import Router
from media.channel import Channel, ChannelClosed, open_pipe_streams
from media.limits import DEFAULT_MAX_INCOMING_BITRATE

log = get_logger("worker")

CLOSE_GRACE_SECONDS = 3.0
RTC_SOCKET_BUFFER = 4 * 1024 * 1024


@dataclass
class WorkerSettings:
    """What a worker process needs to start."""

    index: int
    rtc_ip: str
    rtc_port: int
    announced_ip: str
    log_level: str = "info"
    log_format: str = "text"
    consent_timeout: float = 30.0
    # the ceiling every new transport starts with (bits/s; 0: none)
    max_incoming_bitrate: int = DEFAULT_MAX_INCOMING_BITRATE


def bind_rtc_sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind the worker's shared UDP socket and TCP listener on one port (raises OSError when taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        # room for bursts (a key frame to many consumers); the kernel caps it at rmem_max
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RTC_SOCKET_BUFFER)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RTC_SOCKET_BUFFER)
        udp.bind((host, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, port))
        tcp.listen(512)
    except OSError:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


class Worker(AsyncIOEventEmitter):
    """A running worker process. Events: `died` (exit code) when it goes without being closed."""

    def __init__(self, settings: WorkerSettings, udp: socket.socket, tcp: socket.socket, standby: bool = False):
        super().__init__()
        self.settings = settings
        # started with --standby and not activated yet: it serves nothing
        self.standby = standby
        self._udp = udp
        self._tcp = tcp
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.closed = False
        self._watch: asyncio.Task | None = None
        self.routers: dict[str, Router] = {}
        # the source ends of data pipes on this worker, by id: each relayed message goes straight to
        # its relay rather than past every router's notification listener (media/api/data_pipe.py)
        self.pipe_data_consumers: dict[str, PipeDataConsumer] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def index(self) -> int:
        return self.settings.index

    async def start(self) -> None:
        """Spawn the process and wait until it answers (a standby answers too, serving nothing)."""
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        child_fds = (to_worker_r, from_worker_w, self._udp.fileno(), self._tcp.fileno())
        s = self.settings
        args = [
            sys.executable, "-m", "media.engine.main",
            "--index", str(s.index),
            "--channel-in", str(to_worker_r), "--channel-out", str(from_worker_w),
            "--udp-fd", str(self._udp.fileno()), "--tcp-fd", str(self._tcp.fileno()),
            "--rtc-ip", s.rtc_ip, "--rtc-port", str(s.rtc_port),
            "--announced-ip", s.announced_ip,
            "--log-level", s.log_level, "--log-format", s.log_format,
            "--consent-timeout", str(s.consent_timeout),
            "--max-incoming-bitrate", str(s.max_incoming_bitrate),
        ]
        if self.standby:
            args.append("--standby")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *args, pass_fds=child_fds, stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        reader, writer = await open_pipe_streams(from_worker_r, to_worker_w)
        self.channel = Channel(reader, writer, on_notification=self._on_notification)
        self.channel.start()
        self._watch = asyncio.get_running_loop().create_task(self._watch_exit())
        await self.request("worker.dump")
        log.info("worker %d %s (pid %d, rtc port %d)", s.index, "standby started" if self.standby else "started",
                 self.pid, s.rtc_port)

    async def activate(self) -> None:
        """Make a standby serve its sockets: the engine is made and the worker answers as a fresh one."""
        await self.request("worker.activate")
        self.standby = False

    async def request(self, method: str, data: dict | None = None, target: str | None = None) -> dict:
        """Send a control request to the worker."""
        if self.channel is None or self.channel.closed:
            raise ChannelClosed(f"worker {self.index} is not running")
        return await self.channel.request(method, data, target)

    async def create_router(self, media_codecs: list[dict] | None = None, app_data: dict | None = None) -> Router:
        """Create a router (one room's media) on this worker, as mediasoup's worker.createRouter()."""
        if self.closed:
            raise InvalidStateError(f"worker {self.index} is closed")
        router = await Router.create(self, media_codecs, app_data)
        self.routers[router.id] = router
        return router

    def _on_notification(self, event: str, target: str | None, data: dict) -> None:
        if event == "dataConsumer.message":
            consumer = self.pipe_data_consumers.get(target) if target is not None else None
            if consumer is not None:
                consumer.relay.push(data.get("message"))
            return
        self.emit("notification", event, target, data)

    async def _watch_exit(self) -> None:
        assert self.process is not None and self.channel is not None
        await self.channel.closed_event.wait()
        if self.closed:
            return
        # End-of-file on the channel is the death itself; reaping only fetches the exit code.
        self.closed = True
        for router in list(self.routers.values()):
            router.worker_closed()
        self.routers.clear()
        code = await self.process.wait()
        log.error("%s %d (pid %d) died with exit code %s", "standby of worker" if self.standby else "worker",
                  self.index, self.pid, code)
        self._udp.close()
        self._tcp.close()
        self.emit("died", code)

    async def close(self) -> None:
        """Ask the worker to stop; kill it if it does not within a grace period."""
        if self.closed:
            return
        self.closed = True
        for router in list(self.routers.values()):
            router.worker_closed()
        self.routers.clear()
        if self.channel is not None and not self.channel.closed:
            try:
                self.channel.notify("worker.close")
            except ChannelClosed:
                pass
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), CLOSE_GRACE_SECONDS)
            except TimeoutError:
                log.warning("worker %d did not stop in %.0fs; killing it", self.index, CLOSE_GRACE_SECONDS)
                self.process.send_signal(signal.SIGKILL)
                await self.process.wait()
        if self.channel is not None:
            self.channel.close()
        self._udp.close()
        self._tcp.close()
