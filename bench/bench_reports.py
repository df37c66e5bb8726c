"""What the periodic RTCP reports cost the worker's loop: one call of Forwarder.send_reports().

The engine sends every transport's receiver and sender reports once a second. In a room every
consumer has a sender report: a room of 64 (`switchyard loadtest`'s shape, bench_fastpath_cost.py's
room-P: each participant consumes every other's audio and lowest layer, 8,064 consumers on 128
transports) has 8,064 of them, and whatever one call takes, the loop forwards nothing meanwhile.
Per room size this builds the room on one Forwarder (loopback, AES-CM), forwards two rounds of
input, then times send_reports() called as the engine calls it (`--parts` calls a second, each for
a share of the transports) and as one call for all, and counts the datagrams and sendmmsg messages
one full round of reports takes.

    PYTHONPATH=. .venv/bin/python bench/bench_reports.py [--participants 16 32 48 64] [--parts 10]

With --parts 1 it runs on a tree from before the reports were split and made compound (copy this
script there and run it with that tree first on PYTHONPATH), for before/after figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from bench_fastpath_cost import room_forwarder
from bench_forward import machine_info
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS = 20  # full rounds of reports timed per configuration


def time_reports(fwd, parts: int) -> dict:
    """Milliseconds per send_reports() call over ROUNDS full rounds, and what a round sent."""
    before = fwd.counters()["socket"]
    calls = []
    for _ in range(ROUNDS):
        for part in range(parts):
            started = time.perf_counter_ns()
            if parts == 1:
                fwd.send_reports()  # as a tree from before the parts existed takes it (--parts 1)
            else:
                fwd.send_reports(part, parts)
            calls.append((time.perf_counter_ns() - started) / 1e6)
            time.sleep(0.002)
    after = fwd.counters()["socket"]
    return {"parts": parts, "call_ms_p50": float(np.median(calls)), "call_ms_max": float(max(calls)),
            "round_ms": float(np.sum(calls)) / ROUNDS,
            "datagrams_per_round": (after["tx_packets"] - before["tx_packets"]) / ROUNDS,
            "messages_per_round": (after["tx_messages"] - before["tx_messages"]) / ROUNDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", nargs="+", type=int, default=[16, 32, 48, 64])
    parser.add_argument("--parts", type=int, default=10, help="calls a report interval, as media/engine/core.py")
    parser.add_argument("--output", default=str(RESULTS / "reports.json"))
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    rows = []
    for participants in args.participants:
        fwd, sockets, _, _ = room_forwarder(participants, 2)
        consumers = participants * (participants - 1) * 2
        for parts in sorted({1, args.parts}):
            rows.append({"participants": participants, "consumers": consumers, **time_reports(fwd, parts)})
        for s in sockets:
            s.close()
    table = Table(title="Forwarder.send_reports(): one call, and one full round of reports")
    for column in ("participants", "consumers", "calls a round", "call p50 ms", "call max ms", "round ms",
                   "datagrams a round", "messages a round"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["participants"]), f"{r['consumers']:,}", str(r["parts"]), f"{r['call_ms_p50']:.2f}",
                      f"{r['call_ms_max']:.2f}", f"{r['round_ms']:.2f}", f"{r['datagrams_per_round']:,.0f}",
                      f"{r['messages_per_round']:,.0f}")
    Console(width=160).print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "reports", "machine": machine_info(), "rows": rows}, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
