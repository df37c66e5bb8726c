"""app/worker_pool.py with real worker processes: respawn on the same socket, the crash-loop bound,
and closing the pool while a respawn is under way (what `switchyard serve` does at SIGTERM); each
slot's warm standby, which reads neither socket until it takes over, and is replaced after."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from app.worker_pool import RespawnPolicy, WorkerPool
from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets
from media.channel import ChannelRequestError
from tests.conftest import free_port_range

pytestmark = pytest.mark.timeout(60)
WAIT = 15.0


def pool_of(count: int, policy: RespawnPolicy | None = None, standby: bool = True) -> WorkerPool:
    base = free_port_range(count)
    sockets = [bind_rtc_sockets("127.0.0.1", base + i) for i in range(count)]
    return WorkerPool(sockets, lambda i: WorkerSettings(i, "127.0.0.1", base + i, "127.0.0.1", "warning"), policy,
                      standby)


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


def polled_fds(pid: int) -> set[int]:
    """The descriptors an epoll instance of process `pid` watches: what its event loop reads."""
    fds: set[int] = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            lines = info.read_text().splitlines()
        except OSError:  # closed meanwhile
            continue
        fds.update(int(line.split()[1]) for line in lines if line.startswith("tfd:"))
    return fds


def socket_fds(worker: Worker) -> set[int]:
    """The worker process's own descriptor numbers of its UDP socket and TCP listener (from its argv)."""
    argv = Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")
    return {int(argv[argv.index(flag) + 1]) for flag in (b"--udp-fd", b"--tcp-fd")}


async def ready_standby(pool: WorkerPool, index: int, not_pid: int | None = None) -> Worker:
    await until(lambda: pool.standbys[index] is not None and pool.standbys[index].pid != not_pid, "standing by")
    return pool.standbys[index]


async def test_a_dead_worker_is_replaced_in_place_and_serves_on_the_same_port():
    pool = pool_of(2)
    try:
        await pool.start()
        workers = pool.workers
        first, other = workers
        port = first.settings.rtc_port
        spare = await ready_standby(pool, 0)
        os.kill(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: pool.workers[0] is not first, "respawned")
        print(f"respawned in {time.monotonic() - killed:.2f} s")
        assert pool.workers is workers and pool.workers[1] is other  # the same list, changed in place
        new = pool.workers[0]
        assert new is spare and not new.standby  # the standby took the slot
        assert new.pid != first.pid and not new.closed and pool.restarts == [1, 0]
        dump = await new.request("worker.dump")
        assert (dump["index"], dump["rtcPort"]) == (0, port)
        router = await new.create_router()
        transport = await router.create_webrtc_transport()
        assert {c["port"] for c in transport.ice_candidates} == {port}
    finally:
        await pool.close()
    assert engine_processes(port) == []


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
        # its standby went with it: nothing of the slot runs
        assert pool.standbys == [None] and engine_processes(last.settings.rtc_port) == []
    finally:
        await pool.close()


async def test_closing_while_a_respawn_is_under_way_leaves_no_worker_running():
    pool = pool_of(1, standby=False)  # a standby takes over in milliseconds: too quick to close during
    await pool.start()
    doomed = pool.workers[0]
    os.kill(doomed.pid, signal.SIGKILL)
    await until(lambda: pool.respawning(0), "respawning", 5.0)
    await pool.close()  # waits for the respawn, then closes what it started
    assert not pool.respawning(0)
    assert engine_processes(doomed.settings.rtc_port) == [], "a worker started by the respawn outlived the pool"
    assert pool.workers[0] is doomed and pool.restarts == [0]  # the slot was never handed the new one


async def test_closing_while_standbys_start_leaves_none_running():
    pool = pool_of(2)
    await pool.start()
    port = pool.workers[0].settings.rtc_port
    assert pool.standbys == [None, None]  # started in the background: still on their way
    await pool.close()
    assert engine_processes(port) == [] and engine_processes(port + 1) == [] and pool.standbys == [None, None]


