"""One producer to N consumers on one worker, and the same N in a room spread over two workers through a pipe.

Real worker processes behind the media API (media/api), as the server runs them. The producer
is a plain SRTP transport on router A (worker 1) fed with loadgen.probes.send_rtp (1,200-byte
probes carrying their send time, paced: a few hundred packets a second cost the sender little);
every consumer is a plain SRTP transport to a socket of this process.

- "1 worker": N consumers on router A.
- "2 workers": the room as the signaling server spreads it (signaling/placement.py, the same code):
  each consumer is a viewer joining the room, placed by Placement.router_for_new_peer with the
  spread threshold (`--spread-consumers`, default the server's), so router A takes consumers up to
  the threshold and router B (worker 2) opens for the next ones, with the producer piped to it by
  Placement.pipe_for on B's first consumer (router.pipe_to_router: one pipe copy per input packet,
  plain RTP on loopback). The split is printed.

Two ways to count, per configuration and input rate:

- unread (the default): the consumers' sockets stay bound but unread, with a small SO_RCVBUF
  (`--unread-rcvbuf`), so the kernel drops each copy at the full socket; only a sample of
  `--sample` consumers, spread over both routers, is read (loadgen.probes.receive_rtp), for the
  latency and the loss. The copies forwarded are the workers' own counters over a window after a
  warm-up (bench/pipe_window.py): the pipe's copies from worker 1 to worker 2 are counted apart,
  and the kernel's Udp InDatagrams + RcvbufErrors over the same window cross-check the sum. A rate
  saturates a configuration when worker 1 loses input or the copies fall short of input x N (the
  second worker's pipe losses included); each configuration's sweep stops after `--stop-after`
  saturated rates, and the best copies/s of each configuration and their ratio are printed. No
  receiver drains N sockets, so the two workers have the 2 cores to themselves (less the sender
  and the sample).
  Before the sweep, one worker runs at `--check-rate` both ways, every socket read and the
  sockets unread, and the worker's CPU per copy of the two runs is compared: a full socket drops
  a copy a little earlier than a read one delivers it, and this says by how much that flatters.
- read (`--read-all`, the earlier way): every consumer socket is drained by this process and
  the copies delivered are counted. On a 2-core machine the receiver then needs the cores the
  workers are pinned to, so it caps the rate with two workers.

Then the latency one pipe hop adds: one consumer on A and one on B of the same piped producer at a
low rate, the difference of their median one-way latencies (arrival is the kernel's timestamp).

Each worker is pinned to a core of its own (worker 1 on core 0, worker 2 on core 1) and, as root,
runs at nice -10 (WORKER_NICE) in both configurations; this process (sender and receivers)
floats at its own priority, except during the read/unread check, when it keeps off worker 1's
core. The machine
is shared with other engineers' tests: the load average is recorded with every row, and a run that
starts above QUIET_LOAD is flagged. With sched_autogroup on (as on the shared VM) nice counts only
against this session's own processes: other sessions' work still takes its share of a worker's
core, which starves worker 2 in the smoke runs and makes their ratio the machine's.

    PYTHONPATH=. .venv/bin/python bench/bench_pipe.py [--consumers 1000] [--seconds 2] \
        [--rates 200 400 ... 2000] [--stop-after 2] [--spread-consumers 500] [--sample 16] \
        [--unread-rcvbuf 8192] [--check-rate 150] [--read-all] [--results bench/results/pipe.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastpath.srtp import SrtpSession
from loadgen.probes import receive_rtp, send_rtp
from rich.console import Console
from rich.table import Table

from bench.pipe_window import snapshot, window
from loadgen.harness.spawn import free_port_range
from media.api.errors import worker_request
from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets
from signaling.peer import Peer
from signaling.placement import DEFAULT_SPREAD_CONSUMERS, Placement
from signaling.room import Room

SUITE = "AES_CM_128_HMAC_SHA1_80"
SSRC = 0x5EED0002
PAYLOAD_TYPE = 111
PACKET_SIZE = 1200
RCVBUF = 1 << 20
LATENCY_RATE = 200
# the workers' nice value when this process may raise it (root), as bench_forward.py's worker: other
# work on a shared machine then takes less of their cores, the same for both configurations
WORKER_NICE = -10
# read mode: copies unprotected for latency per second, over all sockets
READ_SAMPLES_PER_SECOND = 20_000
# the sender runs this long past the window, so the window closes while it still sends (a saturated
# worker answers the counter requests late)
SEND_MARGIN_S = 1.0
# the sample's receivers stop once nothing arrived for this long (the workers' backlog is out)
IDLE_S = 0.3
# above this load average at the start the run is flagged as not quiet
QUIET_LOAD = 0.3
RESULTS = Path(__file__).parent / "results" / "pipe.json"


async def start_worker(index: int) -> Worker:
    port = free_port_range(1, low=40000, high=48000)
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    worker = Worker(WorkerSettings(index, "127.0.0.1", port, "127.0.0.1", "warning"), udp, tcp)
    await worker.start()
    return worker


async def publish(router) -> tuple:
    """A plain SRTP producer (Opus-typed probes) and the session its sender protects with."""
    plain = await router.create_plain_transport(comedia=True, enable_srtp=True, srtp_crypto_suite=SUITE)
    key = os.urandom(30)
    await plain.connect(srtp_parameters={"cryptoSuite": SUITE, "keyBase64": base64.b64encode(key).decode()})
    producer = await plain.produce("audio", {
        "codecs": [{"mimeType": "audio/opus", "payloadType": PAYLOAD_TYPE, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": SSRC}],
    })
    return producer, SrtpSession(SUITE, key, "outbound")


async def consumer_socket(router, producer_id: str, peer: Peer | None = None,
                          rcvbuf: int = RCVBUF) -> tuple[socket.socket, SrtpSession]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    plain = await router.create_plain_transport(enable_srtp=True, srtp_crypto_suite=SUITE)
    await plain.connect(ip="127.0.0.1", port=sock.getsockname()[1], srtp_parameters={
        "cryptoSuite": SUITE, "keyBase64": base64.b64encode(os.urandom(30)).decode()})
    consumer = await plain.consume(producer_id, router.rtp_capabilities, paused=False)
    if peer is not None:
        peer.consumers[consumer.id] = consumer
    return sock, SrtpSession(SUITE, base64.b64decode(plain.srtp_parameters["keyBase64"]), "inbound")


def sample_indices(count: int, size: int) -> list[int]:
    """`size` consumers spread evenly over the joining order (both routers' halves when spread)."""
    if size >= count:
        return list(range(count))
    return sorted({round(k * (count - 1) / (size - 1)) for k in range(size)}) if size > 1 else [0]


def set_rcvbuf(socks: list[socket.socket], size: int) -> None:
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def pin_this_process(cores: set[int]) -> None:
    """Every thread of this process (affinity is per thread; threads made later inherit the main one's)."""
    for tid in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(tid), cores)


