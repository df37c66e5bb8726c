"""What a worker's memory costs: the process before any room, and then per transport, consumer and stream.

- *Worker before any room*: a worker spawned exactly as the server spawns it (media.api.worker.Worker),
  its VmRSS from /proc once it answers; again with a router, and with its first WebRTC transport (which
  loads the DTLS and STUN libraries and makes the certificate).
- *Per item*, in a forked process holding a Forwarder: RSS growth over `--count` more of each, after a
  first hundred has grown every table: a transport with its two SRTP contexts and a tuple; a consumer
  of a 3-layer simulcast video (on an existing transport, three streams attached); an audio stream;
  a video stream, empty and with its 512-packet retransmission history full (512 real 1,200-byte SRTP
  packets through the worker's socket per stream).
- *A 1,000-participant room*: the sum for everyone sending Opus and 3-layer simulcast on a send and a
  receive transport, with everyone consuming everyone (all-to-all, the bound), and with 10 senders
  watched by everyone (a webinar).

    .venv/bin/python bench/bench_memory.py [--count 1000] [--streams 200]

Prints a table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import time
from pathlib import Path

from fastpath.codecs import CODEC_OPUS, CODEC_VP8
from fastpath.route import Forwarder
from fastpath.srtp import SrtpSession, profile_key_lengths
from loadgen.probes import send_rtp
from rich.console import Console
from rich.table import Table

from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets

PROFILE = "AES_CM_128_HMAC_SHA1_80"
HISTORY_PACKETS = 512
PACKET_SIZE = 1200
WARM = 100
RESULTS = Path(__file__).resolve().parent / "results"
ROOM = 1000
WEBINAR_SENDERS = 10
MEDIASOUP_IDLE_WORKER_MB = 22  # quoted (issue 16), not measured here


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def new_key() -> bytes:
    return os.urandom(sum(profile_key_lengths(PROFILE)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def worker_rss(tree: str | None = None) -> dict:
    """A real worker's RSS (KiB) before any room, with a router, with its first WebRTC transport.

    `tree`: another checkout whose worker to start instead (`python -m` imports from the working
    directory first), to compare two versions in the same run.
    """
    port = free_port()
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    worker = Worker(WorkerSettings(0, "127.0.0.1", port, "127.0.0.1"), udp, tcp)
    here = os.getcwd()
    os.chdir(tree or here)
    try:
        await worker.start()
    finally:
        os.chdir(here)
    try:
        await asyncio.sleep(0.5)
        idle = rss_kib(worker.pid)
        router = await worker.create_router()
        with_router = rss_kib(worker.pid)
        await router.create_webrtc_transport()
        return {"idle": idle, "router": with_router, "first_webrtc_transport": rss_kib(worker.pid)}
    finally:
        await worker.close()


def forwarder_costs(conn, count: int, streams: int) -> None:
    """RSS growth (KiB) per transport, consumer, audio stream and video stream, in this fresh process."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    fwd = Forwarder(server, lambda packets, events: None)
    producer_key = new_key()
    producer = fwd.add_transport(1)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    fwd.set_transport_tuple(producer, sender.getsockname())
    fwd.set_transport_srtp(producer, SrtpSession(PROFILE, producer_key, "inbound"),
                           SrtpSession(PROFILE, new_key(), "outbound"))
    ssrc = iter(range(0x1000, 1 << 30))
    transports: list[int] = []
    video: list[int] = []
    out: dict[str, float] = {}

    def add_transports(n: int) -> None:
        for _ in range(n):
            t = fwd.add_transport(next(ssrc))
            fwd.set_transport_tuple(t, ("127.0.0.1", 10_000 + len(transports) % 50_000))
            fwd.set_transport_srtp(t, SrtpSession(PROFILE, new_key(), "inbound"),
                                   SrtpSession(PROFILE, new_key(), "outbound"))
            transports.append(t)

    def add_video(n: int) -> list[int]:
        return [fwd.add_producer_stream(producer, next(ssrc), 0, CODEC_VP8, 90000, i % 3, True) for i in range(n)]

    def add_consumers(n: int) -> None:
        layers = video[:3]
        for i in range(n):
            c = fwd.add_consumer(transports[i % len(transports)], next(ssrc), 3, {96: 96}, {}, 0, CODEC_VP8,
                                 90000, True, False)
            for layer, stream in enumerate(layers):
                fwd.attach_stream(c, layer, stream)

    def per(label: str, grow, n: int) -> None:
        before = rss_kib()
        grow(n)
        out[label] = (rss_kib() - before) / n

    add_transports(WARM)
    per("transport_kib", add_transports, count)
    video.extend(add_video(WARM))
    add_consumers(WARM)
    per("consumer_kib", add_consumers, count)
    [fwd.add_producer_stream(producer, next(ssrc), 0, CODEC_OPUS, 48000, 0, False) for _ in range(WARM)]
    per("audio_stream_kib", lambda n: [fwd.add_producer_stream(producer, next(ssrc), 0, CODEC_OPUS, 48000,
                                                                0, False) for _ in range(n)], count)
    before = rss_kib()
    filled = add_video(streams)
    out["video_stream_empty_kib"] = (rss_kib() - before) / streams
    # Fill each new stream's history: HISTORY_PACKETS real SRTP packets, drained as they arrive.
    before = rss_kib()
    session = SrtpSession(PROFILE, producer_key, "outbound")
    sent, half = 0, HISTORY_PACKETS // 2
    for s in filled:
        stream_ssrc = fwd.stream_stats(s)["ssrc"]
        for part in range(2):
            sent += send_rtp(sender, server.getsockname(), session, stream_ssrc, 96, PACKET_SIZE, 0, 5.0,
                             count=half, first_seq=part * half)["sent"]
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                fwd.drain()
                if fwd.stream_stats(s)["packetCount"] >= (part + 1) * half:
                    break
                time.sleep(0.001)
    received = sum(fwd.stream_stats(s)["packetCount"] for s in filled)
    out["video_stream_history_kib"] = (rss_kib() - before) / streams
    out["video_stream_full_kib"] = out["video_stream_empty_kib"] + out["video_stream_history_kib"]
    out["history_packets_received"] = received
    out["history_packets_sent"] = sent
    conn.send(out)


