"""The socket stage's send rate on loopback: Python sendto, sendmmsg batches, UDP GSO.

Every case queues 1,200-byte packets (unless it says otherwise) for about two
seconds and counts the packets the kernel accepted; receivers do not read, so
on loopback what overflows their buffers is dropped after it was accepted.
The queue-and-flush loop runs in C (fastpath.udp.bench_flush), so the figures
are the kernel's cost per packet plus ours, without Python's.

    .venv/bin/python bench/bench_udp.py [--seconds 2] [--output bench/results/udp.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import socket
import time
from pathlib import Path

from fastpath.udp import UdpBatchSocket, bench_flush

PACKET_SIZE = 1200
RECEIVERS = 500
CHUNK = 20_000  # packets per bench_flush call between clock reads


def open_receivers(count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    receivers = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        receivers.append(s)
    return receivers


def new_sender() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def measure_sendto(addr: tuple, seconds: float) -> dict:
    """Case (a): one Python sendto call per packet."""
    payload = os.urandom(PACKET_SIZE)
    with new_sender() as s:
        sendto = s.sendto
        sent = 0
        cpu0, start = time.process_time(), time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(1000):
                sendto(payload, addr)
            sent += 1000
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"accepted": sent, "seconds": elapsed, "cpu_seconds": cpu, "syscalls": sent}


def measure_flush(
    addrs: list[tuple], seconds: float, batch: int, gso: bool, sizes=(PACKET_SIZE,), burst=1
) -> dict:
    """Cases (b)-(e): bench_flush queues packets in C and flushes every `batch` slots."""
    with new_sender() as s:
        sock = UdpBatchSocket(s, tx_slots=batch, gso=gso)
        if gso and not sock.gso:
            return {"skipped": "UDP GSO not supported"}
        bench_flush(sock, addrs, batch * 4, sizes, burst)  # warm caches and neighbour tables
        before = sock.counters()
        cpu0, start = time.process_time(), time.perf_counter()
        while time.perf_counter() - start < seconds:
            bench_flush(sock, addrs, CHUNK, sizes, burst)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        after = sock.counters()
    delta = {k: after[k] - before[k] for k in after}
    return {
        "accepted": delta["tx_packets"],
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "syscalls": delta["tx_batches"],
        "dropped_eagain": delta["tx_dropped_eagain"],
        "errors": delta["tx_errors"],
        "gso_fallbacks": delta["tx_gso_fallbacks"],
    }


def cases(addrs: list[tuple]) -> list[tuple[str, dict, object]]:
    one, ten, many = addrs[:1], addrs[:10], addrs
    frame = (PACKET_SIZE,) * 6 + (900,)
    rng = random.Random(1)
    random_sizes = tuple(rng.randrange(200, PACKET_SIZE + 1) for _ in range(997))
    return [
        ("a: python sendto, 1 address", {}, lambda sec: measure_sendto(one[0], sec)),
        ("b: sendmmsg x32, 1 address", {}, lambda sec: measure_flush(one, sec, 32, False)),
        ("b: sendmmsg x32, 10 addresses", {}, lambda sec: measure_flush(ten, sec, 32, False)),
        ("b: sendmmsg x32, 500 addresses", {}, lambda sec: measure_flush(many, sec, 32, False)),
        ("c: GSO x32, 1 address", {}, lambda sec: measure_flush(one, sec, 32, True)),
        ("c: GSO x64, 1 address", {}, lambda sec: measure_flush(one, sec, 64, True)),
        (
            "d: GSO x256, 10 addresses interleaved (fan-out)",
            {"compare": "sendmmsg x256, 10 addresses"},
            lambda sec: measure_flush(ten, sec, 256, True),
        ),
        ("d: sendmmsg x256, 10 addresses", {}, lambda sec: measure_flush(ten, sec, 256, False)),
        (
            "d: GSO x256, 500 addresses (nothing to group)",
            {"compare": "sendmmsg x256, 500 addresses"},
            lambda sec: measure_flush(many, sec, 256, True),
        ),
        ("d: sendmmsg x256, 500 addresses", {}, lambda sec: measure_flush(many, sec, 256, False)),
        (
            "e: GSO x32, 1 address, frames of 6x1200+900",
            {"sizes": "6x1200, 900"},
            lambda sec: measure_flush(one, sec, 32, True, frame),
        ),
        (
            "e: GSO x256, 10 addresses, bursts of 7, frames of 6x1200+900",
            {"sizes": "6x1200, 900", "burst": 7},
            lambda sec: measure_flush(ten, sec, 256, True, frame, 7),
        ),
        (
            "e: GSO x32, 1 address, random 200..1200 bytes",
            {"sizes": "random 200..1200"},
            lambda sec: measure_flush(one, sec, 32, True, random_sizes),
        ),
        (
            "e: sendmmsg x32, 1 address, random 200..1200 bytes",
            {"sizes": "random 200..1200"},
            lambda sec: measure_flush(one, sec, 32, False, random_sizes),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "udp.json"))
    args = parser.parse_args()

    receivers = open_receivers(RECEIVERS)
    addrs = [r.getsockname() for r in receivers]
    results = []
    try:
        for name, extra, run in cases(addrs):
            r = run(args.seconds)
            r.update(extra, case=name)
            if "accepted" in r:
                r["packets_per_second"] = round(r["accepted"] / r["seconds"])
                r["cpu_us_per_packet"] = round(1e6 * r["cpu_seconds"] / max(r["accepted"], 1), 3)
                print(
                    f"{name:62s} {r['packets_per_second']:>10,} pkt/s"
                    f"  {r['cpu_us_per_packet']:6.3f} us CPU/pkt  {r['syscalls']:>8,} syscalls"
                )
            else:
                print(f"{name:62s} skipped: {r['skipped']}")
            results.append(r)
    finally:
        for r in receivers:
            r.close()

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "udp",
                "packet_size": PACKET_SIZE,
                "seconds_per_case": args.seconds,
                "machine": {
                    "kernel": platform.release(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
