"""The latency tail at half the maximum rate: the histogram, and what the worker did when it was long.

Issue 16 asks for p99 <= 2x p50 at half the maximum input rate, 100 and 500 consumers. bench_forward.py
gives the two percentiles; this script shows where the tail comes from. Per consumer count, with the
same rig as bench_forward.py (worker on core 0, producer and receiver on core 1, kernel arrival
stamps): the maximum input rate with loss <= 0.1 % is found as bench_forward.py finds it, then
--repeat runs at --fraction of it keep every sampled copy's latency and a log of every drain() the
worker made (its start, its length, the input packets it read).

Printed and saved (bench/results/tail.json, tail.png): the latency percentiles and histogram; the
share of copies later than twice the median and how many separate episodes they come in (copies
more than 20 samples apart start a new one); the drains by input packets held; how long a drain of
one packet takes (median, p99) and how many such drains took over twice their median: a drain
that reads one packet and still runs long was held up inside (kernel, hypervisor, another
process), while a drain that reads several is the queue that such a hold-up leaves behind; and
how often the producer's own pacing woke up more than 0.5 ms late and sent what had fallen due
back to back (input bunched before the worker ever saw it).

Each consumer count runs twice, within the same minutes: with the host as it is (--host default)
and tuned (--host tuned: /dev/cpu_dma_latency held at 0 so idle vCPUs poll instead of halting, and
the producer in SCHED_FIFO so it preempts the receiver on their shared core when a packet is due;
bench/host_latency.py says why). Neither changes the worker.

    .venv/bin/python bench/bench_tail.py [--consumers 100 500] [--seconds 5] [--repeat 2] [--host default tuned]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_forward import RESULTS, Rig, Session, machine_info, measure_configuration
from host_latency import hold_cpu_dma_latency, idle_driver, scheduling_policy
from rich.console import Console
from rich.table import Table

PROFILE = "AES_CM_128_HMAC_SHA1_80"
# --host tuned: the producer's SCHED_FIFO priority and the PM QoS wake-up latency held (us)
TUNED_PRODUCER_FIFO_PRIORITY, TUNED_CPU_DMA_LATENCY_US = 10, 0
# copies more than this many samples apart belong to different late episodes
EPISODE_GAP = 20
HIST_EDGES_MS = np.linspace(0.0, 3.0, 121)


def episodes(late: np.ndarray) -> list[int]:
    """Sizes of the runs of late samples (indices into the arrival-ordered sample array)."""
    idx = np.nonzero(late)[0]
    if not len(idx):
        return []
    return [len(run) for run in np.split(idx, np.nonzero(np.diff(idx) > EPISODE_GAP)[0] + 1)]


def drain_summary(rows: np.ndarray, seconds: float) -> dict:
    """What the worker's drains looked like: by input packets, and one-packet drains held up inside."""
    lengths_us, packets = rows[:, 1] / 1e3, rows[:, 2]
    one = lengths_us[packets == 1]
    median_one = float(np.median(one)) if len(one) else 0.0
    held = one[one > 2 * median_one] if len(one) else one
    counts = np.bincount(np.minimum(packets, 16))
    return {
        "drains": len(rows),
        "by_input_packets": {str(k) if k < 16 else "16+": int(v) for k, v in enumerate(counts) if v and k},
        "one_packet_us_p50": median_one,
        "one_packet_us_p99": float(np.percentile(one, 99)) if len(one) else None,
        "one_packet_us_max": float(one.max()) if len(one) else None,
        "one_packet_held_up": len(held),
        "held_up_per_second": len(held) / seconds,
        "held_up_us": sorted(float(x) for x in held)[-10:],
    }


def measure(rig: Rig, n: int, seconds: float, repeat: int, fraction: float, host: dict) -> list[dict]:
    best = measure_configuration(rig, PROFILE, n, 1.0, 1)["max"]["input_pps"]
    rate = fraction * best
    runs = []
    for repetition in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "drains.npy")
            session = Session(rig, PROFILE, n, 1, drain_log=log)
            try:
                session.run(min(1000.0, rate), 0.3)  # warm up
                started = time.monotonic_ns()
                r = session.run(rate, seconds, keep_latencies=True)
            finally:
                session.close()  # the worker writes its drain log on "stop"
            rows = np.load(log)
        rows = rows[rows[:, 0] >= started]
        lat = r.pop("latencies_ms")
        p50 = float(np.percentile(lat, 50))
        late = lat > 2 * p50
        hist, _ = np.histogram(np.clip(lat, 0, HIST_EDGES_MS[-1] - 1e-9), bins=HIST_EDGES_MS)
        runs.append({
            "consumers": n, "host": host, "repetition": repetition, "max_input_pps": best, "input_pps": r["input_pps"],
            "worker_cpu": r["worker_cpu"], "loss": r["loss"], "latency_ms": r["latency_ms"],
            "producer_late_per_second": r["producer_late_sends"] / seconds,
            "producer_max_late_us": r["producer_max_late_us"],
            "p99_over_p50": r["latency_ms"]["p99"] / p50,
            "late_share": float(late.mean()), "late_episodes": len(episodes(late)),
            "late_episode_sizes": sorted(episodes(late))[-10:],
            "hist_edges_ms": HIST_EDGES_MS.tolist(), "hist_percent": (100 * hist / len(lat)).round(4).tolist(),
            "drains": drain_summary(rows, seconds),
        })
    return runs