async def test_each_slot_keeps_a_standby_that_reads_nothing_until_it_takes_over_and_is_then_replaced():
    pool = pool_of(2)
    try:
        await pool.start()
        spares = [await ready_standby(pool, i) for i in (0, 1)]
        first = pool.workers[0]
        port = first.settings.rtc_port
        # a standby is not a worker: not in the list rooms are picked from, and no engine to ask
        assert not any(s in pool.workers for s in spares) and all(s.standby for s in spares)
        assert sorted(engine_processes(port)) == sorted([first.pid, spares[0].pid])
        dump = await spares[0].request("worker.dump")
        assert (dump["standby"], dump["index"], dump["rtcPort"], dump["pid"]) == (True, 0, port, spares[0].pid)
        with pytest.raises(ChannelRequestError) as refused:
            await spares[0].request("router.create", {"routerId": "r"})
        assert refused.value.code == "invalid_state"
        # its event loop watches its channel only, the worker's its sockets too
        assert socket_fds(spares[0]).isdisjoint(polled_fds(spares[0].pid))
        assert socket_fds(first) <= polled_fds(first.pid)

        os.kill(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: pool.workers[0] is not first, "respawned")
        took = time.monotonic() - killed
        active = pool.workers[0]
        assert active is spares[0] and not active.standby and pool.restarts == [1, 0]
        assert took < 1.0, f"the standby took {took:.2f} s to take over"
        assert "standby" not in await active.request("worker.dump")
        assert socket_fds(active) <= polled_fds(active.pid)
        # a new standby for the slot, started in the background; the other slot's is untouched
        fresh = await ready_standby(pool, 0, not_pid=active.pid)
        assert fresh.standby and fresh is not active and pool.standbys[1] is spares[1]
        assert sorted(engine_processes(port)) == sorted([active.pid, fresh.pid])
        print(f"standby took over in {took * 1000:.0f} ms; a new standby answered "
              f"{time.monotonic() - killed:.2f} s after the kill")
    finally:
        await pool.close()
    assert engine_processes(port) == [] and pool.standbys == [None, None]


async def test_a_dead_standby_is_replaced_and_without_one_a_new_process_is_spawned():
    pool = pool_of(1)
    try:
        await pool.start()
        worker = pool.workers[0]
        spare = await ready_standby(pool, 0)
        os.kill(spare.pid, signal.SIGKILL)  # a standby dying is no death of the slot
        again = await ready_standby(pool, 0, not_pid=spare.pid)
        assert pool.workers[0] is worker and pool.restarts == [0] and not pool.respawning(0)
        # the standby and the worker die together: the slot gets a fresh process, then a standby
        os.kill(again.pid, signal.SIGKILL)
        await until(lambda: pool.standbys[0] is None, "standby noticed dead")
        os.kill(worker.pid, signal.SIGKILL)
        await until(lambda: pool.workers[0] is not worker, "respawned")
        new = pool.workers[0]
        assert new.pid not in (again.pid, worker.pid) and not new.standby and pool.restarts == [1]
        assert "standby" not in await new.request("worker.dump")
        await ready_standby(pool, 0, not_pid=again.pid)
    finally:
        await pool.close()


async def test_without_standbys_a_dead_worker_is_respawned_as_a_new_process():
    pool = pool_of(1, standby=False)
    try:
        await pool.start()
        first = pool.workers[0]
        port = first.settings.rtc_port
        await asyncio.sleep(1.0)  # long enough for a standby to start, were there one
        assert pool.standbys == [None] and engine_processes(port) == [first.pid]
        os.kill(first.pid, signal.SIGKILL)
        await until(lambda: pool.workers[0] is not first, "respawned")
        new = pool.workers[0]
        assert pool.restarts == [1] and engine_processes(port) == [new.pid]
        assert (await new.request("worker.dump"))["rtcPort"] == port
    finally:
        await pool.close()
