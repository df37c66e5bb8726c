"""Alembic's environment: run the migrations on a connection the caller hands over, or on a fresh async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_on)
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


# app.migrate passes the connection it holds (inside the server's event loop); the `alembic`
# command line passes only a URL.
shared = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline(config.get_main_option("sqlalchemy.url"))
elif shared is not None:
    run_on(shared)
else:
    asyncio.run(run_standalone(config.get_main_option("sqlalchemy.url")))
