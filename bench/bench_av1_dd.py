"""What reading the AV1 dependency descriptor costs the fast path, in instructions per packet (callgrind).

One Forwarder runs in a child process under callgrind (collection on only inside
Forwarder.drain(), as bench_feedback_cost.py), on loopback sockets: one AV1 producer sending
an L1T3 stream (30 pictures/s pattern T0 T2 T1 T2, 1,000-byte packets, three per frame, each
with its dependency descriptor; the template structure on a key frame every 64 pictures) and
N AES-GCM video consumers that take every temporal layer, so both variants forward the same
copies:
- off: the descriptor is in the packets but not read (set_stream_dependency_descriptor not
       called): AV1 consumers then get the stream whole, as before this module;
- on:  the descriptor read per packet (fastpath/av1.pyx dd_apply), and the layer filter run
       per copy (svc.pxd), as for an AV1 L1T3 producer that negotiated it.
Each variant runs twice (warm-up rounds, then warm-up + measured rounds); the difference
excludes start-up. dd_apply's inclusive instructions per packet are read from the profile.

    .venv/bin/python bench/bench_av1_dd.py [--consumers 1 10] [--packets 6000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE = "AEAD_AES_128_GCM"
PACKET_SIZE = 1000
SSRC = 0x5EED0A01
PT = 45
DD_ID = 8
ROUND = 60                  # packets per round (20 frames of 3 packets), within one receive batch
WARMUP_ROUNDS = 4
VARIANTS = ("off", "on")
DRAIN_SYMBOL = "__pyx_pw_8fastpath_7receive_8Receiver_1drain"
DD_APPLY_SYMBOL = "__pyx_f_8fastpath_3av1_dd_apply"
TEMPLATES = {0: 1, 1: 3, 2: 2, 3: 4}   # picture % 4 -> Chromium's L1T3 template


def key(i: int) -> bytes:
    from fastpath.srtp import profile_key_lengths

    return bytes((7 * i + j) & 0xFF for j in range(sum(profile_key_lengths(PROFILE))))


def udp_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def packets(count: int) -> list[bytes]:
    """`count` RTP packets of the L1T3 stream, the descriptor in a two-byte header extension element."""
    from tests.av1_dd import L1T3, descriptor

    out = []
    for n in range(count):
        picture, index = divmod(n, 3)
        key_frame = picture % 64 == 0
        dd = descriptor(index == 0, index == 2, 0 if key_frame else TEMPLATES[picture % 4], picture & 0xFFFF,
                        structure=L1T3 if key_frame and index == 0 else None)
        element = bytes([DD_ID, len(dd)]) + dd
        element += bytes(-len(element) % 4)
        header = struct.pack("!BBHII", 0x90, (0x80 if index == 2 else 0) | PT, n & 0xFFFF, picture * 3000, SSRC)
        aggregation = bytes([(0x58 if key_frame else 0x50) if index == 0 else 0x90 if index == 2 else 0xD0])
        body = aggregation + bytes(PACKET_SIZE - len(header) - 4 - len(element) - 1)
        out.append(header + struct.pack("!HH", 0x1000, len(element) // 4) + element + body)
    return out


def child(consumers: int, variant: str, rounds: int) -> dict:
    from fastpath.codecs import CODEC_AV1
    from fastpath.route import Forwarder
    from fastpath.srtp import SrtpSession

    server, producer = udp_socket(1 << 20), udp_socket(1 << 20)
    sinks = [udp_socket(512 << 10) for _ in range(consumers)]
    fwd = Forwarder(server, lambda packets, events: None)
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, producer.getsockname())
    fwd.set_transport_srtp(t, SrtpSession(PROFILE, key(1), "inbound"), SrtpSession(PROFILE, key(2), "outbound"))
    stream = fwd.add_producer_stream(t, SSRC, 0, CODEC_AV1, 90000, 0, True)
    if variant == "on":
        fwd.set_stream_dependency_descriptor(stream, DD_ID)
    for i, sink in enumerate(sinks):
        ct = fwd.add_transport(1000 + i)
        fwd.set_transport_tuple(ct, sink.getsockname())
        fwd.set_transport_srtp(ct, SrtpSession(PROFILE, key(3), "inbound"),
                               SrtpSession(PROFILE, key(4 + i), "outbound"))
        c = fwd.add_consumer(ct, 0x10000 + i, 1, {PT: PT}, {DD_ID: DD_ID}, 0, CODEC_AV1, 90000, True, False,
                             0, temporal_layers=3, preferred_temporal=2)
        fwd.attach_stream(c, 0, stream)
    outbound = SrtpSession(PROFILE, key(1), "outbound")
    protected = [outbound.protect(p) for p in packets(rounds * ROUND)]
    dest = server.getsockname()
    delivered = 0
    for r in range(rounds):
        for p in protected[r * ROUND:(r + 1) * ROUND]:
            producer.sendto(p, dest)
        while fwd.drain():
            pass
        for sink in sinks:
            while True:
                try:
                    sink.recv(2048)
                    delivered += 1
                except BlockingIOError:
                    break
    counters = fwd.counters()
    return {"received": fwd.transport_stats(t)["rtpPacketsReceived"], "forwarded": counters["forwardedPackets"],
            "delivered": delivered, "drops": {k: v for k, v in counters["drops"].items() if v},
            "dd": fwd.dependency_descriptor_stats(stream)}


def run_child(consumers: int, variant: str, rounds: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(consumers), variant, str(rounds)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                   f"--toggle-collect={DRAIN_SYMBOL}", *command]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        totals = re.search(r"^(?:totals|summary):\s+(\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise RuntimeError("no totals in the callgrind output")
        result["instructions"] = int(totals.group(1))
        annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                                   capture_output=True, text=True, check=True).stdout
        result["dd_apply"] = 0
        for line in annotated.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S+:(\w+)", line)
            if m and m.group(2) == DD_APPLY_SYMBOL:
                result["dd_apply"] = max(result["dd_apply"], int(m.group(1).replace(",", "")))
    return result


def measure(consumers: int, variant: str, packet_count: int) -> dict:
    measured = max(1, round(packet_count / ROUND))
    short = run_child(consumers, variant, WARMUP_ROUNDS)
    long = run_child(consumers, variant, WARMUP_ROUNDS + measured)
    received = long["received"] - short["received"]
    forwarded = long["forwarded"] - short["forwarded"]
    if received != measured * ROUND or forwarded != received * consumers or long["delivered"] != long["forwarded"]:
        raise RuntimeError(f"{variant} x{consumers}: not every packet went through: {short} {long}")
    return {
        "consumers": consumers, "variant": variant, "received": received, "forwarded": forwarded,
        "per_packet": (long["instructions"] - short["instructions"]) / received,
        "per_copy": (long["instructions"] - short["instructions"]) / forwarded,
        "dd_apply_per_packet": (long["dd_apply"] - short["dd_apply"]) / received,
        "dd": long["dd"], "drops": long["drops"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--packets", type=int, default=6000)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    rows = [measure(n, variant, args.packets) for n in args.consumers for variant in VARIANTS]
    table = Table(title=f"AV1 dependency descriptor: fast-path instructions (callgrind, inside drain()), {PROFILE}")
    for column in ("consumers", "descriptor", "instr./packet", "instr./copy", "dd_apply/packet", "vs off"):
        table.add_column(column, justify="right")
    for row in rows:
        off = next(r for r in rows if r["consumers"] == row["consumers"] and r["variant"] == "off")
        table.add_row(str(row["consumers"]), row["variant"], f"{row['per_packet']:,.0f}", f"{row['per_copy']:,.0f}",
                      f"{row['dd_apply_per_packet']:,.1f}", f"{100 * (row['per_packet'] / off['per_packet'] - 1):+.2f} %")
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "av1-dd-cost.json"
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "platform": platform.platform()},
                               "packets": args.packets, "rows": rows}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
