"""One producer to N consumers on one worker, and the same N in a room spread over two workers through a pipe.

Real worker processes behind the media API (media/api), as the server runs them. The producer
is a plain SRTP transport on router A (worker 1) fed with loadgen.probes.send_rtp (1,200-byte
probes carrying their send time); every consumer is a plain SRTP transport to a socket of this
process, drained by loadgen.probes.receive_rtp, which unprotects a sample to read the one-way
latency (arrival is the kernel's timestamp).

- "1 worker": N consumers on router A.
- "2 workers": the room as the signaling server spreads it (signaling/placement.py, the same code):
  each consumer is a viewer joining the room, placed by Placement.router_for_new_peer with the
  spread threshold (`--spread-consumers`, default the server's), so router A takes consumers up to
  the threshold and router B (worker 2) opens for the next ones, with the producer piped to it by
  Placement.pipe_for on B's first consumer (router.pipe_to_router: one pipe copy per input packet,
  plain RTP on loopback). The split is printed.

Per configuration and input rate: copies delivered per second (RTCP sender reports, one a
second per consumer, are counted too, so a run without loss shows a loss just below 0), the loss,
and the workers' own forwarded-packet
counters and CPU time: "projected" is the run's copies/s divided by the busiest worker's share of
its core, what the workers would forward with whole cores to themselves (the sender and receiver
share this 2-core machine with them, so a measured rate with two workers is capped by the client
long before the workers). Then the latency one pipe hop adds: one consumer on A and one on B of
the same piped producer at a low rate, the difference of their median one-way latencies.

Each worker is pinned to a core of its own when two are used (worker 1 on core 0, worker 2 on
core 1); this process (sender and receiver) floats. The machine has 2 cores and is shared with
other engineers' tests, so wall-clock rates here are noisy and the sender and receiver compete
with the workers for the same 2 cores: read the figures as a comparison made in one run, not as
capacity.

    PYTHONPATH=. .venv/bin/python bench/bench_pipe.py [--consumers 1000] [--seconds 2] [--rates 100 200 400]
        [--spread-consumers 500]
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
from pathlib import Path

import numpy as np
from fastpath.srtp import SrtpSession
from loadgen.probes import receive_rtp, send_rtp
from rich.console import Console
from rich.table import Table

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


async def consumer_socket(router, producer_id: str, peer: Peer | None = None) -> tuple[socket.socket, SrtpSession]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    plain = await router.create_plain_transport(enable_srtp=True, srtp_crypto_suite=SUITE)
    await plain.connect(ip="127.0.0.1", port=sock.getsockname()[1], srtp_parameters={
        "cryptoSuite": SUITE, "keyBase64": base64.b64encode(os.urandom(30)).decode()})
    consumer = await plain.consume(producer_id, router.rtp_capabilities, paused=False)
    if peer is not None:
        peer.consumers[consumer.id] = consumer
    return sock, SrtpSession(SUITE, base64.b64decode(plain.srtp_parameters["keyBase64"]), "inbound")


async def forwarded(workers: list[Worker]) -> tuple[int, dict[str, int], list[float]]:
    """The workers' forwarded packets and drops by reason, summed, and each one's CPU seconds."""
    total, drops, cpu = 0, {}, []
    for worker in workers:
        counters = await worker_request(worker, "worker.counters", {})
        total += counters["forwardedPackets"]
        cpu.append(counters["cpuSeconds"])
        for name, count in counters["drops"].items():
            drops[name] = drops.get(name, 0) + count
    return total, drops, cpu


async def run_rate(workers, sender, dest, out_session, socks, sessions, rate: float, seconds: float,
                   first_seq: int) -> tuple[dict, int]:
    """Send at `rate` for `seconds` while draining every consumer socket; what arrived."""
    before, drops_before, cpu_before = await forwarded(workers)
    started = time.monotonic()
    sample_every = max(1, int(rate * len(socks) // 20_000))
    sending = asyncio.to_thread(send_rtp, sender, dest, out_session, SSRC, PAYLOAD_TYPE, PACKET_SIZE,
                                rate, seconds, 32, first_seq, 48000)
    receiving = asyncio.to_thread(receive_rtp, socks, sessions, seconds + 0.5, sample_every, 1 << 20, 0.3)
    sent, received = await asyncio.gather(sending, receiving)
    after, drops_after, cpu_after = await forwarded(workers)
    elapsed = time.monotonic() - started
    # each worker's share of its core over the run: what the same copies would take at 100 %
    busy = [max((a - b) / elapsed, 1e-6) for a, b in zip(cpu_after, cpu_before, strict=True)]
    copies = received["packets"] / seconds
    drops = {name: n - drops_before.get(name, 0) for name, n in drops_after.items() if n > drops_before.get(name, 0)}
    expected = sent["sent"] * len(socks)
    latencies = received["latencies_ns"]
    return {
        "inputPps": round(sent["achieved_pps"]),
        "copiesPerSecond": round(copies),
        "workerCpu": [round(b, 3) for b in busy],
        # copies/s if the busiest worker had its whole core (the run's copies over its CPU share)
        "projectedCopiesPerSecond": round(copies / max(busy)),
        "loss": round(1 - received["packets"] / expected, 4) if expected else None,
        "workerForwardedPerSecond": round((after - before) / seconds),
        "workerDrops": drops,
        "latencyP50Ms": round(float(np.median(latencies)) / 1e6, 3) if len(latencies) else None,
        "latencyP99Ms": round(float(np.percentile(latencies, 99)) / 1e6, 3) if len(latencies) else None,
    }, sent["next_seq"]


async def fan_out(workers: list[Worker], consumers: int, rates: list[float], seconds: float,
                  threshold: int) -> list[dict]:
    """One configuration: a room on the first worker, its viewers placed as signaling places them."""
    room = Room("bench", "bench", None, await workers[0].create_router())
    placement = Placement(lambda: workers, threshold)
    producer, out_session = await publish(room.router)
    publisher = Peer("publisher", None, "publisher", room, router=room.router)
    publisher.producers[producer.id] = producer
    room.peers[publisher.peer_id] = publisher
    socks, sessions = [], []
    for n in range(consumers):
        router = await placement.router_for_new_peer(room)
        viewer = Peer(f"viewer-{n}", None, "viewer", room, router=router)
        room.peers[viewer.peer_id] = viewer
        await placement.pipe_for(producer, router)
        sock, session = await consumer_socket(router, producer.id, viewer)
        socks.append(sock)
        sessions.append(session)
    routers = room.routers
    split = "/".join(str(sum(1 for p in room.peers.values() if p.router is r and p.consumers)) for r in routers)
    dest = ("127.0.0.1", workers[0].settings.rtc_port)
    rows, seq = [], 0
    # one sender socket for every rate: the comedia producer transport knows its address
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for rate in rates:
        row, seq = await run_rate(workers, sender, dest, out_session, socks, sessions, rate, seconds, seq)
        rows.append({"workers": len(workers), "consumers": consumers, "split": split, "rate": rate,
                     "loadAverage": [round(x, 2) for x in os.getloadavg()], **row})
        await asyncio.sleep(0.5)
    for sock in [sender, *socks]:
        sock.close()
    for router in routers:
        await router.close()
    return rows


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
        asyncio.to_thread(receive_rtp, [sock_a], [sess_a], seconds + 0.5, 1, 1 << 20, 0.3),
        asyncio.to_thread(receive_rtp, [sock_b], [sess_b], seconds + 0.5, 1, 1 << 20, 0.3),
    )
    await router_a.close()
    await router_b.close()
    a, b = on_a["latencies_ns"], on_b["latencies_ns"]
    return {
        "ratePps": LATENCY_RATE, "samplesA": len(a), "samplesB": len(b),
        "p50MsA": round(float(np.median(a)) / 1e6, 3), "p50MsB": round(float(np.median(b)) / 1e6, 3),
        "p99MsA": round(float(np.percentile(a, 99)) / 1e6, 3), "p99MsB": round(float(np.percentile(b, 99)) / 1e6, 3),
        "pipeHopP50Ms": round(float(np.median(b) - np.median(a)) / 1e6, 3),
    }


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.consumers + 256:  # one socket per consumer in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.consumers + 256), hard))
    workers = [await start_worker(0), await start_worker(1)]
    cores = sorted(os.sched_getaffinity(0))
    try:
        if len(cores) >= 2:
            for worker, core in zip(workers, cores, strict=False):
                os.sched_setaffinity(worker.pid, {core})
        rows = await fan_out(workers[:1], args.consumers, args.rates, args.seconds, args.spread_consumers)
        rows += await fan_out(workers, args.consumers, args.rates, args.seconds, args.spread_consumers)
        latency = await pipe_latency(workers, args.seconds)
    finally:
        for worker in workers:
            await worker.close()
    table = Table(title=f"one producer to {args.consumers} consumers: 1 worker vs 2 workers through a pipe")
    for column in ("workers", "split", "load avg", "input pps", "copies/s", "loss", "worker fwd/s", "worker CPU", "projected/s",
                   "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["workers"]), r["split"], str(r["loadAverage"][0]), str(r["inputPps"]), f"{r['copiesPerSecond']:,}", str(r["loss"]),
                      f"{r['workerForwardedPerSecond']:,}", " ".join(f"{c:.0%}" for c in r["workerCpu"]),
                      f"{r['projectedCopiesPerSecond']:,}", str(r["latencyP50Ms"]), str(r["latencyP99Ms"]))
    console = Console(width=150)
    console.print(table)
    console.print(f"one pipe hop at {LATENCY_RATE} pps: p50 {latency['p50MsA']} ms on A, {latency['p50MsB']} ms on B"
                  f" (+{latency['pipeHopP50Ms']} ms); p99 {latency['p99MsA']} / {latency['p99MsB']} ms")
    best = {n: max((r["copiesPerSecond"] for r in rows if r["workers"] == n), default=0) for n in (1, 2)}
    console.print(f"best delivered copies/s: 1 worker {best[1]:,}, 2 workers {best[2]:,}"
                  f" ({best[2] / best[1]:.2f}x)" if best[1] else "")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "shared": True},
        "packetSize": PACKET_SIZE, "seconds": args.seconds, "spreadConsumers": args.spread_consumers,
        "rows": rows, "pipeLatency": latency, "loadAverageAtEnd": [round(x, 2) for x in os.getloadavg()],
        "bestCopiesPerSecond": best, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 200, 400])
    parser.add_argument("--spread-consumers", type=int, default=DEFAULT_SPREAD_CONSUMERS,
                        help="a room's consumers on one worker before it spreads (SWITCHYARD_SPREAD_CONSUMERS)")
    asyncio.run(main(parser.parse_args()))
