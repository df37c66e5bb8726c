"""Start this machine's PostgreSQL and Redis when they are down (the commands DEVELOPERS use)."""

from __future__ import annotations

import os
import socket
import subprocess
import time


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(port: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _listening(port):
            return True
        time.sleep(0.2)
    return False


def ensure_postgres() -> None:
    if _listening(5432):
        return
    versions = os.listdir("/etc/postgresql")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "start"], check=False
    )
    if not _wait(5432):
        raise RuntimeError("PostgreSQL is not listening on 127.0.0.1:5432")


def ensure_redis() -> None:
    if _listening(6379):
        return
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", ""],
        check=False,
    )
    if not _wait(6379):
        raise RuntimeError("Redis is not listening on 127.0.0.1:6379")


if __name__ == "__main__":
    ensure_postgres()
    ensure_redis()
    print("PostgreSQL and Redis are up")
