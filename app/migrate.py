"""Schema migrations (Alembic, `app/migrations/`): applied by `switchyard db upgrade` and at `serve` start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import ConfigError
from app.db import safe_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant will do: nodes sharing a PostgreSQL database take turns to migrate it.
PG_MIGRATION_LOCK = 0x5377_7964


def alembic_config(url: str | None = None) -> Config:
    """Alembic's settings without an alembic.ini: the packaged scripts, and the URL if given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> str | None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
    return current_revision(connection)


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the schema to the newest revision in one transaction; returns the revision reached.

    Any failure becomes a ConfigError with one line saying why.
    """
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            return await conn.run_sync(_upgrade)
    except Exception as exc:  # alembic, the drivers and SQLAlchemy each raise their own types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"migrating database {safe_url(engine)} failed: {reason}") from None
