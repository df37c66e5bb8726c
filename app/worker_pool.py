"""The node's media workers as a pool that heals itself: a worker that dies is replaced on its port.

mediasoup leaves a dead worker to the application (its `died` event); here the main process does
what an operator would. Each slot i keeps its RTC port (`rtc_port_base + i`) for the life of the
node because the main process, not the worker, owns the bound UDP socket and TCP listener: every
incarnation of the slot gets duplicates of the same two sockets (`socket.dup()`), so the port is
never released and never raced for, and the addresses in ICE candidates stay valid.

A fresh worker is a new Python process that imports the engine before it answers: 0.1 s on the
quiet 2-core test machine, 0.5-1.8 s under load (bench/bench_respawn.py, docs/benchmarks.md). So each slot also keeps a *standby*: a worker
process started with `--standby` (media/engine/main.py), its interpreter up, the engine imported,
the slot's socket duplicates inherited and its channel answering, that reads neither socket. When
the slot's worker dies, the standby is activated (one request: it makes its engine and serves the
sockets, exactly as a fresh worker does before its first answer) and takes the slot, and a new
standby is started in the background. Only when the slot has no standby ready (it died, or is
still starting) is a fresh worker spawned, as without standbys. A standby costs its RSS (about
33 MiB, 15 MiB of it private, docs/operations.md) and is nothing else's business: it is not in `workers`, so the
registry never gives it a room and /api/health and the metrics do not count it as a worker.

A slot that crash-loops is not respawned forever: more than `limit` deaths within `window` seconds
and the slot is given up (an error in the log, `dead` in /api/health) until the node restarts.
Repeated deaths within the window also wait a little longer each time (a short exponential
backoff), so a worker that dies at start does not burn a core. Standbys that keep dying follow the
same bound, counted apart: past it the slot goes on without one.

The pool's `workers` list is the one list the signaling registry picks from, /api/health reports
and the metrics poller reads: a new worker replaces the dead one in place, at its index.
Shutdown first calls `stop_respawning()` (from the signal handler, before any worker is closed), so
a worker that dies because the node is stopping is not brought back; `close()` closes the standbys
with the workers, and waits for every start under way, so no process of the pool outlives it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from common.log import get_logger
from media.api.worker import Worker, WorkerSettings

log = get_logger("workers")

# the first respawn after a quiet period is immediate; each further death in the window doubles this
BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0
# activation takes milliseconds; a standby that does not answer by then is wedged, and a fresh
# worker is started instead
ACTIVATE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class RespawnPolicy:
    """How many deaths of one slot within `window` seconds are respawned (0: never respawn)."""

    limit: int = 5
    window: float = 60.0


class WorkerPool:
    """The workers of this node, one per RTC socket pair, each replaced when it dies (within bounds)."""

    def __init__(self, sockets: list[tuple[socket.socket, socket.socket]],
                 settings_for: Callable[[int], WorkerSettings], policy: RespawnPolicy | None = None,
                 standby: bool = True):
        # the main process's own sockets: they outlive every worker of their slot
        self._sockets = sockets
        self._settings_for = settings_for
        self.policy = policy or RespawnPolicy()
        self.workers: list[Worker] = []
        self.restarts: list[int] = [0] * len(sockets)
        self.given_up: set[int] = set()
        # a slot that is never respawned has no use for a standby
        self.keeps_standbys = standby and self.policy.limit > 0
        # each slot's ready standby, or None; never in `workers`
        self.standbys: list[Worker | None] = [None] * len(sockets)
        self._deaths: list[deque[float]] = [deque() for _ in sockets]
        self._standby_deaths: list[deque[float]] = [deque() for _ in sockets]
        self._respawning: dict[int, asyncio.Task[None]] = {}
        self._standing_by: dict[int, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start one worker per slot, in order, then their standbys in the background; raises
        TimeoutError or ChannelClosed if a worker fails to start."""
        for index in range(len(self._sockets)):
            self.workers.append(await self._spawn(index))
        for index in range(len(self._sockets)):
            self._stand_by(index)

    def respawning(self, index: int) -> bool:
        """Slot `index` is dead and a new worker for it is on its way."""
        return index in self._respawning

    def stop_respawning(self) -> None:
        """The node is stopping: no worker that dies from now on is brought back."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop respawning, wait for the starts under way (each closes what it started), close every
        worker and standby."""
        self.stop_respawning()
        pending = [*self._respawning.values(), *self._standing_by.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        spares = [spare for spare in self.standbys if spare is not None]
        self.standbys = [None] * len(self._sockets)
        await asyncio.gather(*(w.close() for w in (*self.workers, *spares)), *self._closing,
                             return_exceptions=True)
        for udp, tcp in self._sockets:
            udp.close()
            tcp.close()

    # ---- one slot's life ---------------------------------------------------------------------------

    async def _spawn(self, index: int, standby: bool = False) -> Worker:
        udp, tcp = self._sockets[index]
        worker = Worker(self._settings_for(index), udp.dup(), tcp.dup(), standby=standby)
        try:
            await worker.start()
        except BaseException:
            await worker.close()  # kills a process that did not answer; closes the duplicates
            raise
        # attached only now: a worker that dies while starting is the caller's failure, not a death
        worker.on("died", lambda code: self._died(worker))
        return worker

    def _died(self, worker: Worker) -> None:
        index = worker.index
        if self._stopping.is_set():
            return
        if self.workers[index] is worker:
            self._death_of(index)
        elif self.standbys[index] is worker:
            self.standbys[index] = None
            self._standby_died(index)

    def _count(self, deaths: deque[float], now: float) -> float | None:
        """Count a death: the wait before the next start, or None once the deaths within the window
        pass the limit."""
        deaths.append(now)
        while deaths and now - deaths[0] > self.policy.window:
            deaths.popleft()
        if len(deaths) > self.policy.limit:
            return None
        return 0.0 if len(deaths) == 1 else min(BACKOFF_FIRST_SECONDS * 2 ** (len(deaths) - 2), BACKOFF_MAX_SECONDS)

    def _death_of(self, index: int) -> None:
        """Count a death of the slot; replace its worker after its backoff, or give it up if it crash-loops."""
        now = time.monotonic()
        delay = self._count(self._deaths[index], now)
        if delay is None:
            self.given_up.add(index)
            log.error("worker %d died %d time(s) within %.0f s: not respawning it (RTC port %d stays closed "
                      "to media until the node restarts)", index, len(self._deaths[index]), self.policy.window,
                      self._sockets[index][0].getsockname()[1])
            spare, self.standbys[index] = self.standbys[index], None
            if spare is not None:
                self._close_later(spare)
            return
        self._respawning[index] = asyncio.get_running_loop().create_task(self._respawn(index, delay, now))

    async def _stopped_within(self, delay: float) -> bool:
        """Wait `delay` seconds, or less if the pool stops meanwhile; whether it is stopping."""
        if delay > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
        return self._stopping.is_set()

    async def _respawn(self, index: int, delay: float, died_at: float) -> None:
        try:
            if await self._stopped_within(delay):
                return
            try:
                worker, how = await self._replacement(index)
            except Exception as exc:  # it died while starting, did not answer, or could not be spawned
                log.error("worker %d could not be respawned: %r", index, exc)
                failed = True
            else:
                failed = False
        finally:
            self._respawning.pop(index, None)
        if failed:
            if not self._stopping.is_set():
                self._death_of(index)  # a failed start counts as a death: backoff, and the bound
            return
        if self._stopping.is_set():  # shutdown began while it started: it goes with the others
            await worker.close()
            return
        self.workers[index] = worker
        self.restarts[index] += 1
        log.warning("worker %d respawned %s (pid %d, RTC port %d) %.3f s after it died", index, how, worker.pid,
                    worker.settings.rtc_port, time.monotonic() - died_at)
        self._stand_by(index)

    async def _replacement(self, index: int) -> tuple[Worker, str]:
        """The slot's standby, activated; without one ready, a fresh worker (and how it was had)."""
        spare, self.standbys[index] = self.standbys[index], None
        if spare is not None:
            try:
                await asyncio.wait_for(spare.activate(), ACTIVATE_TIMEOUT_SECONDS)
            except Exception as exc:  # it died meanwhile (its death is nobody's now), or is wedged
                log.warning("the standby of worker %d (pid %s) could not be activated (%r): starting a new "
                            "process", index, spare.pid, exc)
                self._close_later(spare)
            else:
                return spare, "from its standby"
        return await self._spawn(index), "as a new process"

    # ---- standbys ------------------------------------------------------------------------------------

    def _stand_by(self, index: int, delay: float = 0.0) -> None:
        """Start a standby for the slot in the background, unless it has one or one is on its way."""
        if (not self.keeps_standbys or self._stopping.is_set() or index in self.given_up
                or self.standbys[index] is not None or index in self._standing_by):
            return
        self._standing_by[index] = asyncio.get_running_loop().create_task(self._start_standby(index, delay))

    async def _start_standby(self, index: int, delay: float) -> None:
        spare: Worker | None = None
        try:
            if await self._stopped_within(delay):
                return
            try:
                spare = await self._spawn(index, standby=True)
            except Exception as exc:
                log.warning("a standby for worker %d could not be started: %r", index, exc)
        finally:
            self._standing_by.pop(index, None)
        if spare is None:
            if not self._stopping.is_set():
                self._standby_died(index)
            return
        if self._stopping.is_set() or index in self.given_up:
            await spare.close()
            return
        self.standbys[index] = spare

    def _standby_died(self, index: int) -> None:
        """A standby died or failed to start: another after the same backoff as a worker, within its own bound."""
        delay = self._count(self._standby_deaths[index], time.monotonic())
        if delay is None:
            log.error("standbys of worker %d died %d time(s) within %.0f s: the slot goes on without one (its "
                      "worker is respawned as a new process)", index, len(self._standby_deaths[index]),
                      self.policy.window)
            return
        self._stand_by(index, delay)

    def _close_later(self, worker: Worker) -> None:
        """Close a worker nobody will use, in the background; close() waits for it."""
        task = asyncio.get_running_loop().create_task(worker.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
