"""`GET /api/health`: is the node fit to serve (database, Redis, workers)?"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from app.api import Call, Endpoint
from app.schemas import HealthAnswer
from media.channel import ChannelClosed

HEALTH_TIMEOUT_SECONDS = 2.0


async def database_status(engine) -> str:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return "ok"
    except Exception:
        return "unreachable"


async def redis_status(client) -> str:
    if client is None:
        return "disabled"
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await client.ping()
        return "ok"
    except Exception:
        return "unreachable"


async def worker_status(worker, pool=None) -> dict:
    """One slot: `restarting` while the pool brings a dead worker back, `dead` once it gave up."""
    entry = {"index": worker.index, "pid": worker.pid, "rtcPort": worker.settings.rtc_port,
             "restarts": pool.restarts[worker.index] if pool is not None else 0}
    if worker.closed:
        restarting = pool is not None and pool.respawning(worker.index)
        return {**entry, "status": "restarting" if restarting else "dead", "rooms": 0}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            dump = await worker.request("worker.dump")
        return {**entry, "status": "ok", "rooms": len(dump.get("routerIds", []))}
    except ChannelClosed:
        return {**entry, "status": "dead", "rooms": 0}
    except Exception:
        return {**entry, "status": "unresponsive", "rooms": 0}


async def health(call: Call) -> web.Response:
    runtime = call.runtime
    db, redis, workers = await asyncio.gather(
        database_status(runtime.engine),
        redis_status(runtime.redis),
        asyncio.gather(*(worker_status(w, runtime.pool) for w in runtime.workers)),
    )
    healthy = db == "ok" and redis in ("ok", "disabled") and all(w["status"] == "ok" for w in workers)
    body = {"status": "ok" if healthy else "degraded", "db": db, "redis": redis, "workers": list(workers)}
    return web.json_response(body, status=200 if healthy else 503)


ENDPOINTS = [
    Endpoint("GET", "/api/health", health, "Is this node fit to serve?", "meta", answer=HealthAnswer,
             auth=False, other_answers=((503, HealthAnswer, "degraded: the database, Redis or a worker is down"),)),
]
