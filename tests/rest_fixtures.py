"""Fixtures for the REST tests: a clean, migrated database on SQLite and on the real PostgreSQL
for every test, and the app on it. Test modules load them with
`pytest_plugins = ("tests.rest_fixtures",)` and take helpers from tests.rest_helpers."""

from __future__ import annotations

import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.auth import AUTH, Passwords
from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade
from app.server import Runtime, create_app
from tests.rest_helpers import JWT_SECRET

# The real argon2id, with the smallest cost it allows: the tests hash hundreds of passwords.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def fresh_postgres(postgres_url: str) -> tuple[AsyncEngine, str]:
    """An engine whose connections see only a new, empty schema (so tests running at the same
    time on the same database cannot disturb each other)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = create_async_engine(postgres_url, connect_args={"server_settings": {"search_path": schema}})
    return engine, schema


async def drop_postgres_schema(postgres_url: str, schema: str) -> None:
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request, tmp_path):
    """A migrated, empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    schema = None
    if request.param == "sqlite":
        db = make_engine(f"sqlite+aiosqlite:///{tmp_path}/rest.db")
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        db, schema = await fresh_postgres(postgres_url)
    await upgrade(db)
    yield db
    await db.dispose()
    if schema is not None:
        await drop_postgres_schema(postgres_url, schema)


@pytest.fixture
def settings():
    return Settings(jwt_secret=JWT_SECRET, workers=1)


@pytest.fixture
def app(engine, settings):
    # the real signaling layer is attached too; with no peers every room counts 0 (tests/test_signaling.py
    # covers live counts and closing a deleted room's peers end to end)
    runtime = Runtime(settings, workers=[], engine=engine)
    application = create_app(runtime)
    application[AUTH].passwords = Passwords(CHEAP_HASHER)
    return application


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app)
