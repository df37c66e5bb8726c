"""Redis at start-up: the URL must parse and the server must answer PING."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from app.config import ConfigError

CONNECT_TIMEOUT_SECONDS = 3.0


async def check_redis(url: str) -> aioredis.Redis:
    """Connect and PING; a ConfigError says why Redis cannot be used."""
    try:
        client = aioredis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except ValueError as exc:
        raise ConfigError(f"Redis URL {url!r} is invalid: {exc}") from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
            await client.ping()
    except Exception as exc:
        await client.aclose()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"Redis at {url} is unreachable: {reason}") from None
    return client
