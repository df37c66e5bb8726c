"""The load test's figures: a live rich display, the summary table, the JSON report and the plot.

Definitions (docs/loadtest.md says more):
- received: RTP packets the synthetic consumers received and could unprotect, per second;
- loss: per consumer, expected (highest - first sequence number + 1, RFC 3550 A.3) minus
  received, over expected, summed over consumers;
- jitter: per consumer, RFC 3550's interarrival jitter of the transit time (send to arrival);
- latency: arrival (kernel timestamp) minus the send time each packet carries: the SFU's added
  latency plus loopback, SRTP protect on our side and the sender's socket;
- per worker: CPU share of one core and RSS from /proc, forwarded copies/s from /metrics.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadgen.harness.hub import KIND_AUDIO, KIND_VIDEO
from loadgen.harness.scenario import LoadtestError, Scenario

PERCENTILES = (50, 90, 99, 99.9)


def percentiles(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"samples": 0}
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)}
    return {"samples": int(len(values)), **out, "max": float(values.max()), "mean": float(values.mean())}


def _sum(slices: list[dict], key: str) -> int:
    return int(sum(s[key] for s in slices))


def _bucket(slices: list[dict]) -> dict:
    seconds = sum(s["seconds"] for s in slices) or 1e-9
    latency = np.concatenate([s["latency_ms"] for s in slices]) if slices else np.zeros(0)
    expected = _sum(slices, "expected")
    lost = _sum(slices, "lost")
    return {
        "t": round(slices[-1]["t"], 3),
        "steady": all(s["steady"] for s in slices),
        "joined": slices[-1]["joined"],
        "consumers": slices[-1]["consumers"],
        "received_pps": _sum(slices, "received") / seconds,
        "received_mbps": _sum(slices, "bytes") * 8 / seconds / 1e6,
        "sent_pps": _sum(slices, "sent") / seconds,
        "loss": lost / expected if expected else 0.0,
        "jitter_ms": slices[-1]["jitter_ms"],
        "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
        "latency_p99_ms": float(np.percentile(latency, 99)) if len(latency) else None,
    }


def per_second(slices: list[dict], readings: list[dict]) -> list[dict]:
    buckets: dict[int, list[dict]] = {}
    for s in slices:
        buckets.setdefault(int(s["t"]), []).append(s)
    out = []
    for second, group in sorted(buckets.items()):
        row = {"second": second, **_bucket(group)}
        inside = [r for r in readings if "workers" in r and second <= r["t_rel"] < second + 1]
        if inside:
            last = inside[-1]
            row["workers"] = [{"index": w["index"], "cpu": w.get("cpu_share"),
                               "rss_mb": w["rss_bytes"] / 2**20 if w.get("rss_bytes") else None,
                               "forwarded_pps": w.get("forwarded_pps")} for w in last["workers"]]
            row["harness_cpu"] = last.get("harness_cpu_share")
        out.append(row)
    return out


def worker_summary(readings: list[dict], start: float | None) -> list[dict]:
    window = [r for r in readings if "workers" in r and (start is None or r["t_rel"] >= start)]
    workers: dict = {}
    for reading in window:
        for w in reading["workers"]:
            workers.setdefault(w["index"], []).append((reading["t_rel"], w))
    out = []
    for index, series in sorted(workers.items(), key=lambda kv: str(kv[0])):
        shares = [w["cpu_share"] for _, w in series if w.get("cpu_share") is not None]
        rss = [w["rss_bytes"] for _, w in series if w.get("rss_bytes")]
        entry = {"index": index, "pid": series[-1][1].get("pid"),
                 "cpu_mean": float(np.mean(shares)) if shares else None,
                 "cpu_max": float(np.max(shares)) if shares else None,
                 "rss_mb_max": max(rss) / 2**20 if rss else None}
        forwarded = [(t, w["forwarded_packets"]) for t, w in series if w.get("forwarded_packets") is not None]
        if len(forwarded) >= 2 and forwarded[-1][0] > forwarded[0][0]:
            entry["forwarded_pps"] = (forwarded[-1][1] - forwarded[0][1]) / (forwarded[-1][0] - forwarded[0][0])
        out.append(entry)
    return out


def video_layers_received(hub, consumers: dict, start: np.ndarray | None, seconds: float) -> list[dict]:
    """Per simulcast layer asked for: video consumers, and the packets/s (and kbit/s, after SRTP) each
    received in the window: shows that the SFU forwards the layer each consumer asked for."""
    received = consumers["received"].astype(np.int64)
    if start is not None:
        received[: len(start)] -= start.astype(np.int64)
    # bytes over the whole run (the window's share would need a second snapshot): bit rate per packet
    size = consumers["bytes"] / np.maximum(consumers["received"], 1)
    kind = np.asarray(hub.consumer_kind, dtype=np.int8)
    layer = np.asarray(hub.consumer_layer, dtype=np.int16)
    out = []
    for value in sorted(set(layer[kind == KIND_VIDEO].tolist())):
        chosen = (kind == KIND_VIDEO) & (layer == value)
        pps = float(received[chosen].mean()) / seconds if seconds else 0.0
        out.append({"layer": int(value), "consumers": int(chosen.sum()), "pps_per_consumer": pps,
                    "kbps_per_consumer": pps * float(size[chosen].mean()) * 8 / 1000})
    return out


def build_report(scenario: Scenario, url: str, health: dict, slices: list[dict], readings: list[dict],
                 hub, errors: list[str], steady_start: float | None,
                 steady_start_received: np.ndarray | None = None) -> dict:
    steady = [s for s in slices if s["steady"]] or slices
    seconds = sum(s["seconds"] for s in steady)
    latency = np.concatenate([s["latency_ms"] for s in steady]) if steady else np.zeros(0)
    kinds = np.concatenate([s["latency_kind"] for s in steady]) if steady else np.zeros(0, np.int8)
    consumers = hub.media.consumer_stats()
    streams = hub.media.stream_stats()
    consumer_kind = np.asarray(hub.consumer_kind, dtype=np.int8)
    stream_kind = np.asarray(hub.stream_kind, dtype=np.int8)
    started = consumers["expected"] > 0
    jitter = consumers["jitter_ns"][started] / 1e6
    expected = _sum(steady, "expected")
    lost = _sum(steady, "lost")
    harness = [r["harness_cpu_share"] for r in readings
               if r.get("harness_cpu_share") is not None and (steady_start is None or r["t_rel"] >= steady_start)]
    totals = {
        "seconds": seconds,
        "participants": scenario.rooms * scenario.participants,
        "joined": slices[-1]["joined"] if slices else 0,
        "consumers": hub.media.consumer_count,
        "consumers_audio": int((consumer_kind == KIND_AUDIO).sum()),
        "consumers_video": int((consumer_kind == KIND_VIDEO).sum()),
        "consumers_receiving": int(started.sum()),
        "streams": hub.media.stream_count,
        "sent_packets": _sum(steady, "sent"),
        "sent_pps": _sum(steady, "sent") / seconds if seconds else 0.0,
        "received_packets": _sum(steady, "received"),
        "received_pps": _sum(steady, "received") / seconds if seconds else 0.0,
        "received_mbps": _sum(steady, "bytes") * 8 / seconds / 1e6 if seconds else 0.0,
        "expected_packets": expected,
        "lost_packets": lost,
        "loss": lost / expected if expected else 0.0,
        "jitter_ms": percentiles(jitter),
        "latency_ms": percentiles(latency),
        "latency_ms_audio": percentiles(latency[kinds == KIND_AUDIO]),
        "latency_ms_video": percentiles(latency[kinds == KIND_VIDEO]),
        "video_key_frames": int(streams["key_frames"][stream_kind == KIND_VIDEO].sum()) if len(stream_kind) else 0,
        "key_frame_requests": int(streams["key_requests"].sum()),
        "send_failed": int(streams["send_failed"].sum()),
        "skipped_frames": int(streams["skipped_frames"].sum()),
        "srtp_failures": _sum(slices, "srtp_failures"),
        "unknown_ssrc": _sum(slices, "unknown_ssrc"),
        "nacks_received": _sum(slices, "nacks"),
        "harness_cpu_mean": float(np.mean(harness)) if harness else None,
        "video_layers": video_layers_received(hub, consumers, steady_start_received, seconds),
    }
    return {
        "tool": "switchyard loadtest",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "scenario": {**scenario.as_dict(), "audio_stream": scenario.audio_stream(),
                     "video_layers": scenario.video_layers()},
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "load_average": list(os.getloadavg())},
        "server": {"workers": len(health.get("workers", []))},
        "steady_from_s": steady_start,
        "totals": totals,
        "workers": worker_summary(readings, steady_start),
        "per_second": per_second(slices, readings),
        "errors": errors[:50],
        "error_count": len(errors),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f}"


class Display:
    """The live progress table, refreshed after every slice (rich)."""

    def __init__(self, scenario: Scenario, participants: int):
        self.enabled = scenario.progress
        self.participants = participants
        self.recent: list[dict] = []
        self.live = Live(Table(), refresh_per_second=4, transient=True) if self.enabled else None
        self.started = time.monotonic()

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def note(self, message: str) -> None:
        """One line above the live table (or on stdout without it)."""
        if self.live is not None:
            self.live.console.print(message)
        else:
            print(message, flush=True)

    def update(self, entry: dict, reading: dict | None, errors: list[str]) -> None:
        self.recent = [*self.recent[-3:], entry]
        if self.live is None:
            return
        row = _bucket(self.recent)
        table = Table(title="switchyard loadtest", title_justify="left")
        for column in ("t s", "joined", "consumers", "rx pkt/s", "rx Mbit/s", "tx pkt/s", "loss", "jitter ms",
                       "p50 ms", "p99 ms", "workers CPU", "errors"):
            table.add_column(column, justify="right")
        cpu = "-"
        if reading and reading.get("workers"):
            cpu = " ".join(f"{100 * w['cpu_share']:.0f}%" for w in reading["workers"] if w.get("cpu_share") is not None)
        table.add_row(f"{entry['t']:.1f}", f"{row['joined']}/{self.participants}", str(row["consumers"]),
                      f"{row['received_pps']:,.0f}", f"{row['received_mbps']:.1f}", f"{row['sent_pps']:,.0f}",
                      f"{100 * row['loss']:.2f}%", _ms(row["jitter_ms"]), _ms(row["latency_p50_ms"]),
                      _ms(row["latency_p99_ms"]), cpu or "-", str(len(errors)))
        self.live.update(table)


def print_summary(report: dict, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)   # a log file or a pipe: no truncated figures
    t = report["totals"]
    lat = t["latency_ms"]
    table = Table(title=f"switchyard loadtest: {t['seconds']:.1f} s measured, {t['joined']}/{t['participants']} "
                        f"participants, {t['consumers']} consumers", title_justify="left")
    for column in ("rx pkt/s", "rx Mbit/s", "tx pkt/s", "loss", "jitter ms", "p50 ms", "p99 ms", "max ms",
                   "own CPU"):
        table.add_column(column, justify="right")
    table.add_row(f"{t['received_pps']:,.0f}", f"{t['received_mbps']:.1f}", f"{t['sent_pps']:,.0f}",
                  f"{100 * t['loss']:.3f}%", _ms(t["jitter_ms"].get("mean")), _ms(lat.get("p50")),
                  _ms(lat.get("p99")), _ms(lat.get("max")),
                  "-" if t["harness_cpu_mean"] is None else f"{100 * t['harness_cpu_mean']:.0f}%")
    console.print(table)
    layers = t.get("video_layers") or []
    if report["scenario"]["simulcast"] > 1 and layers:
        console.print("video consumers by simulcast layer asked for: " + ", ".join(
            f"layer {entry['layer']}: {entry['consumers']} at {entry['kbps_per_consumer']:,.0f} kbit/s"
            for entry in layers))
    floor = report.get("probe_floor_ms") or {}
    if floor.get("samples"):
        console.print(f"probe floor (our socket to our socket, no server): p50 {floor['p50']:.3f} ms, "
                      f"p99 {floor['p99']:.3f} ms")
    workers = Table(title="media workers", title_justify="left")
    for column in ("worker", "pid", "CPU mean", "CPU max", "RSS MiB", "forwarded pkt/s"):
        workers.add_column(column, justify="right")
    for w in report["workers"]:
        workers.add_row(str(w["index"]), str(w["pid"]),
                        "-" if w["cpu_mean"] is None else f"{100 * w['cpu_mean']:.0f}%",
                        "-" if w["cpu_max"] is None else f"{100 * w['cpu_max']:.0f}%",
                        "-" if w["rss_mb_max"] is None else f"{w['rss_mb_max']:.1f}",
                        f"{w['forwarded_pps']:,.0f}" if w.get("forwarded_pps") is not None else "-")
    console.print(workers)


def save_json(report: dict, path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w") as out:
        json.dump(report, out, indent=1)
    os.replace(temporary, path)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LoadtestError("--plot needs matplotlib: pip install 'switchyard[bench]'") from None


def save_plot(report: dict, path: str) -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["per_second"]
    t = [r["t"] for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    top.plot(t, [r["received_pps"] for r in rows], label="received pkt/s")
    top.plot(t, [r["sent_pps"] for r in rows], label="sent pkt/s")
    top.set_ylabel("packets/s")
    top.legend(loc="upper left")
    loss_axis = top.twinx()
    loss_axis.plot(t, [100 * r["loss"] for r in rows], color="tab:red", linestyle=":", label="loss %")
    loss_axis.set_ylabel("loss %")
    loss_axis.set_ylim(0, max([1.0] + [120 * r["loss"] for r in rows]))
    loss_axis.legend(loc="upper right")
    for key, label in (("latency_p50_ms", "latency p50"), ("latency_p99_ms", "latency p99"),
                       ("jitter_ms", "jitter (mean)")):
        middle.plot(t, [r[key] if r[key] is not None else np.nan for r in rows], label=label)
    middle.set_ylabel("ms")
    middle.legend(loc="upper left")
    indices = sorted({w["index"] for r in rows for w in r.get("workers", [])}, key=str)
    for index in indices:
        cpu = [next((100 * w["cpu"] for w in r.get("workers", []) if w["index"] == index and w["cpu"] is not None),
                    np.nan) for r in rows]
        bottom.plot(t, cpu, label=f"worker {index} CPU %")
    bottom.plot(t, [100 * r["harness_cpu"] if r.get("harness_cpu") is not None else np.nan for r in rows],
                label="harness CPU %", linestyle="--")
    bottom.set_ylabel("CPU % of a core")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left")
    if report.get("steady_from_s") is not None:
        for axis in (top, middle, bottom):
            axis.axvline(report["steady_from_s"], color="grey", linewidth=0.8)
    s = report["scenario"]
    fig.suptitle(f"switchyard loadtest: {s['rooms']} room(s) x {s['participants']} participants, "
                 f"simulcast {s['simulcast']}, {report['totals']['seconds']:.0f} s measured")
    fig.tight_layout()
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
