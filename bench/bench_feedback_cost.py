"""What transport-cc feedback to a publisher costs the fast path, in instructions per packet (callgrind).

Wall-clock rates on this shared machine swing by a factor of three between
identical runs, far more than the few percent in question, so this counts
instructions instead: valgrind's callgrind, which is deterministic. One
Forwarder runs in a child process under callgrind, on loopback sockets, with
one producer and N AES-GCM consumers (1,200-byte packets, registered as audio,
as in bench_forward.py). Collection is on only inside Forwarder.drain()
(--toggle-collect on its C entry point), so the count is the fast path's
own work per received packet: receive, unprotect, fan-out, N x (rewrite,
protect), the sendmmsg calls, and with feedback on, logging each arrival and
building, protecting and queueing the feedbacks. Sending the input and
draining the consumer sockets happen outside it.

Three variants, the same packets otherwise:
- off:      plain probes, transport-cc off on the producer's transport (today's benchmark);
- numbered: probes with a transport-wide sequence number (header extension id 5),
            feedback still off: what the extension alone costs (the rewrite drops it per copy);
- on:       numbered probes and set_transport_incoming_feedback(producer, 5, False).

The input goes in rounds of 64 packets (one receive batch), each round
forwarded, then the consumer sockets drained until idle for 110 ms. A
feedback is due every 100 ms or once 100 packets wait; the pause makes the
100 ms rule fire at the first packet of every round and nothing else fire,
so "on" sends exactly one feedback per round (after the first) whatever
valgrind's slowdown: one per 64 packets, more often than the fast path sends
them at any input above 1,000 packets/s (one per 100 packets; below that, one
per 100 ms). The figures are therefore an upper bound for a busy worker.

Each configuration is run twice, with WARMUP rounds and with WARMUP + the
measured rounds; the difference excludes start-up (first packets of each
SRTP context, table growth). Callgrind counts user-space instructions only:
the kernel's share of a copy (most of the worker's CPU on loopback, see
docs/benchmarks.md) is not in them, which makes the relative cost of
feedback look larger than it is; the datagrams sent are reported for the
kernel's side. --native adds thread CPU time per copy measured without
valgrind (noisy on this machine; kernel send path included).

    .venv/bin/python bench/bench_feedback_cost.py [--consumers 100 1] [--packets 20000 20000]
        [--native 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE = "AEAD_AES_128_GCM"
PACKET_SIZE = 1200
PRODUCER_SSRC = 0x5EED0001
PAYLOAD_TYPE = 111
TWCC_EXT_ID = 5
ROUND = 64              # packets per round: the Forwarder's receive batch (UDP_DEFAULT_RX_SLOTS)
WARMUP_ROUNDS = 4
PAUSE_S = 0.11          # idle time after each round: more than the 100 ms feedback interval
VARIANTS = ("off", "numbered", "on")
# the C entry point of Receiver.drain (Forwarder inherits it); callgrind collects only inside it
DRAIN_SYMBOL = "__pyx_pw_8fastpath_7receive_8Receiver_1drain"
# the feedback's own work, and two per-packet stages to compare it with (inclusive instructions)
BREAKDOWN = {
    "find_extension": "__pyx_f_8fastpath_3rtp_find_extension",
    "arrival_log_record": "__pyx_f_8fastpath_10congestion_arrival_log_record",
    "arrival_log_due": "__pyx_f_8fastpath_10congestion_arrival_log_due",
    "_send_transport_feedback": "__pyx_f_8fastpath_8feedback_8Feedback__send_transport_feedback",
    "unprotect_rtp": "__pyx_f_8fastpath_4srtp_11SrtpSession_unprotect_rtp",
    "rewrite_rtp_to": "__pyx_f_8fastpath_7rewrite_rewrite_rtp_to",
    "protect_rtp": "__pyx_f_8fastpath_4srtp_11SrtpSession_protect_rtp",
    "flush": "__pyx_f_8fastpath_3udp_14UdpBatchSocket_flush",
}
# called one after the other from _handle_rtp (none inside another): their sum is the feedback's work
FEEDBACK_WORK = ("find_extension", "arrival_log_record", "arrival_log_due", "_send_transport_feedback")


# ---- the child: one Forwarder, driven round by round ------------------------------------------


def key(i: int) -> bytes:
    """A fixed key per context, so that every run does exactly the same work."""
    from fastpath.srtp import profile_key_lengths

    return bytes((7 * i + j) & 0xFF for j in range(sum(profile_key_lengths(PROFILE))))


def udp_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def child(consumers: int, variant: str, rounds: int, pause_s: float) -> dict:
    from fastpath.codecs import CODEC_OPUS
    from fastpath.route import Forwarder
    from fastpath.srtp import SrtpSession
    from loadgen.probes import receive_rtp, send_rtp

    server, producer = udp_socket(1 << 20), udp_socket(1 << 20)
    sinks = [udp_socket(512 << 10) for _ in range(consumers)]
    fwd = Forwarder(server, lambda packets, events: None)
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, producer.getsockname())
    fwd.set_transport_srtp(t, SrtpSession(PROFILE, key(1), "inbound"), SrtpSession(PROFILE, key(2), "outbound"))
    if variant == "on":
        fwd.set_transport_incoming_feedback(t, TWCC_EXT_ID, False)
    stream = fwd.add_producer_stream(t, PRODUCER_SSRC, 0, CODEC_OPUS, 48000, 0, False)
    for i, sink in enumerate(sinks):
        ct = fwd.add_transport(1000 + i)
        fwd.set_transport_tuple(ct, sink.getsockname())
        fwd.set_transport_srtp(ct, SrtpSession(PROFILE, key(3), "inbound"),
                               SrtpSession(PROFILE, key(4 + i), "outbound"))
        c = fwd.add_consumer(ct, 0x10000 + i, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS, 48000, False, False)
        fwd.attach_stream(c, 0, stream)
    outbound = SrtpSession(PROFILE, key(1), "outbound")
    dest = server.getsockname()
    seq, delivered, feedbacks_received, drain_cpu_ns = 0, 0, 0, 0
    for _ in range(rounds):
        sent = send_rtp(producer, dest, outbound, PRODUCER_SSRC, PAYLOAD_TYPE, PACKET_SIZE, 0, 60.0,
                        first_seq=seq, clock_rate=48000, count=ROUND,
                        twcc_ext_id=0 if variant == "off" else TWCC_EXT_ID)
        seq = sent["next_seq"]
        started = time.thread_time_ns()
        while fwd.drain():
            pass
        drain_cpu_ns += time.thread_time_ns() - started
        got = receive_rtp(sinks, None, 60.0, 0, stop_when_idle=pause_s)
        delivered += got["packets"]
        while True:
            try:
                producer.recv(2048)
                feedbacks_received += 1
            except BlockingIOError:
                break
    counters = fwd.counters()
    return {
        "received": fwd.transport_stats(t)["rtpPacketsReceived"],
        "forwarded": counters["forwardedPackets"],
        "delivered": delivered,
        "feedbacks_sent": fwd.transport_stats(t)["incomingFeedbacks"],
        "feedbacks_received": feedbacks_received,
        "drops": {k: v for k, v in counters["drops"].items() if v},
        "tx_datagrams": counters["socket"]["tx_packets"],
        "tx_messages": counters["socket"]["tx_messages"],
        "tx_batches": counters["socket"]["tx_batches"],
        "drain_cpu_ns": drain_cpu_ns,
    }


# ---- the parent: run the children, under callgrind and without ---------------------------------


def run_child(consumers: int, variant: str, rounds: int, pause_s: float, valgrind: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(consumers), variant, str(rounds),
               str(pause_s)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        if valgrind:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                       f"--toggle-collect={DRAIN_SYMBOL}", *command]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if valgrind:
            totals = re.search(r"^(?:totals|summary):\s+(\d+)", out.read_text(), re.MULTILINE)
            if totals is None:
                raise RuntimeError("no totals in the callgrind output")
            result["instructions"] = int(totals.group(1))
            result["functions"] = inclusive_costs(out)
    return result


def inclusive_costs(path: Path) -> dict:
    """Inclusive instructions of the BREAKDOWN functions in a callgrind output (0 if never called)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)],
                          capture_output=True, text=True, check=True).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S+:(\w+)", line)
        if m:
            found[m.group(2)] = max(found.get(m.group(2), 0), int(m.group(1).replace(",", "")))
    return {name: found.get(symbol, 0) for name, symbol in BREAKDOWN.items()}


