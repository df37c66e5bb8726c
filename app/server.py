"""`switchyard serve`: bind every port, check the database and Redis, start the workers, serve HTTP."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from app import engine_metrics
from app.api import RUNTIME, STORE, keep_allow_header, route_defs
from app.auth import AUTH, Auth, Tokens, token_authenticator
from app.config import ConfigError, Settings, default_public_url
from app.db import check_database, make_engine, safe_url
from app.errors import json_errors
from app.live import NoLiveRooms, RoomsLive
from app.metrics import count_requests
from app.migrate import upgrade
from app.openapi import openapi_document
from app.recordings import RECORDINGS, Recordings
from app.redis_check import check_redis
from app.routes import all_endpoints
from app.routes.docs import OPENAPI
from app.schemas import chat_message_json
from app.store import Store
from app.turn.coturn import Coturn, start_turn
from app.turn.credentials import ice_servers
from app.webapp import static_routes
from app.worker_pool import RespawnPolicy, WorkerPool
from common.log import get_logger
from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets
from media.channel import ChannelClosed
from signaling.server import SignalingServer

if TYPE_CHECKING:
    from media.api.data_pipe import DataRelay

log = get_logger("server")

MAX_BODY_BYTES = 64 * 1024
# open HTTP requests get this long to finish at shutdown
SHUTDOWN_GRACE_SECONDS = 1.0
SIGNALING = web.AppKey("signaling", SignalingServer)


@dataclass
class Runtime:
    """What a running server holds; handlers find it at `app[RUNTIME]`."""

    settings: Settings
    workers: list[Worker] = field(default_factory=list)
    # respawns dead workers; its `workers` list is `workers` above (app/worker_pool.py)
    pool: WorkerPool | None = None
    engine: object | None = None
    redis: object | None = None
    # Live room state for REST (participant counts, closing a deleted room): the signaling layer
    # replaces this with its own (see app/live.py).
    rooms_live: RoomsLive = field(default_factory=NoLiveRooms)
    # the supervised coturn (app/turn/coturn.py) when SWITCHYARD_TURN=coturn
    turn: Coturn | None = None
    # the relays feeding this node's workers with data messages from other nodes (signaling/cascade_data.py)
    incoming_data_relays: Callable[[], Iterable[DataRelay]] = lambda: ()


def bind_tcp(host: str, port: int, what: str) -> socket.socket:
    """Bind a listening TCP socket now, so a taken port fails before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def create_app(runtime: Runtime) -> web.Application:
    """The aiohttp application: REST routes, metrics, OpenAPI and Swagger UI, the web app."""
    settings = runtime.settings
    if not settings.jwt_secret:
        settings.jwt_secret = secrets.token_urlsafe(32)
        settings.jwt_secret_generated = True
    app = web.Application(middlewares=[count_requests, json_errors, keep_allow_header],
                          client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[STORE] = Store(runtime.engine)
    app[AUTH] = Auth(Tokens(settings.jwt_secret), allow_guests=settings.allow_guests)
    endpoints = all_endpoints()
    app[OPENAPI] = openapi_document(endpoints)
    app.add_routes(route_defs(endpoints))
    public_url = settings.public_url or default_public_url(settings.announced_ip or "127.0.0.1", settings.port)
    signaling = SignalingServer(runtime.workers, app[STORE], token_authenticator(app[STORE], app[AUTH].tokens),
                                chat_message_json, settings.redis_url, public_url,
                                pipe_ip=settings.pipe_announced_ip or settings.announced_ip,
                                max_peers=settings.max_peers, spread_consumers=settings.spread_consumers,
                                pipe_srtp=bool(settings.pipe_srtp))
    recordings = Recordings(settings, app[STORE], signaling)
    app[RECORDINGS] = recordings
    app.on_startup.append(recordings.abandon_stale)
    # before signaling's own shutdown empties the rooms: every recording's files and row are finished
    app.on_shutdown.append(recordings.stop_all)
    if settings.turn.enabled:
        turn = settings.turn
        signaling.ice_servers = lambda peer: ice_servers(turn, peer.peer_id)
    signaling.attach(app)
    runtime.rooms_live = signaling.registry
    if signaling.cascade is not None:
        data_pipes = signaling.cascade.data_pipes
        runtime.incoming_data_relays = lambda: list(data_pipes.incoming.values())
    app[SIGNALING] = signaling
    engine_metrics.install(app, runtime)
    app.add_routes(static_routes(settings.web_dir))
    return app


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT or SIGTERM; ConfigError for anything that stops a clean start."""
    runtime = Runtime(settings)
    http_sock = bind_tcp(settings.host, settings.port, "HTTP")
    sockets = [http_sock]
    rtc_sockets = []
    try:
        if settings.signaling_port:
            sockets.append(bind_tcp(settings.host, settings.signaling_port, "signaling"))
        for port in settings.rtc_ports:
            try:
                rtc_sockets.append(bind_rtc_sockets(settings.host, port))
            except OSError as exc:
                raise ConfigError(f"cannot bind RTC port {port} (UDP/TCP): {exc.strerror}") from None
        runtime.engine = make_engine(settings.database_url)
        await check_database(runtime.engine)
        if settings.redis_url:
            runtime.redis = await check_redis(settings.redis_url)
        # Last of the checks: the only one that changes anything.
        revision = await upgrade(runtime.engine)
    except BaseException:
        for sock in sockets:
            sock.close()
        for udp, tcp in rtc_sockets:
            udp.close()
            tcp.close()
        if runtime.engine is not None:
            await runtime.engine.dispose()
        raise

    if settings.jwt_secret_generated:
        log.warning("SWITCHYARD_JWT_SECRET is not set: using a random secret; tokens die with this process")
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def settings_for(index: int) -> WorkerSettings:
        return WorkerSettings(index, settings.host, settings.rtc_ports[index], settings.announced_ip,
                              settings.log_level, settings.log_format,
                              max_incoming_bitrate=settings.max_incoming_bitrate)

    pool = WorkerPool(rtc_sockets, settings_for,
                      RespawnPolicy(settings.worker_respawn_limit, settings.worker_respawn_window),
                      standby=bool(settings.worker_standby))
    runtime.pool, runtime.workers = pool, pool.workers

    def on_signal() -> None:
        # before anything closes: a worker that dies while the node stops is not respawned
        pool.stop_respawning()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        runtime.turn = await start_turn(settings.turn, settings.host, settings.announced_ip)
        try:
            await pool.start()
        except (TimeoutError, ChannelClosed):
            raise ConfigError(f"media worker {len(pool.workers)} failed to start (see the log above)") from None
        app = create_app(runtime)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
        cluster = app[SIGNALING].registry.cluster
        if cluster is not None:  # SIGUSR1: take no new rooms (docs/operations.md, draining a node)
            loop.add_signal_handler(signal.SIGUSR1, cluster.drain)
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        announce(settings, runtime)
        log.info("database schema at revision %s", revision)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping")
    finally:
        # The signal handlers stay until cleanup is over, so a second Ctrl-C cannot cut it short.
        if runner is not None:
            log.debug("closing HTTP and signaling")
            await runner.cleanup()
            log.debug("HTTP closed")
        await pool.close()
        if runtime.turn is not None:
            await runtime.turn.close()
        for sock in sockets:
            sock.close()
        if runtime.redis is not None:
            await runtime.redis.aclose()
        if runtime.engine is not None:
            await runtime.engine.dispose()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def announce(settings: Settings, runtime: Runtime) -> None:
    """Say on stdout where everything listens."""
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    lines = [
        f"Switchyard listening on http://{shown}:{settings.port} (REST API, web app, /socket.io)",
        "  signaling (Socket.IO): "
        + (f"http://{shown}:{settings.signaling_port}/socket.io" if settings.signaling_port else "off"),
        f"  RTC (UDP+TCP): ports {settings.rtc_ports[0]}..{settings.rtc_ports[-1]} "
        f"on {settings.host}, announced as {settings.announced_ip}; "
        f"{len(runtime.workers)} worker(s), pids {', '.join(str(w.pid) for w in runtime.workers)}",
        f"  database: {safe_url(runtime.engine)}",
        f"  redis: {settings.redis_url or 'none (single node)'}",
        f"  TURN: {turn_summary(settings, runtime)}",
    ]
    print("\n".join(lines), flush=True)


def turn_summary(settings: Settings, runtime: Runtime) -> str:
    if runtime.turn is not None:
        return runtime.turn.describe()
    if settings.turn.mode == "external":
        return f"external, {', '.join(settings.turn.urls)}"
    return "off (SWITCHYARD_TURN)"


def web_dir_default() -> str | None:
    """The built web app: SWITCHYARD_WEB_DIR, else web/dist next to the package, if present."""
    configured = os.environ.get("SWITCHYARD_WEB_DIR")
    candidate = Path(configured) if configured else Path(__file__).resolve().parent.parent / "web" / "dist"
    return str(candidate) if (candidate / "index.html").is_file() else None