@dataclass
class FanOut:
    """One configuration, built once and run at every rate."""

    workers: list[Worker]
    routers: list[Any]
    producer: Any
    out_session: SrtpSession
    socks: list[socket.socket]
    sessions: list[SrtpSession]
    router_of: list[int]  # per consumer: its router's index in `routers`
    sample: list[int]  # the consumers read in unread mode
    pipe_consumer: Any = None  # on A, feeding B (2 workers)
    pipe_producer: Any = None  # on B
    seq: int = 0  # the stream's next sequence number (libsrtp's rollover counter follows it)
    # one sender socket for every rate: the comedia producer transport knows its address
    sender: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    @property
    def split(self) -> str:
        return "/".join(str(self.router_of.count(r)) for r in range(len(self.routers)))


async def build(workers: list[Worker], consumers: int, threshold: int, sample: int, unread_rcvbuf: int) -> FanOut:
    """A room on the first worker, its viewers placed as signaling places them; the sample's sockets
    get a receive buffer to be read with, the others `unread_rcvbuf`."""
    room = Room("bench", "bench", None, await workers[0].create_router())
    placement = Placement(lambda: workers, threshold)
    producer, out_session = await publish(room.router)
    publisher = Peer("publisher", None, "publisher", room, router=room.router)
    publisher.producers[producer.id] = producer
    room.peers[publisher.peer_id] = publisher
    sampled = sample_indices(consumers, sample)
    socks, sessions, router_of = [], [], []
    for n in range(consumers):
        router = await placement.router_for_new_peer(room)
        viewer = Peer(f"viewer-{n}", None, "viewer", room, router=router)
        room.peers[viewer.peer_id] = viewer
        await placement.pipe_for(producer, router)
        sock, session = await consumer_socket(router, producer.id, viewer,
                                              RCVBUF if n in sampled else unread_rcvbuf)
        socks.append(sock)
        sessions.append(session)
        router_of.append(room.routers.index(router))
    fan = FanOut(workers, list(room.routers), producer, out_session, socks, sessions, router_of, sampled)
    if len(fan.routers) > 1:
        fan.pipe_consumer = next(c for c in producer.consumers.values() if c.type == "pipe")
        fan.pipe_producer = fan.routers[1].producers[producer.id]
    return fan


