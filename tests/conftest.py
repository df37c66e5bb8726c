"""Shared fixtures: free ports, and the real PostgreSQL and Redis this machine runs."""

from __future__ import annotations

import random
import socket

import pytest

from tests.services import ensure_postgres, ensure_redis


def port_is_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def free_port_range(count: int, low: int = 20000, high: int = 32000) -> int:
    """A base port such that base..base+count-1 are free for TCP and UDP."""
    for _ in range(200):
        base = random.randrange(low, high - count)
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


@pytest.fixture
def free_ports():
    return free_port_range


@pytest.fixture(scope="session")
def postgres_url() -> str:
    ensure_postgres()
    return "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    ensure_redis()
    return "redis://127.0.0.1:6379/0"