def print_runs(console: Console, runs: list[dict]) -> None:
    table = Table(title=f"Latency at half the maximum rate, 1 producer -> N consumers, {PROFILE}")
    for column in ("N", "host", "in pps", "CPU", "p50 ms", "p90 ms", "p99 ms", "p99/p50", "late copies",
                   "episodes", "1-pkt drain us", "held up /s", "producer late /s", "drains by packets"):
        table.add_column(column, justify="right")
    for r in runs:
        lat, d = r["latency_ms"], r["drains"]
        table.add_row(str(r["consumers"]), r["host"]["name"], f"{r['input_pps']:,.0f}", f"{100 * r['worker_cpu']:.0f}%",
                      f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{r['p99_over_p50']:.1f}x",
                      f"{100 * r['late_share']:.2f}%", str(r["late_episodes"]),
                      f"{d['one_packet_us_p50']:.0f} / {d['one_packet_us_p99']:.0f}",
                      f"{d['held_up_per_second']:.1f}",
                      f"{r['producer_late_per_second']:.1f} (max {r['producer_max_late_us'] / 1e3:.1f} ms)",
                      " ".join(f"{k}:{v}" for k, v in list(d["by_input_packets"].items())[:6]))
    console.print(table)
    console.print("host: default (as the machine is) or tuned (PM QoS 0 us held, the producer in SCHED_FIFO); "
                  "late copies: later than 2x the median; episodes: separate runs of late copies; 1-pkt drain: "
                  "median / p99 length of a drain that read one input packet; held up: such drains over twice "
                  "their median, per second; producer late: the input's pacing woke up over 0.5 ms behind schedule and "
                  "sent what fell due back to back.")


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    counts = sorted({r["consumers"] for r in runs})
    fig, axes = plt.subplots(1, len(counts), figsize=(5.5 * len(counts), 4), squeeze=False)
    for ax, n in zip(axes[0], counts, strict=True):
        for r in (r for r in runs if r["consumers"] == n):
            edges, lat = np.array(r["hist_edges_ms"]), r["latency_ms"]
            ax.step(edges[1:], r["hist_percent"], where="pre", linestyle="--" if r["host"]["name"] == "default" else "-",
                    label=f"{r['host']['name']} {r['repetition'] + 1}: p50 {lat['p50']:.2f}, p99 {lat['p99']:.2f} ms "
                          f"({r['p99_over_p50']:.1f}x)")
        ax.set_yscale("log")
        ax.set_xlabel("copy latency, ms (send to kernel arrival; last bin: >= 3 ms)")
        ax.set_ylabel("% of sampled copies per 25 us")
        ax.set_title(f"1 -> {n} consumers at half the max rate", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def measure_host(n: int, args, tuned: bool) -> list[dict]:
    """The runs for n consumers on a fresh rig, with the host tuned (--host tuned) or as it is."""
    qos = hold_cpu_dma_latency(TUNED_CPU_DMA_LATENCY_US) if tuned else None
    rig = Rig(n, producer_realtime_priority=TUNED_PRODUCER_FIFO_PRIORITY if tuned else 0)
    try:
        host = {"name": "tuned" if tuned else "default", "cpu_dma_latency_held": qos is not None}
        runs = measure(rig, n, args.seconds, args.repeat, args.fraction, host)
        # read once the producer has served requests (it sets its policy as it starts)
        host["producer_policy"] = scheduling_policy(rig.processes[1].pid)
        return runs
    finally:
        rig.close()
        if qos is not None:
            qos.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consumers", nargs="+", type=int, default=[100, 500])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.5, help="of the maximum input rate")
    parser.add_argument("--host", nargs="+", choices=("default", "tuned"), default=["default", "tuned"],
                        help="tuned: hold /dev/cpu_dma_latency at 0 and run the producer in SCHED_FIFO")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    if not 0 < args.fraction <= 1 or args.repeat < 1 or not 0 < args.seconds <= 60:
        parser.error("--fraction in (0, 1], --repeat >= 1, --seconds in (0, 60]")
    console = Console(width=200)
    load_at_start = os.getloadavg()
    runs: list[dict] = []
    for n in args.consumers:
        for host in args.host:  # both settings for one consumer count within the same minutes
            runs += measure_host(n, args, host == "tuned")
    print_runs(console, runs)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tail.json").write_text(json.dumps({
        "benchmark": "tail", "profile": PROFILE, "fraction_of_max": args.fraction, "seconds_per_run": args.seconds,
        "machine": {**machine_info(), "load_average_at_start": load_at_start, "cpuidle": idle_driver()},
        "runs": runs,
    }, indent=1))
    plot(runs, out / "tail.png")
    console.print(f"saved {out / 'tail.json'} and {out / 'tail.png'}")


if __name__ == "__main__":
    main()