def room_bound_mib(idle_kib: float, per: dict, participants: int, senders: int) -> float:
    """A room where `senders` of `participants` send Opus + 3-layer simulcast and everyone sees every sender."""
    transports = 2 * participants
    consumers = senders * (participants - 1) * 2  # audio + video from each sender to each other participant
    kib = (idle_kib + transports * per["transport_kib"] + senders * per["audio_stream_kib"]
           + 3 * senders * per["video_stream_full_kib"] + consumers * per["consumer_kib"])
    return kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="transports, consumers, audio streams to add")
    parser.add_argument("--streams", type=int, default=200, help="video streams whose history is filled")
    parser.add_argument("--compare", metavar="TREE", help="also start the worker of this checkout (built)")
    args = parser.parse_args()
    worker = asyncio.run(worker_rss())
    other = asyncio.run(worker_rss(args.compare)) if args.compare else None
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=forwarder_costs, args=(child, args.count, args.streams))
    process.start()
    per = parent.recv()
    process.join()
    bounds = {
        "all_to_all_1000_mib": room_bound_mib(worker["idle"], per, ROOM, ROOM),
        "webinar_10_senders_1000_mib": room_bound_mib(worker["idle"], per, ROOM, WEBINAR_SENDERS),
    }
    table = Table(title="Worker memory (RSS)")
    table.add_column("what")
    table.add_column("RSS", justify="right")
    table.add_row("worker before any room", f"{worker['idle'] / 1024:.1f} MiB")
    if other:
        table.add_row(f"  {args.compare}'s worker before any room", f"{other['idle'] / 1024:.1f} MiB")
    table.add_row("  with a router", f"{worker['router'] / 1024:.1f} MiB")
    table.add_row("  with its first WebRTC transport", f"{worker['first_webrtc_transport'] / 1024:.1f} MiB")
    table.add_row("per transport (2 SRTP contexts)", f"{per['transport_kib']:.1f} KiB")
    table.add_row("per consumer (3-layer video)", f"{per['consumer_kib']:.2f} KiB")
    table.add_row("per audio stream", f"{per['audio_stream_kib']:.2f} KiB")
    table.add_row("per video stream, empty", f"{per['video_stream_empty_kib']:.1f} KiB")
    table.add_row("per video stream, 512-packet history full", f"{per['video_stream_full_kib']:.1f} KiB")
    table.add_row("1,000 participants, all to all", f"{bounds['all_to_all_1000_mib']:,.0f} MiB")
    table.add_row("1,000 participants, 10 senders", f"{bounds['webinar_10_senders_1000_mib']:,.0f} MiB")
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps({
        "worker_rss_kib": worker, "compared": {"tree": args.compare, "worker_rss_kib": other},
        "per_item": per, "room_bounds": bounds,
        "mediasoup_idle_worker_mb_quoted": MEDIASOUP_IDLE_WORKER_MB,
        "machine": {"cpu": platform.processor() or platform.machine(), "kernel": platform.release(),
                    "python": platform.python_version(), "cores": os.cpu_count()},
    }, indent=2))


if __name__ == "__main__":
    main()
