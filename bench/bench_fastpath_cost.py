"""The fast path's work per packet in instructions (callgrind), and the kernel's share in messages.

Wall-clock rates on this shared machine swing by more than the effects in question, so this counts:
callgrind's instructions inside Forwarder.drain() (user space: receive, unprotect, parse, fan-out,
rewrite, protect, the flush's grouping), which are deterministic, and the socket's own counters for
the kernel's side: messages handed to sendmmsg (each a route lookup and a pass through the UDP
stack; a GSO message carries several datagrams) and sendmmsg calls. One Forwarder runs in a child
process on loopback sockets, AES-CM, fixed keys; the input goes in rounds, each drained until the
socket is empty, the consumer sockets then emptied. Start-up is excluded by difference (a run with
WARMUP rounds is subtracted from one with WARMUP + measured rounds).

Shapes:
- fanout-SIZES: one producer to N consumers (default 100), SIZES as bench_forward.py --sizes
  (equal 1,200 bytes, libwebrtc's frame packetizer, random 200-1,200), 64 packets a round;
- room-P: P participants, each sending Opus (108-byte packets) and 3-layer simulcast (184, 653 and
  3 x 862 bytes a round, `switchyard loadtest`'s shape at its defaults) on a send transport and
  receiving every other participant's audio and lowest layer on a receive transport: many streams,
  each to P - 1 consumers. The layers are registered as non-video streams so that no key frame is
  waited for (the VP8 descriptor parse and picture-id rewrite are not counted).

    PYTHONPATH=. .venv/bin/python bench/bench_fastpath_cost.py [--shapes fanout-equal room-16 ...]
        [--compare OTHER_TREE]

--compare runs every shape against another built tree too (its fastpath and loadgen first on
PYTHONPATH), in the same run, for before/after figures. Results: bench/results/fastpath-cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE = "AES_CM_128_HMAC_SHA1_80"
PAYLOAD_TYPE = 111
FANOUT_ROUND = 64
WARMUP_ROUNDS = 2
DRAIN_SYMBOL = "__pyx_pw_8fastpath_7receive_8Receiver_1drain"
# room: packets per participant per round, (stream, size, count); stream 1 is the lowest layer
ROOM_ROUND = ((0, 108, 1), (1, 184, 1), (2, 653, 1), (3, 862, 3))
DEFAULT_SHAPES = ("fanout-equal", "fanout-frames", "fanout-random", "room-16", "room-32", "room-48", "room-64")


def key(i: int) -> bytes:
    from fastpath.srtp import profile_key_lengths

    return bytes((7 * i + j) & 0xFF for j in range(sum(profile_key_lengths(PROFILE))))


def udp_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def socket_result(fwd, received: int, delivered: int) -> dict:
    counters = fwd.counters()
    return {"received": received, "forwarded": counters["forwardedPackets"], "delivered": delivered,
            "drops": {k: v for k, v in counters["drops"].items() if v},
            "tx_datagrams": counters["socket"]["tx_packets"], "tx_messages": counters["socket"]["tx_messages"],
            "tx_batches": counters["socket"]["tx_batches"]}


def child_fanout(sizes_kind: str, consumers: int, rounds: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_forward import PACKET_SIZE, packet_sizes
    from fastpath.codecs import CODEC_OPUS
    from fastpath.route import Forwarder
    from fastpath.srtp import SrtpSession
    from loadgen.probes import receive_rtp, send_rtp

    server, producer = udp_socket(4 << 20), udp_socket(1 << 20)
    sinks = [udp_socket(1 << 20) for _ in range(consumers)]
    fwd = Forwarder(server, lambda packets, events: None)
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, producer.getsockname())
    fwd.set_transport_srtp(t, SrtpSession(PROFILE, key(1), "inbound"), SrtpSession(PROFILE, key(2), "outbound"))
    stream = fwd.add_producer_stream(t, 0x5EED0001, 0, CODEC_OPUS, 48000, 0, False)
    for i, sink in enumerate(sinks):
        ct = fwd.add_transport(1000 + i)
        fwd.set_transport_tuple(ct, sink.getsockname())
        fwd.set_transport_srtp(ct, SrtpSession(PROFILE, key(3), "inbound"), SrtpSession(PROFILE, key(4 + i), "outbound"))
        c = fwd.add_consumer(ct, 0x10000 + i, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS, 48000, False, False)
        fwd.attach_stream(c, 0, stream)
    sizes = packet_sizes(sizes_kind)
    outbound = SrtpSession(PROFILE, key(1), "outbound")
    seq, delivered = 0, 0
    for r in range(rounds):
        chunk = None if sizes is None else sizes[r * FANOUT_ROUND:(r + 1) * FANOUT_ROUND]
        sent = send_rtp(producer, server.getsockname(), outbound, 0x5EED0001, PAYLOAD_TYPE, PACKET_SIZE, 0, 60.0,
                        first_seq=seq, clock_rate=48000, count=FANOUT_ROUND, sizes=chunk)
        seq = sent["next_seq"]
        while fwd.drain():
            pass
        delivered += receive_rtp(sinks, None, 60.0, 0, stop_when_idle=0.05)["packets"]
    return socket_result(fwd, fwd.transport_stats(t)["rtpPacketsReceived"], delivered)


def child_room(participants: int, rounds: int) -> dict:
    fwd, _sockets, received, delivered = room_forwarder(participants, rounds)
    return socket_result(fwd, received, delivered)


def room_forwarder(participants: int, rounds: int) -> tuple:
    """The room-P shape on a Forwarder after `rounds` rounds of input, each drained and delivered:
    (forwarder, the sockets to keep open, packets received, packets delivered)."""
    from fastpath.codecs import CODEC_OPUS
    from fastpath.route import Forwarder
    from fastpath.srtp import SrtpSession
    from loadgen.probes import receive_rtp, send_rtp

    server = udp_socket(8 << 20)
    senders = [udp_socket(1 << 20) for _ in range(participants)]
    sinks = [udp_socket(1 << 20) for _ in range(participants)]
    fwd = Forwarder(server, lambda packets, events: None)
    streams, ssrcs, send_transports = [], [], []
    for p, sender in enumerate(senders):
        t = fwd.add_transport(10 + p)
        fwd.set_transport_tuple(t, sender.getsockname())
        fwd.set_transport_srtp(t, SrtpSession(PROFILE, key(100 + p), "inbound"),
                               SrtpSession(PROFILE, key(200 + p), "outbound"))
        send_transports.append(t)
        mine = [0x100000 * (p + 1) + k for k in range(4)]
        ssrcs.append(mine)
        streams.append([fwd.add_producer_stream(t, mine[k], 0, CODEC_OPUS, 48000 if k == 0 else 90000, 0, False)
                        for k in range(4)])
    for p, sink in enumerate(sinks):
        t = fwd.add_transport(5000 + p)
        fwd.set_transport_tuple(t, sink.getsockname())
        fwd.set_transport_srtp(t, SrtpSession(PROFILE, key(300 + p), "inbound"),
                               SrtpSession(PROFILE, key(400 + p), "outbound"))
        for q in range(participants):
            if q == p:
                continue
            for k in (0, 1):  # audio and the lowest layer
                c = fwd.add_consumer(t, 0x7000000 + p * 4096 + q * 2 + k, 1, {PAYLOAD_TYPE: 100}, {}, 0,
                                     CODEC_OPUS, 48000 if k == 0 else 90000, False, False)
                fwd.attach_stream(c, 0, streams[q][k])
    outbound = [SrtpSession(PROFILE, key(100 + p), "outbound") for p in range(participants)]
    seqs = [[0] * 4 for _ in range(participants)]
    delivered = 0
    for _ in range(rounds):
        for p in range(participants):
            for k, size, count in ROOM_ROUND:
                sent = send_rtp(senders[p], server.getsockname(), outbound[p], ssrcs[p][k], PAYLOAD_TYPE, size,
                                0, 60.0, first_seq=seqs[p][k], clock_rate=48000, count=count)
                seqs[p][k] = sent["next_seq"]
        while fwd.drain():
            pass
        delivered += receive_rtp(sinks, None, 60.0, 0, stop_when_idle=0.05)["packets"]
    received = sum(fwd.transport_stats(t)["rtpPacketsReceived"] for t in send_transports)
    return fwd, [server, *senders, *sinks], received, delivered


def run_child(tree: Path, shape: str, rounds: int, consumers: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", shape, str(rounds), str(consumers)]
    command = ["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--toggle-collect={DRAIN_SYMBOL}",
               "--callgrind-out-file=OUT", *command]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command[4] = f"--callgrind-out-file={out}"
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        totals = re.search(r"^(?:totals|summary):\s+(\d+)", out.read_text(), re.MULTILINE)
        result["instructions"] = int(totals.group(1)) if totals else 0
    return result


def measure(tree: Path, shape: str, rounds: int, consumers: int) -> dict:
    short = run_child(tree, shape, WARMUP_ROUNDS, consumers)
    long = run_child(tree, shape, WARMUP_ROUNDS + rounds, consumers)
    d = {k: long[k] - short[k] for k in ("received", "forwarded", "delivered", "tx_datagrams", "tx_messages",
                                          "tx_batches", "instructions")}
    if d["forwarded"] != d["delivered"] or long["drops"]:
        raise RuntimeError(f"{shape} in {tree}: not every copy arrived: {short} {long}")
    return {
        "tree": str(tree), "shape": shape, "rounds": rounds, **d,
        "instructions_per_packet": d["instructions"] / d["received"],
        "instructions_per_copy": d["instructions"] / d["forwarded"],
        "copies_per_packet": d["forwarded"] / d["received"],
        "messages_per_copy": d["tx_messages"] / d["forwarded"],
        "sendmmsg_per_copy": d["tx_batches"] / d["forwarded"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        shape, rounds, consumers = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        kind, arg = shape.split("-")
        result = child_fanout(arg, consumers, rounds) if kind == "fanout" else child_room(int(arg), rounds)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES))
    parser.add_argument("--consumers", type=int, default=100, help="consumers of the fanout shapes")
    parser.add_argument("--fanout-rounds", type=int, default=8)
    parser.add_argument("--room-rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another built tree to measure the same way (before)")
    parser.add_argument("--output", default=str(RESULTS / "fastpath-cost.json"))
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    trees = ([args.compare.resolve()] if args.compare else []) + [ROOT]
    rows = []
    for shape in args.shapes:
        for tree in trees:
            rounds = args.fanout_rounds if shape.startswith("fanout") else args.room_rounds
            rows.append(measure(tree, shape, rounds, args.consumers))
            r = rows[-1]
            print(f"{shape} {tree}: {r['instructions_per_copy']:.0f} instr/copy, "
                  f"{r['messages_per_copy']:.3f} messages/copy", flush=True)
    table = Table(title=f"Fast path per packet (callgrind inside drain(), {PROFILE}); kernel side in messages")
    for name in ("shape", "tree", "copies/pkt", "instr/pkt", "instr/copy", "msgs/copy", "sendmmsg/copy"):
        table.add_column(name, justify="left" if name in ("shape", "tree") else "right")
    for r in rows:
        table.add_row(r["shape"], Path(r["tree"]).name, f"{r['copies_per_packet']:.1f}",
                      f"{r['instructions_per_packet']:,.0f}", f"{r['instructions_per_copy']:,.0f}",
                      f"{r['messages_per_copy']:.3f}", f"{r['sendmmsg_per_copy']:.4f}")
    Console(width=160).print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "machine": {"kernel": platform.release(), "cores": os.cpu_count(),
                                                         "python": platform.python_version(),
                                                         "load_average": os.getloadavg()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
