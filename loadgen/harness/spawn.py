"""`--spawn-server`: a local `switchyard serve` on free loopback ports with a temporary SQLite database.

The server runs in its own session (process group), so stopping it can
reach its media workers too: SIGTERM and up to 20 s for a clean stop (the
server stops its workers), then SIGKILL to the whole group. Should the
harness itself be killed outright, the kernel sends the server SIGTERM
(PR_SET_PDEATHSIG), so it never outlives the harness either.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from loadgen.harness.scenario import LoadtestError

START_SECONDS = 30.0
STOP_SECONDS = 20.0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether both TCP and UDP can bind host:port now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_port_range(count: int, low: int = 33000, high: int = 39000, host: str = "127.0.0.1") -> int:
    """A base port such that base..base+count-1 are free for TCP and UDP on host."""
    for _ in range(200):
        base = random.randrange(low, high - count)
        if all(port_is_free(base + i, host) for i in range(count)):
            return base
    raise LoadtestError("no free port range found for --spawn-server")


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the harness dies (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass    # not Linux: stop() still cleans up on every orderly exit


class SpawnedServer:
    def __init__(self, workers: int = 1):
        self.folder = tempfile.mkdtemp(prefix="switchyard-loadtest-")
        base = free_port_range(1 + workers)
        self.url = f"http://127.0.0.1:{base}"
        args = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(base),
                "--signaling-port", "0", "--rtc-port-base", str(base + 1), "--workers", str(workers),
                "--announced-ip", "127.0.0.1", "--database-url",
                f"sqlite+aiosqlite:///{os.path.join(self.folder, 'loadtest.db')}", "--log-level", "warning"]
        env = {**os.environ, "SWITCHYARD_JWT_SECRET": secrets.token_hex(32), "SWITCHYARD_PUBLIC_URL": self.url,
               "SWITCHYARD_ALLOW_GUESTS": "true"}
        self.log = open(os.path.join(self.folder, "server.log"), "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True, preexec_fn=_die_with_parent)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def _log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if line.strip()]
        return lines[-1] if lines else "no output"

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoadtestError(f"the spawned server exited with code {self.process.returncode}: "
                                    f"{self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=2) as response:
                    if response.status == 200 and json.loads(response.read())["status"] == "ok":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise LoadtestError(f"the spawned server was not healthy within {START_SECONDS:g} s")

    def stop(self) -> int | None:
        """Stop the server and its workers; its exit code (None if it had to be killed)."""
        code = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)   # workers, if any outlived it
        except ProcessLookupError:
            pass
        if code is None:
            self.process.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        return code
