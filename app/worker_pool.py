"""The node's media workers as a pool that heals itself: a worker that dies is respawned on its port.

mediasoup leaves a dead worker to the application (its `died` event); here the main process does
what an operator would. Each slot i keeps its RTC port (`rtc_port_base + i`) for the life of the
node because the main process, not the worker, owns the bound UDP socket and TCP listener: every
incarnation of the slot gets duplicates of the same two sockets (`socket.dup()`), so the port is
never released and never raced for, and the addresses in ICE candidates stay valid.

A slot that crash-loops is not respawned forever: more than `limit` deaths within `window` seconds
and the slot is given up (an error in the log, `dead` in /api/health) until the node restarts.
Repeated deaths within the window also wait a little longer each time (a short exponential
backoff), so a worker that dies at start does not burn a core.

The pool's `workers` list is the one list the signaling registry picks from, /api/health reports
and the metrics poller reads: a respawned Worker replaces the dead one in place, at its index.
Shutdown first calls `stop_respawning()` (from the signal handler, before any worker is closed), so
a worker that dies because the node is stopping is not brought back.
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


@dataclass(frozen=True)
class RespawnPolicy:
    """How many deaths of one slot within `window` seconds are respawned (0: never respawn)."""

    limit: int = 5
    window: float = 60.0


class WorkerPool:
    """The workers of this node, one per RTC socket pair, each respawned when it dies (within bounds)."""

    def __init__(self, sockets: list[tuple[socket.socket, socket.socket]],
                 settings_for: Callable[[int], WorkerSettings], policy: RespawnPolicy | None = None):
        # the main process's own sockets: they outlive every worker of their slot
        self._sockets = sockets
        self._settings_for = settings_for
        self.policy = policy or RespawnPolicy()
        self.workers: list[Worker] = []
        self.restarts: list[int] = [0] * len(sockets)
        self.given_up: set[int] = set()
        self._deaths: list[deque[float]] = [deque() for _ in sockets]
        self._respawning: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start one worker per slot, in order; raises TimeoutError or ChannelClosed if one fails."""
        for index in range(len(self._sockets)):
            self.workers.append(await self._spawn(index))

    def respawning(self, index: int) -> bool:
        """Slot `index` is dead and a new worker for it is on its way."""
        return index in self._respawning

    def stop_respawning(self) -> None:
        """The node is stopping: no worker that dies from now on is brought back."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop respawning, wait for a respawn under way (it closes what it started), close every worker."""
        self.stop_respawning()
        pending = list(self._respawning.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)
        for udp, tcp in self._sockets:
            udp.close()
            tcp.close()

    # ---- one slot's life ---------------------------------------------------------------------------

    async def _spawn(self, index: int) -> Worker:
        udp, tcp = self._sockets[index]
        worker = Worker(self._settings_for(index), udp.dup(), tcp.dup())
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
        if self._stopping.is_set() or self.workers[index] is not worker:
            return
        self._death_of(index)

    def _death_of(self, index: int) -> None:
        """Count a death of the slot; respawn it after its backoff, or give it up if it crash-loops."""
        now = time.monotonic()
        deaths = self._deaths[index]
        deaths.append(now)
        while deaths and now - deaths[0] > self.policy.window:
            deaths.popleft()
        if len(deaths) > self.policy.limit:
            self.given_up.add(index)
            log.error("worker %d died %d time(s) within %.0f s: not respawning it (RTC port %d stays closed "
                      "to media until the node restarts)", index, len(deaths), self.policy.window,
                      self._sockets[index][0].getsockname()[1])
            return
        delay = 0.0 if len(deaths) == 1 else min(BACKOFF_FIRST_SECONDS * 2 ** (len(deaths) - 2), BACKOFF_MAX_SECONDS)
        self._respawning[index] = asyncio.get_running_loop().create_task(self._respawn(index, delay, now))

    async def _respawn(self, index: int, delay: float, died_at: float) -> None:
        try:
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
            if self._stopping.is_set():
                return
            try:
                worker = await self._spawn(index)
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
        log.warning("worker %d respawned (pid %d, RTC port %d) %.2f s after it died", index, worker.pid,
                    worker.settings.rtc_port, time.monotonic() - died_at)
