"""How long a worker slot of a real node is down after SIGKILL: with a warm standby and without.

Starts two `switchyard serve` nodes side by side (SQLite in a temporary folder, loopback, 2 workers
each), one with standbys (the default), one with SWITCHYARD_WORKER_STANDBY=0, and `--kills` times
in each, the two taking turns so that both meet the same load: waits until the slot is ready (its
standby up, when standbys are on: /metrics `switchyard_worker_standby` 1), SIGKILLs worker 0 and polls /api/health every 5 ms until worker 0 is `ok` with a new pid. Health
is `ok` only when the new worker answered a `worker.dump` over its channel, so the time is from the
kill to the slot serving requests again, as a client's join would see it (poll interval included).
SWITCHYARD_WORKER_RESPAWN_WINDOW=1 and kills at least 1.5 s apart: every death is the first in its
window, so no backoff is measured.

`--load N` runs N busy-looping processes beside it for the whole run (the machine has 2 cores:
N=6 gives a load average near 8), to see what a loaded machine does to each path; the 1-minute
load average is recorded with each kill. Results in bench/results/respawn.json (respawn-load<N>.json
with `--load N`, or `--output NAME`).

    PYTHONPATH=. .venv/bin/python bench/bench_respawn.py [--kills 10] [--load 0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from loadgen.harness.spawn import free_port_range

RESULTS = Path(__file__).resolve().parent / "results"
POLL_SECONDS = 0.005


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 while a worker is down: the same shape
        return json.loads(error.read())


def metric(base_url: str, line_start: str) -> float | None:
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
    return None


def spin() -> None:
    while True:
        pass


class Node:
    def __init__(self, standby: bool, folder: str):
        base = free_port_range(4)
        self.url = f"http://127.0.0.1:{base}"
        env = {**os.environ, "SWITCHYARD_WORKER_STANDBY": "1" if standby else "0",
               "SWITCHYARD_WORKER_RESPAWN_WINDOW": "1", "SWITCHYARD_WORKER_RESPAWN_LIMIT": "1000"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(base),
             "--signaling-port", "0", "--rtc-port-base", str(base + 2), "--workers", "2",
             "--announced-ip", "127.0.0.1", "--database-url", f"sqlite+aiosqlite:///{folder}/s.db",
             "--log-level", "warning"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.standby = standby
        try:
            self.until(lambda: get_json(self.url + "/api/health")["status"] == "ok", 60)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def until(self, condition, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited: {self.process.stderr.read()}")
            try:
                if condition():
                    return
            except (OSError, http.client.HTTPException):  # not listening yet
                pass
            time.sleep(0.05)
        raise RuntimeError("timed out")

    def kill_and_time(self) -> float:
        if self.standby:
            self.until(lambda: metric(self.url, 'switchyard_worker_standby{worker="0"}') == 1.0, 60)
        old = get_json(self.url + "/api/health")["workers"][0]
        assert old["status"] == "ok", old
        killed = time.monotonic()
        os.kill(old["pid"], signal.SIGKILL)
        while True:
            entry = get_json(self.url + "/api/health")["workers"][0]
            if entry["status"] == "ok" and entry["pid"] != old["pid"]:
                return time.monotonic() - killed
            if time.monotonic() - killed > 30:
                raise RuntimeError(f"worker 0 not back after 30 s: {entry}")
            time.sleep(POLL_SECONDS)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=30)
        return err


def run(kills: int) -> list[dict]:
    """Both nodes side by side, their kills taking turns, so both meet the same load."""
    rows: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        nodes = []
        try:
            for standby in (True, False):
                Path(folder, str(standby)).mkdir()
                nodes.append(Node(standby, f"{folder}/{standby}"))
            for _ in range(kills):
                for node in nodes:
                    time.sleep(1.5)  # past the 1 s respawn window: no backoff
                    seconds = node.kill_and_time()
                    rows[node.standby].append({"seconds": round(seconds, 4), "load1": os.getloadavg()[0]})
        finally:
            errors = [node.stop() for node in nodes]
    for err in errors:
        if "Traceback" in err:
            raise RuntimeError(err)
    results = []
    for standby, kills_of in rows.items():
        times = sorted(r["seconds"] for r in kills_of)
        loads = [r["load1"] for r in kills_of]
        results.append({"standby": standby, "kills": kills_of, "median": statistics.median(times),
                        "max": times[-1], "min": times[0], "load1": [round(min(loads), 2), round(max(loads), 2)]})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes beside the node")
    parser.add_argument("--output", help="file name under bench/results/ (default respawn.json, "
                                         "respawn-load<N>.json with --load N)")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
    for spinner in spinners:
        spinner.start()
    try:
        results = run(args.kills)
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()
    for result in results:
        print(f"{'standby   ' if result['standby'] else 'no standby'}: SIGKILL to answering again "
              f"median {result['median'] * 1000:.0f} ms, min {result['min'] * 1000:.0f} ms, "
              f"max {result['max'] * 1000:.0f} ms over {len(result['kills'])} kills; "
              f"load average {result['load1'][0]}-{result['load1'][1]}")
    RESULTS.mkdir(exist_ok=True)
    output = args.output or (f"respawn-load{args.load}.json" if args.load else "respawn.json")
    (RESULTS / output).write_text(json.dumps({"load": args.load, "results": results, "at": time.strftime("%Y-%m-%d %H:%M"),
                                   "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
