"""What the server's media workers spend: CPU and memory per worker, and what they forwarded.

`GET /api/health` names each worker and its pid; `/metrics` has each
worker's forwarded copies (switchyard_worker_forwarded_packets, refreshed
every 2 s) and CPU seconds. CPU and memory (RSS) are read from
/proc/<pid>/stat and /proc/<pid>/status, exact at each reading, since the
harness only tests a server on this machine (/metrics' CPU counter is the
fallback). The harness' own process is measured too, since on a small
machine it competes with the server for the same cores.
"""

from __future__ import annotations

import os
import resource
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=3)


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (/proc/<pid>/stat fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerObserver:
    def __init__(self, url: str, server_pid: int | None = None):
        self.url = url.rstrip("/")
        self.server_pid = server_pid
        self.session: aiohttp.ClientSession | None = None
        self._last: dict | None = None

    async def health(self) -> dict:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        async with self.session.get(self.url + "/api/health") as response:
            return await response.json(content_type=None)

    async def metrics(self) -> dict[str, dict[str, float]]:
        """Per worker index: cpu_seconds and forwarded_packets from /metrics."""
        async with self.session.get(self.url + "/metrics") as response:
            text = await response.text()
        out: dict[str, dict[str, float]] = {}
        wanted = {"switchyard_worker_cpu_seconds": "cpu_seconds",
                  "switchyard_worker_forwarded_packets": "forwarded_packets"}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = wanted.get(sample.name.removesuffix("_total"))
                if name and "worker" in sample.labels:
                    out.setdefault(sample.labels["worker"], {})[name] = sample.value
        return out

    async def sample(self) -> dict:
        """One reading: per worker CPU share and forwarded copies/s since the last reading, and RSS."""
        now = time.monotonic()
        try:
            health = await self.health()
            metrics = await self.metrics()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {"t": now, "error": f"server unreachable: {exc or type(exc).__name__}"}
        workers = []
        for entry in health.get("workers", []):
            index = str(entry.get("index"))
            pid = entry.get("pid")
            counters = metrics.get(index, {})
            # /proc is exact at each reading; /metrics is refreshed every 2 s
            cpu = cpu_seconds(pid) if pid else None
            if cpu is None:
                cpu = counters.get("cpu_seconds")
            workers.append({"index": entry.get("index"), "pid": pid, "status": entry.get("status"),
                            "rooms": entry.get("rooms"), "cpu_seconds": cpu,
                            "forwarded_packets": counters.get("forwarded_packets"),
                            "rss_bytes": rss_bytes(pid) if pid else None})
        reading = {"t": now, "workers": workers, "harness_cpu_seconds": own_cpu_seconds(),
                   "harness_rss_bytes": rss_bytes(os.getpid())}
        if self.server_pid:
            reading["server_cpu_seconds"] = cpu_seconds(self.server_pid)
            reading["server_rss_bytes"] = rss_bytes(self.server_pid)
        self._rates(reading)
        self._last = reading
        return reading

    def _rates(self, reading: dict) -> None:
        last = self._last
        if last is None:
            return
        dt = reading["t"] - last["t"]
        if dt <= 0:
            return
        before = {w["index"]: w for w in last["workers"]}
        for worker in reading["workers"]:
            prev = before.get(worker["index"])
            if prev is None:
                continue
            if worker["cpu_seconds"] is not None and prev["cpu_seconds"] is not None:
                worker["cpu_share"] = (worker["cpu_seconds"] - prev["cpu_seconds"]) / dt
            if worker["forwarded_packets"] is not None and prev["forwarded_packets"] is not None:
                worker["forwarded_pps"] = (worker["forwarded_packets"] - prev["forwarded_packets"]) / dt
        reading["harness_cpu_share"] = (reading["harness_cpu_seconds"] - last["harness_cpu_seconds"]) / dt
        if reading.get("server_cpu_seconds") is not None and last.get("server_cpu_seconds") is not None:
            reading["server_cpu_share"] = (reading["server_cpu_seconds"] - last["server_cpu_seconds"]) / dt

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