def measure(consumers: int, variant: str, packets: int, pause_s: float) -> dict:
    """Instructions per received packet over `packets`, start-up excluded by difference."""
    measured = max(1, round(packets / ROUND))
    short = run_child(consumers, variant, WARMUP_ROUNDS, pause_s, True)
    long = run_child(consumers, variant, WARMUP_ROUNDS + measured, pause_s, True)
    received = long["received"] - short["received"]
    forwarded = long["forwarded"] - short["forwarded"]
    if received != measured * ROUND or forwarded != received * consumers or long["delivered"] != long["forwarded"]:
        raise RuntimeError(f"{variant} x{consumers}: not every packet went through: {short} {long}")
    instructions = long["instructions"] - short["instructions"]
    row = {
        "consumers": consumers, "variant": variant, "received": received, "forwarded": forwarded,
        "instructions": instructions,
        "per_packet": instructions / received,
        "per_copy": instructions / forwarded,
        "feedbacks": long["feedbacks_sent"] - short["feedbacks_sent"],
        "datagrams_per_packet": (long["tx_datagrams"] - short["tx_datagrams"]) / received,
        "messages_per_packet": (long["tx_messages"] - short["tx_messages"]) / received,
        "sendmmsg_per_packet": (long["tx_batches"] - short["tx_batches"]) / received,
        # inclusive instructions per received packet of each stage (calls nest: do not add them up)
        "functions_per_packet": {name: (long["functions"][name] - short["functions"][name]) / received
                                 for name in BREAKDOWN},
        "runs": None,
    }
    row["feedback_work_per_packet"] = sum(row["functions_per_packet"][name] for name in FEEDBACK_WORK)
    row["runs"] = {"short": short, "long": long}
    return row


