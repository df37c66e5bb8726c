"""Entry point of a media worker process: `python -m media.engine.main` (started by media.api.worker).

With `--standby` the process is a warm spare of its slot (app/worker_pool.py): the interpreter is
up, the engine's modules are imported (at the top of this module), the slot's sockets are
inherited and the channel answers, but no Engine exists yet, so the process neither reads its UDP
socket nor accepts on its TCP listener. `worker.activate` makes the Engine exactly as a worker
started without `--standby` makes it before its first answer; from then on the two are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import resource
import signal
import socket

from common.log import get_logger, setup_logging
from media.channel import Channel, ChannelRequestError, open_pipe_streams
from media.engine.core import Engine
from media.engine.ice import CONSENT_TIMEOUT
from media.limits import DEFAULT_MAX_INCOMING_BITRATE

PR_SET_PDEATHSIG = 1

log = get_logger("worker")


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM if the main process dies, so no worker is ever orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class WorkerProcess:
    """The worker side of the channel: owns the RTC sockets and the engine that answers requests."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.udp = socket.socket(fileno=args.udp_fd)
        self.tcp = socket.socket(fileno=args.tcp_fd)
        self.udp.setblocking(False)
        self.channel: Channel | None = None
        self.engine: Engine | None = None
        self.stopping = asyncio.Event()

    async def activate(self) -> None:
        """Make the engine: from now on the worker reads its UDP socket and accepts ICE-TCP."""
        if self.engine is not None:
            return
        self.engine = Engine(self.udp, self.args.announced_ip, self.args.rtc_port, self.notify,
                             consent_timeout=self.args.consent_timeout,
                             max_incoming_bitrate=self.args.max_incoming_bitrate)
        await self.engine.serve_tcp(self.tcp)

    async def handle_request(self, method: str, target: str | None, data: dict) -> dict | None:
        if method == "worker.getResourceUsage":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return {"ru_utime": usage.ru_utime, "ru_stime": usage.ru_stime, "ru_maxrss": usage.ru_maxrss}
        if method == "worker.activate":  # a standby becomes its slot's worker; answered like worker.dump
            await self.activate()
            method = "worker.dump"
        if self.engine is None:
            if method == "worker.dump":
                return {"pid": os.getpid(), "index": self.args.index, "rtcPort": self.args.rtc_port,
                        "standby": True}
            raise ChannelRequestError("invalid_state", f"{method}: this worker is a standby (worker.activate first)")
        result = await self.engine.handle(method, data)
        if method == "worker.dump":
            result = {**result, "index": self.args.index, "rtcPort": self.args.rtc_port}
        return result

    def handle_notification(self, event: str, target: str | None, data: dict) -> None:
        if event == "worker.close":
            self.stopping.set()
        elif self.engine is not None:
            self.engine.handle_notification(event, target, data)

    def notify(self, event: str, target: str | None, data: dict) -> None:
        if self.channel is not None:
            self.channel.notify(event, data, target)

    async def run(self) -> None:
        reader, writer = await open_pipe_streams(self.args.channel_in, self.args.channel_out)
        if not self.args.standby:
            await self.activate()
        self.channel = Channel(reader, writer, self.handle_request, self.handle_notification)
        self.channel.start()
        closed = asyncio.ensure_future(self.channel.closed_event.wait())
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (closed, stopping):
            task.cancel()
        if self.engine is not None:
            self.engine.close()
        self.channel.close()
        self.udp.close()
        self.tcp.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard-worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--channel-in", type=int, required=True)
    parser.add_argument("--channel-out", type=int, required=True)
    parser.add_argument("--udp-fd", type=int, required=True)
    parser.add_argument("--tcp-fd", type=int, required=True)
    parser.add_argument("--rtc-ip", required=True)
    parser.add_argument("--rtc-port", type=int, required=True)
    parser.add_argument("--announced-ip", required=True)
    parser.add_argument("--consent-timeout", type=float, default=CONSENT_TIMEOUT)
    parser.add_argument("--max-incoming-bitrate", type=int, default=DEFAULT_MAX_INCOMING_BITRATE)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="text")
    parser.add_argument("--standby", action="store_true", help="wait for worker.activate before serving")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    die_with_parent()
    # Ctrl-C reaches the whole process group; the main process decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(args.log_level, args.log_format)
    try:
        import uvloop
    except ImportError:
        asyncio.run(WorkerProcess(args).run())
    else:
        uvloop.run(WorkerProcess(args).run())


if __name__ == "__main__":
    main()
