"""coturn as a child of `switchyard serve`: its command line, readiness, restarts, and stop.

coturn relays in C over its own threads; Switchyard only starts it with the shared secret of its
credentials (`use-auth-secret`), checks every transport answers a STUN Binding, restarts it (with
a growing pause) when it dies, and stops it with the server. Its peers are limited to the media
workers' announced IP: a TURN relay open to any address would let any signed-in guest reach the
server's internal network through it (RFC 8656 section 21.3).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ipaddress
import shutil
import signal
import sys
import tempfile
import time

from app.config import ConfigError
from app.turn.probe import BindingError, binding
from app.turn.settings import TurnSettings
from common.log import get_logger

log = get_logger("turn")

READY_SECONDS = 15.0
STOP_SECONDS = 5.0
RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
# a run this long resets the pause between restarts to the first one
STABLE_SECONDS = 60.0
PR_SET_PDEATHSIG = 1

DENY_ALL_PEERS = ("0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")


def is_wildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


def probe_host(listen_host: str) -> str:
    """Where to send readiness probes: the listening address, loopback for a wildcard."""
    if not is_wildcard(listen_host):
        return listen_host
    return "::1" if ":" in listen_host else "127.0.0.1"


def command(turn: TurnSettings, listen_host: str, announced_ip: str, workdir: str) -> list[str]:
    """coturn's command line (no configuration file: every setting is here)."""
    args = [
        turn.binary, "-n", "--no-cli", "--log-file=stdout", "--simple-log",
        f"--pidfile={workdir}/turnserver.pid", f"--userdb={workdir}/turndb",
        "--use-auth-secret", f"--static-auth-secret={turn.secret}", f"--realm={turn.realm}",
        "--fingerprint", "--no-multicast-peers", "--no-tcp-relay", "--no-dtls", "--no-rfc5780",
        "--no-software-attribute",
        f"--listening-port={turn.port}", f"--tls-listening-port={turn.tls_port}",
        f"--min-port={turn.relay_ports[0]}", f"--max-port={turn.relay_ports[1]}",
    ]
    if not is_wildcard(listen_host):
        args += [f"--listening-ip={listen_host}", f"--relay-ip={listen_host}"]
    if turn.external_ip:
        args.append(f"--external-ip={turn.external_ip}")
    if "udp" not in turn.transports:
        args.append("--no-udp")
    if "tcp" not in turn.transports:
        args.append("--no-tcp")
    if "tls" in turn.transports:
        args += [f"--cert={turn.cert}", f"--pkey={turn.key}"]
    else:
        args.append("--no-tls")
    # Only the media workers are peers: deny everything, allow the announced IP (allowed wins).
    args += [f"--denied-peer-ip={block}" for block in DENY_ALL_PEERS]
    args.append(f"--allowed-peer-ip={announced_ip}")
    if ipaddress.ip_address(announced_ip).is_loopback:
        # coturn refuses loopback peers whatever the lists say; a loopback SFU (tests, one machine) needs it
        args.append("--allow-loopback-peers")
    return args


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when `switchyard serve` dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Coturn:
    """One supervised coturn process; `close()` stops it and its supervision."""

    def __init__(self, turn: TurnSettings, listen_host: str, announced_ip: str):
        self.turn = turn
        self.listen_host = listen_host
        self.announced_ip = announced_ip
        self.workdir = tempfile.mkdtemp(prefix="switchyard-turn-")
        self.process: asyncio.subprocess.Process | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=40)
        self.restarts = 0
        self._closing = False
        self._supervisor: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def describe(self) -> str:
        return (f"coturn (pid {self.pid}): {', '.join(self.turn.transports)} on {self.listen_host} "
                f"port {self.turn.port}" + (f", TLS port {self.turn.tls_port}" if "tls" in self.turn.transports else "")
                + f"; peers: {self.announced_ip} only")

    async def start(self) -> None:
        """Start coturn and wait until every transport answers; ConfigError (with its log) if not."""
        try:
            await self._spawn()
        except OSError as exc:
            await self.close()
            raise ConfigError(f"cannot start coturn ({self.turn.binary}): {exc}") from None
        try:
            await self._wait_ready()
        except ConfigError:
            await self.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="coturn-supervisor")

    async def _spawn(self) -> None:
        self.output.clear()
        self.process = await asyncio.create_subprocess_exec(
            *command(self.turn, self.listen_host, self.announced_ip, self.workdir),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent,
            # its own session: Ctrl-C in a terminal reaches the whole foreground group, and the
            # server, not the terminal, decides when coturn stops (as for the media workers)
            start_new_session=True)
        self._reader = asyncio.create_task(self._read_output(self.process))

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        """coturn's log lines: kept (the last few explain a failure) and logged at debug level."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if self.turn.secret and len(self.turn.secret) >= 8:  # never echo the shared secret
                text = text.replace(self.turn.secret, "<secret>")
            self.output.append(text)
            log.debug("coturn: %s", text)

    def last_output(self, lines: int = 8) -> str:
        return " | ".join(list(self.output)[-lines:]) or "no output"

    async def _wait_ready(self) -> None:
        """Every transport answers a Binding within READY_SECONDS, or ConfigError."""
        deadline = time.monotonic() + READY_SECONDS
        host = probe_host(self.listen_host)
        for transport in self.turn.transports:
            port = self.turn.tls_port if transport == "tls" else self.turn.port
            while True:
                if self.process is None or self.process.returncode is not None:
                    await self._drain_output()
                    raise ConfigError(f"coturn exited at start (code {self.process.returncode if self.process else '?'}): "
                                      f"{self.last_output()}")
                try:
                    await binding(host, port, transport, timeout=1.0)
                    break
                except BindingError as exc:
                    if time.monotonic() > deadline:
                        raise ConfigError(f"coturn does not answer: {exc}; its log: {self.last_output()}") from None
                    await asyncio.sleep(0.1)

    async def _drain_output(self) -> None:
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
            except TimeoutError:
                pass

    async def _supervise(self) -> None:
        """Restart coturn whenever it exits, pausing longer after each quick death."""
        pause_index = 0
        while not self._closing:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._closing:
                return
            await self._drain_output()
            if time.monotonic() - started > STABLE_SECONDS:
                pause_index = 0
            pause = RESTART_PAUSES[min(pause_index, len(RESTART_PAUSES) - 1)]
            pause_index += 1
            log.error("coturn exited with code %s; restarting in %.0f s; its last log lines: %s",
                      code, pause, self.last_output())
            await asyncio.sleep(pause)
            if self._closing:
                return
            try:
                await self._spawn()
                await self._wait_ready()
            except (OSError, ConfigError) as exc:
                log.error("coturn restart failed: %s", exc)
                if self.process is not None and self.process.returncode is None:
                    self.process.kill()  # running but not answering: the next round starts a new one
                continue
            self.restarts += 1
            log.warning("coturn restarted (pid %s, restart %d)", self.pid, self.restarts)

    async def close(self) -> None:
        """Stop supervising, then SIGTERM coturn (SIGKILL after STOP_SECONDS)."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await self._drain_output()
            self._reader.cancel()
        shutil.rmtree(self.workdir, ignore_errors=True)


async def start_turn(turn: TurnSettings, listen_host: str, announced_ip: str) -> Coturn | None:
    """The supervised coturn when `SWITCHYARD_TURN=coturn`; nothing to run otherwise."""
    if turn.mode != "coturn":
        return None
    server = Coturn(turn, listen_host, announced_ip)
    await server.start()
    log.info("TURN: %s", server.describe())
    return server
