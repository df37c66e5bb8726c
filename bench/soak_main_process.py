"""Main-process memory soak: many short signaling sessions against one server, RSS and fds before and after.

A cycle is one client's whole session through the SDK: connect (Socket.IO), join the room, create
a send and a receive WebRTC transport (with `--chat`, send one chat message), leave, disconnect.
Four clients (guests signed in once) run their cycles at the same time, in one room, until
`--cycles` cycles are done in all. The script spawns its own server (`switchyard serve` on free
loopback ports, a temporary SQLite database, one media worker), runs `--warmup` cycles, samples
the main process's RSS (VmRSS of /proc/PID/status) and the open file descriptors of the server
and of each worker, then samples again `--samples` times up to the end. Nothing but the loopback
is used; every cycle has a timeout, and the run stops early (and says so) after `--max-seconds`.

    .venv/bin/python bench/soak_main_process.py [--cycles 4000] [--warmup 400] [--chat] \
        [--output bench/results/soak_main_process.json]

What it measures is the growth of the main process's RSS from the sample after the warm-up to the
last one, and of every process's open fds; the workers' RSS is reported beside it. A session
leaves nothing behind when it ends, so after the warm-up the main process should stay flat
(docs/benchmarks.md, "Main-process memory soak").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository's packages are next to bench/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchyard_client import SwitchyardClient  # noqa: E402

from loadgen.harness.spawn import SpawnedServer  # noqa: E402

CONCURRENCY = 4
# one cycle takes a few ms; a cycle that takes this long means the server is stuck
CYCLE_TIMEOUT = 20.0
SETTLE_SECONDS = 1.0
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "soak_main_process.json"


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    """The direct children of a process (the media workers of a server)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
        except FileNotFoundError:
            pass
    return sorted(found)


def sample(server_pid: int, cycles_done: int, started: float) -> dict:
    workers = children(server_pid)
    return {
        "cycles": cycles_done,
        "seconds": round(time.monotonic() - started, 2),
        "mainRssKiB": rss_kib(server_pid),
        "mainFds": open_fds(server_pid),
        "workers": [{"pid": pid, "rssKiB": rss_kib(pid), "fds": open_fds(pid)} for pid in workers],
    }


async def one_cycle(url: str, token: str, room_id: str, chat: bool) -> None:
    """connect, join, a send and a receive transport (and a chat message), leave, disconnect; a
    fresh SDK client each time, so nothing of the previous session stays on the client side."""
    client = SwitchyardClient(url, token=token, handle_sigint=False)
    try:
        await client.connect()
        await client.join(room_id)
        await client.create_webrtc_transport("send")
        await client.create_webrtc_transport("recv")
        if chat:
            await client.chat("soak")
        await client.leave()
    finally:
        await client.close()


async def run_cycles(url: str, tokens: list[str], room_id: str, count: int, deadline: float,
                     chat: bool = False) -> int:
    """`count` cycles over len(tokens) concurrent clients; the number done before the deadline."""
    done = 0
    remaining = count

    async def client_loop(token: str) -> None:
        nonlocal done, remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            await asyncio.wait_for(one_cycle(url, token, room_id, chat), CYCLE_TIMEOUT)
            done += 1

    await asyncio.gather(*(client_loop(token) for token in tokens))
    return done


async def soak(url: str, server_pid: int, cycles: int, warmup: int, samples: int, max_seconds: float,
               chat: bool = False) -> dict:
    started = time.monotonic()
    deadline = started + max_seconds
    guests = [SwitchyardClient(url, handle_sigint=False) for _ in range(CONCURRENCY)]
    try:
        for index, guest in enumerate(guests):
            await guest.guest(f"soak-{index}")
        room = await guests[0].create_room("soak")
    finally:
        for guest in guests:
            await guest.close()
    tokens = [guest.token for guest in guests]

    done = await run_cycles(url, tokens, room["id"], warmup, deadline, chat)
    await asyncio.sleep(SETTLE_SECONDS)
    points = [sample(server_pid, done, started)]
    measured = cycles - warmup
    step = max(1, measured // max(1, samples))
    while done < cycles and time.monotonic() < deadline:
        done += await run_cycles(url, tokens, room["id"], min(step, cycles - done), deadline, chat)
        await asyncio.sleep(SETTLE_SECONDS)
        points.append(sample(server_pid, done, started))
    first, last = points[0], points[-1]
    worker_fds = {w["pid"]: w["fds"] for w in first["workers"]}
    return {
        "cycles": done,
        "cyclesAsked": cycles,
        "warmupCycles": warmup,
        "concurrency": CONCURRENCY,
        "chat": chat,
        "completed": done >= cycles,
        "seconds": round(time.monotonic() - started, 2),
        "cyclesPerSecond": round((done - first["cycles"]) / max(1e-9, last["seconds"] - first["seconds"]), 1),
        "mainRssGrowthPercent": round(100.0 * (last["mainRssKiB"] - first["mainRssKiB"]) / first["mainRssKiB"], 2),
        "mainFdGrowth": last["mainFds"] - first["mainFds"],
        "workerFdGrowth": max([w["fds"] - worker_fds.get(w["pid"], w["fds"]) for w in last["workers"]],
                              default=0),
        "workerPidsStable": [w["pid"] for w in first["workers"]] == [w["pid"] for w in last["workers"]],
        "samples": points,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=4000, help="sessions in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=400, help="sessions before the first sample")
    parser.add_argument("--samples", type=int, default=8, help="samples after the warm-up one")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop early after this long")
    parser.add_argument("--chat", action="store_true", help="each cycle also sends one chat message")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results ('-' for none)")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.cycles:
        parser.error("--warmup must be above 0 and below --cycles")

    server = SpawnedServer(workers=1)
    try:
        result = asyncio.run(soak(server.url, server.pid, args.cycles, args.warmup, args.samples,
                                  args.max_seconds, args.chat))
    finally:
        code = server.stop()
    result.update({"serverExitCode": code, "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count()})
    for point in result["samples"]:
        workers = ", ".join(f"worker {w['pid']}: {w['rssKiB'] / 1024:.1f} MiB, {w['fds']} fds"
                            for w in point["workers"])
        print(f"{point['cycles']:6d} cycles {point['seconds']:7.1f} s  main {point['mainRssKiB'] / 1024:6.1f} MiB, "
              f"{point['mainFds']} fds; {workers}")
    print(f"main RSS {result['mainRssGrowthPercent']:+.2f} % after the warm-up, fds {result['mainFdGrowth']:+d} "
          f"(workers {result['workerFdGrowth']:+d}); {result['cycles']} cycles in {result['seconds']:.0f} s "
          f"({result['cyclesPerSecond']:.0f}/s)" + ("" if result["completed"] else " - stopped at --max-seconds"))
    if str(args.output) != "-":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
