"""app/worker_pool.py with real worker processes: respawn on the same socket, the crash-loop bound,
and closing the pool while a respawn is under way (what `switchyard serve` does at SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from app.worker_pool import RespawnPolicy, WorkerPool
from media.api.worker import WorkerSettings, bind_rtc_sockets
from tests.conftest import free_port_range

pytestmark = pytest.mark.timeout(60)
WAIT = 15.0


def pool_of(count: int, policy: RespawnPolicy | None = None) -> WorkerPool:
    base = free_port_range(count)
    sockets = [bind_rtc_sockets("127.0.0.1", base + i) for i in range(count)]
    return WorkerPool(sockets, lambda i: WorkerSettings(i, "127.0.0.1", base + i, "127.0.0.1", "warning"), policy)


async def until(condition, what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {limit} s"
        await asyncio.sleep(0.02)


def engine_processes(rtc_port: int) -> list[int]:
    """Pids of live worker processes (media.engine.main) serving `rtc_port` on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if (b"media.engine.main" in argv and b"--rtc-port" in argv and state != "Z"
                and argv[argv.index(b"--rtc-port") + 1] == str(rtc_port).encode()):
            pids.append(int(entry.name))
    return pids


async def test_a_dead_worker_is_replaced_in_place_and_serves_on_the_same_port():
    pool = pool_of(2)
    try:
        await pool.start()
        workers = pool.workers
        first, other = workers
        port = first.settings.rtc_port
        os.kill(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: pool.workers[0] is not first, "respawned")
        print(f"respawned in {time.monotonic() - killed:.2f} s")
        assert pool.workers is workers and pool.workers[1] is other  # the same list, changed in place
        new = pool.workers[0]
        assert new.pid != first.pid and not new.closed and pool.restarts == [1, 0]
        dump = await new.request("worker.dump")
        assert (dump["index"], dump["rtcPort"]) == (0, port)
        router = await new.create_router()
        transport = await router.create_webrtc_transport()
        assert {c["port"] for c in transport.ice_candidates} == {port}
    finally:
        await pool.close()


async def test_a_crash_loop_is_given_up_after_the_limit_with_a_growing_backoff():
    pool = pool_of(1, RespawnPolicy(limit=2, window=60))
    try:
        await pool.start()
        times = []
        for expected in (1, 2):
            doomed = pool.workers[0]
            os.kill(doomed.pid, signal.SIGKILL)
            killed = time.monotonic()
            await until(lambda doomed=doomed: pool.workers[0] is not doomed, "respawned")
            times.append(time.monotonic() - killed)
            assert pool.restarts == [expected]
        assert times[1] > 0.25  # the second death within the window waits its backoff
        last = pool.workers[0]
        os.kill(last.pid, signal.SIGKILL)
        await until(lambda: 0 in pool.given_up, "given up")
        await asyncio.sleep(1.0)
        assert pool.workers[0] is last and last.closed and not pool.respawning(0) and pool.restarts == [2]
    finally:
        await pool.close()


async def test_closing_while_a_respawn_is_under_way_leaves_no_worker_running():
    pool = pool_of(1)
    await pool.start()
    doomed = pool.workers[0]
    os.kill(doomed.pid, signal.SIGKILL)
    await until(lambda: pool.respawning(0), "respawning", 5.0)
    await pool.close()  # waits for the respawn, then closes what it started
    assert not pool.respawning(0)
    assert engine_processes(doomed.settings.rtc_port) == [], "a worker started by the respawn outlived the pool"
    assert pool.workers[0] is doomed and pool.restarts == [0]  # the slot was never handed the new one
