"""A real `switchyard serve` in a subprocess for signaling tests, and SDK clients signed in to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

from switchyard_client import SwitchyardClient

from tests.conftest import free_port_range

SECRET = "signaling-tests-secret-0123456789abcdef"


class ServerProcess:
    def __init__(self, database_url: str, redis_url: str | None = None, workers: int = 1,
                 extra_env: dict | None = None):
        self.base = free_port_range(2 + workers)
        self.url = f"http://127.0.0.1:{self.base}"
        args = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(self.base),
                "--signaling-port", str(self.base + 1), "--rtc-port-base", str(self.base + 2),
                "--workers", str(workers), "--announced-ip", "127.0.0.1", "--database-url", database_url,
                "--log-level", "warning"]
        if redis_url:
            args += ["--redis-url", redis_url]
        env = {**os.environ, "SWITCHYARD_JWT_SECRET": SECRET, "SWITCHYARD_PUBLIC_URL": self.url,
               **(extra_env or {})}
        self._args, self._env = args, env
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        stdin=subprocess.DEVNULL, env=env)
        self._wait_healthy()

    def restart(self) -> None:
        """Start the same server again (same ports, database and secret) after kill() or stop()."""
        assert self.process.poll() is not None, "the server is still running"
        self.process = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        stdin=subprocess.DEVNULL, env=self._env)
        self._wait_healthy()

    def _wait_healthy(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read()}")
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=2) as response:
                    if response.status == 200 and json.loads(response.read())["status"] == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server never became healthy")

    def kill(self) -> None:
        """SIGKILL: the node dies without cleaning anything up (its workers follow it)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


async def signed_in(url: str, name: str | None = None, connect: bool = True) -> SwitchyardClient:
    """A guest client, connected to signaling unless told otherwise."""
    client = SwitchyardClient(url)
    await client.guest(name or f"guest-{uuid.uuid4().hex[:6]}")
    if connect:
        await client.connect()
    return client


def serving(folder, **kwargs) -> Iterator[ServerProcess]:
    """A `switchyard serve` on a fresh SQLite file in `folder`, for a fixture to `yield from`:
    stopped afterwards, and what it logged must hold no traceback."""
    process = ServerProcess(f"sqlite+aiosqlite:///{folder}/s.db", **kwargs)
    yield process
    err = process.stop()
    assert "Traceback" not in err, err
