"""Schema migrations: `switchyard db upgrade` on fresh SQLite and PostgreSQL databases, the
migrations matching the models, and `serve` refusing, in one line, a database it cannot migrate."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.migrate import alembic_config, head_revision, upgrade
from app.models import Base
from tests.test_cli import assert_one_line_error, run_cli, serve_args

pytest_plugins = ("tests.rest_fixtures",)

TABLES = {"users", "rooms", "chat_messages", "room_sessions", "recordings", "alembic_version"}


async def create_scratch_database(postgres_url: str) -> tuple[str, str]:
    """A new, empty PostgreSQL database (a subprocess cannot be pointed at a schema): its
    SQLAlchemy URL and its asyncpg DSN."""
    name = f"switchyard_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}", admin_dsn(postgres_url).rsplit("/", 1)[0] + f"/{name}"


async def drop_scratch_database(postgres_url: str, url: str) -> None:
    admin = await asyncpg.connect(admin_dsn(postgres_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


def admin_dsn(postgres_url: str) -> str:
    return postgres_url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.asynccontextmanager
async def scratch_postgres_database(postgres_url: str):
    url, dsn = await create_scratch_database(postgres_url)
    try:
        yield url, dsn
    finally:
        await drop_scratch_database(postgres_url, url)


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path):
    path = tmp_path / "fresh.db"
    url = f"sqlite+aiosqlite:///{path}"
    for _ in range(2):  # the second run finds nothing to do
        result = run_cli("db", "upgrade", "--database-url", url)
        assert result.returncode == 0, result.stderr
        assert f"revision {head_revision()}" in result.stdout
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert TABLES <= tables and version == head_revision()


def test_db_upgrade_reads_the_url_from_the_environment(tmp_path):
    path = tmp_path / "env.db"
    result = run_cli("db", "upgrade", env={"SWITCHYARD_DATABASE_URL": f"sqlite+aiosqlite:///{path}"})
    assert result.returncode == 0, result.stderr
    assert path.exists()


async def test_db_upgrade_on_postgresql(postgres_url):
    async with scratch_postgres_database(postgres_url) as (url, dsn):
        result = run_cli("db", "upgrade", "--database-url", url)
        assert result.returncode == 0, result.stderr
        assert "revision" in result.stdout and "Traceback" not in result.stderr
        conn = await asyncpg.connect(dsn)
        try:
            tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            version = await conn.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
        assert TABLES <= tables and version == head_revision()
        assert run_cli("db", "upgrade", "--database-url", url).returncode == 0


@pytest.mark.parametrize("url,needle", [
    ("postgresql+asyncpg://postgres@127.0.0.1:1/test", "unreachable"),
    ("mysql://u@h/d", "not supported"),
    ("sqlite+aiosqlite:////nonexistent-dir/x.db", "does not exist"),
])
def test_db_upgrade_refusals_are_one_line(url, needle):
    assert_one_line_error(run_cli("db", "upgrade", "--database-url", url), needle)


async def test_migrations_create_exactly_the_models(engine):
    """No drift: what the migrations build is what app/models.py declares (types, indexes, keys)."""
    def differences(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []
        names = await conn.run_sync(lambda sync_conn: set(inspect(sync_conn).get_table_names()))
    assert TABLES <= names


async def test_downgrade_and_upgrade_again(engine):
    def downgrade(sync_conn):
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "base")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync_conn: set(inspect(sync_conn).get_table_names()))
    assert names <= {"alembic_version"}
    assert await upgrade(engine) == head_revision()


def test_serve_refuses_a_database_it_cannot_migrate(free_ports, tmp_path):
    """A schema from a newer Switchyard (an unknown revision): one line on stderr, exit 2, no workers."""
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    base = free_ports(4)
    result = run_cli(*serve_args(base, db=f"sqlite+aiosqlite:///{path}"))
    assert_one_line_error(result, "migrating database")
    assert "9999_from_the_future" in result.stderr


async def test_concurrent_upgrades_on_postgresql_take_turns(postgres_url):
    """Two nodes starting at once on one PostgreSQL database: both succeed, the schema is built once."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async with scratch_postgres_database(postgres_url) as (url, _):
        engines = [create_async_engine(url) for _ in range(2)]
        try:
            assert await asyncio.gather(*(upgrade(e) for e in engines)) == [head_revision()] * 2
            async with engines[0].connect() as conn:
                count = await conn.scalar(text("SELECT count(*) FROM alembic_version"))
            assert count == 1
        finally:
            for e in engines:
                await e.dispose()


def test_migrations_and_routes_are_packaged():
    """A wheel carries every app package (routes, the migrations and their template)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in [root / "app", *(p for p in (root / "app").rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        if any(folder.glob("*.py")):
            assert ".".join(folder.relative_to(root).parts) in setuptools["packages"], folder
    assert "script.py.mako" in setuptools["package-data"]["app.migrations"]