async def close(fan: FanOut) -> None:
    for sock in [fan.sender, *fan.socks]:
        sock.close()
    for router in reversed(fan.routers):
        await router.close()


async def settle(workers: list[Worker], limit: float = 5.0) -> None:
    """Wait until the workers have worked off their input backlog (their copy counters stop moving)."""
    last, deadline = None, time.monotonic() + limit
    while time.monotonic() < deadline:
        now = [(await worker_request(w, "worker.counters", {}))["forwardedPackets"] for w in workers]
        if now == last:
            return
        last = now
        await asyncio.sleep(0.2)


def latency_ms(latencies: np.ndarray) -> tuple[float | None, float | None]:
    if not len(latencies):
        return None, None
    return round(float(np.median(latencies)) / 1e6, 3), round(float(np.percentile(latencies, 99)) / 1e6, 3)


async def run_rate(fan: FanOut, rate: float, seconds: float, warmup: float, read_all: bool,
                   cores: list[int]) -> dict:
    """Send at `rate`; after `warmup`, a window of `seconds` over the workers' and the kernel's counters,
    while the sample (or, read_all, every socket) is read."""
    if read_all:
        groups = [list(range(len(fan.socks)))]
        sample_every = max(1, int(rate * len(fan.socks) // READ_SAMPLES_PER_SECOND))
    else:  # one receiver per router: the latency on each side of the pipe
        groups = [[i for i in fan.sample if fan.router_of[i] == r] for r in range(len(fan.routers))]
        sample_every = 1
    groups = [g for g in groups if g]
    send_seconds = warmup + seconds + SEND_MARGIN_S
    dest = ("127.0.0.1", fan.workers[0].settings.rtc_port)
    started = time.monotonic()
    sending = asyncio.ensure_future(asyncio.to_thread(
        send_rtp, fan.sender, dest, fan.out_session, SSRC, PAYLOAD_TYPE, PACKET_SIZE, rate, send_seconds, 32,
        fan.seq, 48000))
    receiving = [asyncio.ensure_future(asyncio.to_thread(
        receive_rtp, [fan.socks[i] for i in g], [fan.sessions[i] for i in g], send_seconds + 2.0,
        sample_every, 1 << 20, IDLE_S)) for g in groups]
    args = (fan.workers, fan.producer, fan.pipe_consumer, fan.pipe_producer, cores)
    await asyncio.sleep(warmup)
    before = await snapshot(*args)
    await asyncio.sleep(seconds)
    after = await snapshot(*args)
    sent = await sending
    received = await asyncio.gather(*receiving)
    fan.seq = sent["next_seq"]
    counts = window(before, after, sent["achieved_pps"], len(fan.socks))
    read = sum(len(g) for g in groups)
    packets = sum(r["packets"] for r in received)
    if read_all:  # RTCP sender reports are counted too: a run without loss shows a loss just below 0
        copies = packets / sent["seconds"]
        loss = 1 - packets / (sent["sent"] * read) if sent["sent"] else None
    else:  # every packet is unprotected: the sender reports fail as RTP and are left out
        copies = counts["forwardedPerSecond"]
        probes = packets - sum(r["srtp_failures"] + r["not_probes"] for r in received)
        loss = 1 - probes / (sent["sent"] * read) if sent["sent"] else None
    p50, p99 = latency_ms(np.concatenate([r["latencies_ns"] for r in received]))
    sides = []
    for g, r in zip(groups, received, strict=True):
        side_p50, side_p99 = latency_ms(r["latencies_ns"])
        side = "all" if read_all else "AB"[fan.router_of[g[0]]]
        sides.append({"router": side, "read": len(g), "p50Ms": side_p50, "p99Ms": side_p99})
    return {
        "workers": len(fan.workers), "consumers": len(fan.socks), "split": fan.split, "rate": rate,
        "mode": "read" if read_all else "unread", "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "inputPps": round(sent["achieved_pps"]), "copiesPerSecond": round(copies),
        # copies/s if the busiest worker had its whole core (the run's copies over its CPU share)
        "projectedCopiesPerSecond": round(copies / max(max(counts["workerCpu"]), 1e-6)),
        "loss": round(loss, 4) if loss is not None else None, "socketsRead": read,
        "latencyP50Ms": p50, "latencyP99Ms": p99, "latencyBySide": sides,
        "windowInsideSend": after.at + after.delay - started < send_seconds, **counts,
    }


async def sweep(fan: FanOut, rates: list[float], seconds: float, warmup: float, read_all: bool,
                cores: list[int], stop_after: int) -> list[dict]:
    """Every rate in turn, until `stop_after` saturated ones in a row (0: every rate): past saturation only
    the loss grows. In a row, because on a shared machine a worker starved for a moment looks saturated."""
    rows: list[dict] = []
    for rate in rates:
        rows.append(await run_rate(fan, rate, seconds, warmup, read_all, cores))
        await settle(fan.workers)
        if stop_after and len(rows) >= stop_after and all(r["saturated"] for r in rows[-stop_after:]):
            break
    return rows


async def read_vs_unread(fan: FanOut, rate: float, seconds: float, warmup: float, unread_rcvbuf: int,
                         cores: list[int]) -> dict:
    """One worker at a rate it carries, every socket read, then the same sockets unread: its CPU per copy
    both ways (getrusage: /proc/stat's ticks are too coarse for a core busy in short bursts), this
    process kept off the worker's core so that the receiver of 1,000 sockets does not share it."""
    floating = os.sched_getaffinity(0)
    others = floating - {cores[0]}
    if others:
        pin_this_process(others)
    try:
        set_rcvbuf(fan.socks, RCVBUF)
        read = await run_rate(fan, rate, seconds, warmup, True, cores)
        await settle(fan.workers)
        set_rcvbuf([s for i, s in enumerate(fan.socks) if i not in fan.sample], unread_rcvbuf)
        unread = await run_rate(fan, rate, seconds, warmup, False, cores)
        await settle(fan.workers)
    finally:
        pin_this_process(floating)

    return {
        "rate": rate, "read": read, "unread": unread, "clientOffWorkerCore": bool(others),
        "cpuUsPerCopy": [read["cpuUsPerCopy"], unread["cpuUsPerCopy"]],
        # < 1: an unread socket makes a copy cheaper for the worker by that factor
        "unreadOverRead": round(unread["cpuUsPerCopy"] / read["cpuUsPerCopy"], 3)
        if read["cpuUsPerCopy"] and unread["cpuUsPerCopy"] else None,
    }


async def pipe_latency(workers: list[Worker], seconds: float) -> dict:
    """Median one-way latency to a consumer on A and to one on B (through the pipe), same packets."""
    router_a, router_b = [await w.create_router() for w in workers]
    producer, out_session = await publish(router_a)
    await router_a.pipe_to_router(producer.id, router_b)
    (sock_a, sess_a), (sock_b, sess_b) = [await consumer_socket(r, producer.id) for r in (router_a, router_b)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", workers[0].settings.rtc_port)
    _, on_a, on_b = await asyncio.gather(
        asyncio.to_thread(send_rtp, sender, dest, out_session, SSRC, PAYLOAD_TYPE, PACKET_SIZE,
                          LATENCY_RATE, seconds, 32, 0, 48000),
        asyncio.to_thread(receive_rtp, [sock_a], [sess_a], seconds + 0.5, 1, 1 << 20, IDLE_S),
        asyncio.to_thread(receive_rtp, [sock_b], [sess_b], seconds + 0.5, 1, 1 << 20, IDLE_S),
    )
    for sock in (sender, sock_a, sock_b):
        sock.close()
    await router_b.close()
    await router_a.close()
    a, b = on_a["latencies_ns"], on_b["latencies_ns"]
    return {
        "ratePps": LATENCY_RATE, "samplesA": len(a), "samplesB": len(b),
        "p50MsA": round(float(np.median(a)) / 1e6, 3), "p50MsB": round(float(np.median(b)) / 1e6, 3),
        "p99MsA": round(float(np.percentile(a, 99)) / 1e6, 3), "p99MsB": round(float(np.percentile(b, 99)) / 1e6, 3),
        "pipeHopP50Ms": round(float(np.median(b) - np.median(a)) / 1e6, 3),
    }


def saturation(rows: list[dict]) -> dict:
    """Per configuration: its best copies/s, at which input rate, and the rate from which it no longer
    kept up (every rate from there on saturated; None if the last one was carried)."""
    out = {}
    for n in sorted({r["workers"] for r in rows}):
        mine = [r for r in rows if r["workers"] == n]
        best = max(mine, key=lambda r: r["copiesPerSecond"])
        carried = [i for i, r in enumerate(mine) if not r["saturated"]]
        first = carried[-1] + 1 if carried else 0
        out[n] = {"bestCopiesPerSecond": best["copiesPerSecond"], "atRate": best["rate"],
                  "workerCpuAtBest": best["workerCpu"], "loadAverageAtBest": best["loadAverage"][0],
                  "saturatedFromRate": mine[first]["rate"] if first < len(mine) else None}
    return out


async def measure(args: argparse.Namespace) -> dict:
    """Both configurations at every rate (and the read/unread check), then the pipe hop: the results."""
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.consumers + 256:  # one socket per consumer in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.consumers + 256), hard))
    workers = [await start_worker(0), await start_worker(1)]
    cores = sorted(os.sched_getaffinity(0))[:2]
    check, nice = None, WORKER_NICE
    try:
        if len(cores) >= 2:
            for worker, core in zip(workers, cores, strict=False):
                os.sched_setaffinity(worker.pid, {core})
        for worker in workers:
            try:
                os.setpriority(os.PRIO_PROCESS, worker.pid, WORKER_NICE)
            except PermissionError:
                nice = 0
        rows = []
        for n in (1, 2):
            started = time.monotonic()
            fan = await build(workers[:n], args.consumers, args.spread_consumers, args.sample, args.unread_rcvbuf)
            built = time.monotonic() - started
            try:
                if n == 1 and args.check_rate and not args.read_all:
                    check = await read_vs_unread(fan, args.check_rate, args.seconds, args.warmup,
                                                 args.unread_rcvbuf, cores)
                if args.read_all:
                    set_rcvbuf(fan.socks, RCVBUF)
                rows += [{**row, "buildSeconds": round(built, 1)}
                         for row in await sweep(fan, args.rates, args.seconds, args.warmup, args.read_all, cores,
                                             args.stop_after)]
            finally:
                await close(fan)
        latency = await pipe_latency(workers, args.seconds)
    finally:
        for worker in workers:
            await worker.close()
    peaks = saturation(rows)
    best = {n: peak["bestCopiesPerSecond"] for n, peak in peaks.items()}
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "shared": True,
                    "autogroup": autogroup(), "loadAverageAtStart": load_at_start},
        "packetSize": PACKET_SIZE, "seconds": args.seconds, "warmup": args.warmup,
        "spreadConsumers": args.spread_consumers, "mode": "read" if args.read_all else "unread",
        "sample": args.sample, "unreadRcvbuf": args.unread_rcvbuf, "workerNice": nice, "rows": rows,
        "readVsUnread": check,
        "pipeLatency": latency, "loadAverageAtEnd": [round(x, 2) for x in os.getloadavg()],
        "bestCopiesPerSecond": best, "saturation": peaks,
        "ratio": round(best[2] / best[1], 3) if best.get(1) else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def report(console: Console, results: dict) -> None:
    rows, mode = results["rows"], results["mode"]
    table = Table(title=f"one producer to {rows[0]['consumers']} consumers: 1 worker vs 2 workers through a pipe"
                        f" ({mode} sockets)")
    for column in ("workers", "split", "load", "input pps", "worker in pps", "copies/s", "pipe/s", "in loss",
                   "pipe loss", "sample loss", "kernel chk", "worker CPU", "core busy", "us/copy", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in rows:
        copies = f"{r['copiesPerSecond']:,}" + (" *" if r["saturated"] else "")
        table.add_row(str(r["workers"]), r["split"], str(r["loadAverage"][0]), str(r["inputPps"]),
                      str(r["workerInputPps"]), copies, f"{r['pipePerSecond']:,}", f"{r['inputLoss']:.1%}",
                      f"{r['pipeLoss']:.1%}" if r["pipeLoss"] is not None else "-",
                      f"{r['loss']:.1%}" if r["loss"] is not None else "-",
                      f"{r['kernelCheck']:+.1%}" if r["kernelCheck"] is not None else "-",
                      " ".join(f"{c:.0%}" for c in r["workerCpu"]), " ".join(f"{c:.0%}" for c in r["coreBusy"]),
                      str(r["cpuUsPerCopy"]), str(r["latencyP50Ms"]), str(r["latencyP99Ms"]))
    console.print(table)
    console.print("copies/s: " + ("delivered to every socket" if mode == "read" else
                  "the workers' copies to consumers (pipe copies apart)") +
                  "; * saturated (worker 1 lost input, or the copies fell short of input x consumers by > 2 %);"
                  " kernel chk: loopback datagrams (InDatagrams + RcvbufErrors, less the input) over the"
                  " workers' datagrams, - 1")
    check = results["readVsUnread"]
    if check:
        console.print(f"read vs unread sockets, 1 worker at {check['rate']:.0f} pps: worker CPU per copy "
                      f"{check['cpuUsPerCopy'][0]} / {check['cpuUsPerCopy'][1]} us (unread/read "
                      f"{check['unreadOverRead']})")
    for n, peak in results["saturation"].items():
        console.print(f"{n} worker(s): best {peak['bestCopiesPerSecond']:,} copies/s at {peak['atRate']:.0f} pps"
                      f" (worker CPU {' '.join(f'{c:.0%}' for c in peak['workerCpuAtBest'])}),"
                      f" saturated from {peak['saturatedFromRate']} pps")
    if results["ratio"]:
        console.print(f"2 workers / 1 worker, best copies/s: {results['ratio']:.2f}x")
    load = results["machine"]["loadAverageAtStart"][0]
    if load > QUIET_LOAD:
        console.print(f"[bold]not quiet[/bold]: load average {load} at the start; other work shares the"
                      " workers' cores" + (" (and with autogroup on, their nice value does not count"
                                           " against other sessions)" if results["machine"]["autogroup"] else ""))
    latency = results["pipeLatency"]
    console.print(f"one pipe hop at {LATENCY_RATE} pps: p50 {latency['p50MsA']} ms on A, {latency['p50MsB']} ms on B"
                  f" (+{latency['pipeHopP50Ms']} ms); p99 {latency['p99MsA']} / {latency['p99MsB']} ms")


def autogroup() -> bool:
    """Whether the kernel groups the scheduling of each session (sched_autogroup): the workers' nice
    value then counts only against this session's own processes, not other sessions' work."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0, help="the measurement window at each rate")
    parser.add_argument("--warmup", type=float, default=0.5, help="sending before the window opens")
    parser.add_argument("--rates", type=float, nargs="+", default=[200 * k for k in range(1, 11)])
    parser.add_argument("--stop-after", type=int, default=2,
                        help="a configuration's sweep stops after this many saturated rates (0: every rate)")
    parser.add_argument("--spread-consumers", type=int, default=DEFAULT_SPREAD_CONSUMERS,
                        help="a room's consumers on one worker before it spreads (SWITCHYARD_SPREAD_CONSUMERS)")
    parser.add_argument("--sample", type=int, default=16, help="consumers read (unread mode)")
    parser.add_argument("--unread-rcvbuf", type=int, default=8192, help="SO_RCVBUF of the unread sockets")
    parser.add_argument("--check-rate", type=float, default=150,
                        help="input pps of the read/unread check on one worker (0: skip)")
    parser.add_argument("--read-all", action="store_true", help="drain every consumer socket (the earlier way)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(measure(args))
    report(Console(width=170), results)
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
