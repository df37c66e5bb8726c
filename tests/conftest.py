"""Shared fixtures: free ports, and the real PostgreSQL and Redis this machine runs."""

from __future__ import annotations

import pytest

from loadgen.harness import spawn
from tests.services import ensure_postgres, ensure_redis


def free_port_range(count: int) -> int:
    """A base port such that base..base+count-1 are free for TCP and UDP on every address (below
    the load-test harness's own range, so a spawned server never takes a test's ports)."""
    return spawn.free_port_range(count, low=20000, high=32000, host="0.0.0.0")


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