def native(consumers: int, packets: int, repeat: int) -> dict:
    """Thread CPU ns per copy inside drain() without valgrind, variants interleaved, median of repeat.

    No pause: feedback goes out as in service (every 100 packets at these rates)."""
    rounds = max(1, round(packets / ROUND))
    samples = {v: [] for v in VARIANTS}
    feedbacks = {}
    for _ in range(repeat):
        for variant in VARIANTS:
            r = run_child(consumers, variant, rounds, 0.002, False)
            samples[variant].append(r["drain_cpu_ns"] / r["forwarded"])
            feedbacks[variant] = r["feedbacks_sent"]
    return {
        "consumers": consumers, "packets": rounds * ROUND, "repeat": repeat,
        "ns_per_copy": {v: statistics.median(s) for v, s in samples.items()},
        "samples": samples, "feedbacks_last_run": feedbacks,
    }


def machine_info() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor())
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    from fastpath.srtp import libsrtp_version

    return {"cpu_model": model, "kernel": platform.release(), "cores": os.cpu_count(),
            "python": platform.python_version(), "libsrtp": libsrtp_version(), "valgrind": valgrind,
            "load_average_at_end": os.getloadavg()}


def print_table(console, rows: list[dict], natives: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"Fast-path instructions (callgrind, inside drain()), {PROFILE}, {PACKET_SIZE}-byte packets")
    for name in ("N", "variant", "packets", "feedbacks", "instr/packet", "instr/copy", "vs off",
                 "vs numbered", "feedback work/packet", "datagrams/packet", "messages/packet"):
        table.add_column(name, justify="left" if name == "variant" else "right")
    for n in sorted({r["consumers"] for r in rows}, reverse=True):
        mine = {r["variant"]: r for r in rows if r["consumers"] == n}
        for variant in VARIANTS:
            r = mine[variant]
            table.add_row(
                str(n), variant, f"{r['received']:,}", f"{r['feedbacks']:,}", f"{r['per_packet']:,.0f}",
                f"{r['per_copy']:,.0f}", f"{100 * (r['per_copy'] / mine['off']['per_copy'] - 1):+.2f}%",
                f"{100 * (r['per_copy'] / mine['numbered']['per_copy'] - 1):+.2f}%",
                f"{r['feedback_work_per_packet']:,.0f}",
                f"{r['datagrams_per_packet']:.4f}", f"{r['messages_per_packet']:.4f}",
            )
    console.print(table)
    console.print(
        "off: plain probes, no transport-cc; numbered: transport-wide sequence number in every probe, feedback "
        "off; on: numbered + feedback to the producer, one per 64 packets (above 1,000 packets/s the fast path "
        "sends one per 100, so there this is an upper bound). User-space instructions only: the kernel's share of each copy is not "
        "counted. feedback work: find the element, log the arrival, check the timer, build + protect + queue the "
        "feedback (inclusive, per received packet). datagrams/packet: what the worker sends per received packet "
        "(copies + feedbacks); messages/packet: sendmmsg entries, a GSO message holding several copies.")
    for nat in natives:
        ns = nat["ns_per_copy"]
        console.print(
            f"Without valgrind, {nat['consumers']} consumer(s), thread CPU per copy inside drain() (median of "
            f"{nat['repeat']}, noisy): off {ns['off']:.0f} ns, numbered {ns['numbered']:.0f} ns, on {ns['on']:.0f} ns "
            f"({100 * (ns['on'] / ns['off'] - 1):+.1f}% vs off)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", nargs="+", type=int, default=[100, 1])
    parser.add_argument("--packets", nargs="+", type=int, default=[20_000],
                        help="received packets measured, per consumer count (one value: all)")
    parser.add_argument("--native", type=int, default=0, metavar="REPEAT",
                        help="also measure thread CPU time per copy without valgrind, REPEAT runs each")
    parser.add_argument("--output", default=str(RESULTS / "feedback-cost.json"))
    args = parser.parse_args()
    if len(args.packets) not in (1, len(args.consumers)):
        parser.error("--packets takes one value or one per consumer count")
    packets = args.packets * len(args.consumers) if len(args.packets) == 1 else args.packets
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    rows, natives = [], []
    for n, count in zip(args.consumers, packets, strict=True):
        for variant in VARIANTS:
            r = measure(n, variant, count, PAUSE_S)
            rows.append(r)
            console.print(f"{variant} x{n}: {r['per_packet']:,.0f} instructions/packet, {r['per_copy']:,.0f}/copy, "
                          f"{r['feedbacks']} feedbacks  ({time.perf_counter() - started:.0f} s)")
        if args.native:
            natives.append(native(n, count, args.native))
    print_table(console, rows, natives)
    summary = {}
    for n in args.consumers:
        mine = {r["variant"]: r["per_copy"] for r in rows if r["consumers"] == n}
        summary[str(n)] = {"instructions_per_copy": mine,
                           "on_vs_off": mine["on"] / mine["off"], "on_vs_numbered": mine["on"] / mine["numbered"]}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "feedback-cost",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "profile": PROFILE, "packet_size": PACKET_SIZE, "round_packets": ROUND,
        "warmup_rounds": WARMUP_ROUNDS, "pause_s": PAUSE_S, "twcc_ext_id": TWCC_EXT_ID,
        "collected_in": DRAIN_SYMBOL,
        "summary": summary, "rows": rows, "native": natives,
        "elapsed_s": time.perf_counter() - started,
    }, indent=2) + "\n")
    console.print(f"({time.perf_counter() - started:.0f} s) saved {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))))
    else:
        main()
