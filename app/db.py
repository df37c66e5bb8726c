"""Database access: the async engine and the start-up reachability check."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import ConfigError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
CONNECT_TIMEOUT_SECONDS = 5.0


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a supported URL, or a ConfigError saying what is wrong with it."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} cannot be parsed") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"database URL scheme {parsed.drivername!r} is not supported; use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigError(f"database folder {folder} does not exist")
    try:
        return create_async_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"database URL {url!r} is not usable: {exc}") from None


async def check_database(engine: AsyncEngine) -> None:
    """Run `SELECT 1`; a ConfigError names the database when it cannot be reached."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        raise ConfigError(f"database {safe_url(engine)} did not answer within {CONNECT_TIMEOUT_SECONDS:.0f}s") from None
    except Exception as exc:  # drivers raise their own types (OSError, asyncpg, sqlite3)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"database {safe_url(engine)} is unreachable: {reason}") from None


def safe_url(engine: AsyncEngine) -> str:
    """The engine's URL with any password hidden, for logs."""
    return engine.url.render_as_string(hide_password=True)
