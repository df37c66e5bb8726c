"""The `switchyard` command line: serve, db, token, bench, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from app import config
from app.config import ConfigError, Settings
from media.limits import DEFAULT_MAX_INCOMING_BITRATE

EXIT_CONFIG = 2


class CliParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"switchyard: error: {message}\n")
        raise SystemExit(EXIT_CONFIG)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    env = config.env_default
    p.add_argument("--host", default=env("HOST", "0.0.0.0"), help="address to listen on (SWITCHYARD_HOST)")
    p.add_argument("--port", default=env("PORT", "3000"), help="HTTP port: REST, web app, Socket.IO (SWITCHYARD_PORT)")
    p.add_argument("--signaling-port", default=env("SIGNALING_PORT", "4000"),
                   help="Socket.IO port; 0 turns it off (SWITCHYARD_SIGNALING_PORT)")
    p.add_argument("--workers", default=env("WORKERS", str(os.cpu_count() or 1)),
                   help="media worker processes (SWITCHYARD_WORKERS; default one per core)")
    p.add_argument("--rtc-port-base", default=env("RTC_PORT_BASE", "40000"),
                   help="UDP/TCP port of worker 0; worker i uses base+i (SWITCHYARD_RTC_PORT_BASE)")
    p.add_argument("--announced-ip", default=env("ANNOUNCED_IP"),
                   help="IP put in ICE candidates (SWITCHYARD_ANNOUNCED_IP; default: first non-loopback)")
    p.add_argument("--database-url", default=env("DATABASE_URL", config.DEFAULT_DATABASE_URL),
                   help="SQLAlchemy async URL (SWITCHYARD_DATABASE_URL)")
    p.add_argument("--redis-url", default=env("REDIS_URL"), help="Redis for many nodes (SWITCHYARD_REDIS_URL)")
    p.add_argument("--public-url", default=env("PUBLIC_URL"),
                   help="this node's base URL, where other nodes send its rooms' clients "
                        "(SWITCHYARD_PUBLIC_URL; default http://<announced-ip>:<port>)")
    p.add_argument("--pipe-announced-ip", default=env("PIPE_ANNOUNCED_IP"),
                   help="IP other nodes send a room's piped media to, at each worker's RTC port "
                        "(SWITCHYARD_PIPE_ANNOUNCED_IP; default: the announced IP)")
    p.add_argument("--max-peers", default=env("MAX_PEERS", "0"),
                   help="peers this node takes before it sends new rooms' joins to another node "
                        "(SWITCHYARD_MAX_PEERS; 0: no limit)")
    p.add_argument("--max-incoming-bitrate", default=env("MAX_INCOMING_BITRATE", str(DEFAULT_MAX_INCOMING_BITRATE)),
                   help="bits/s a publisher may send on one transport, told by REMB "
                        "(SWITCHYARD_MAX_INCOMING_BITRATE; 0: no ceiling)")
    p.add_argument("--recordings-dir", default=env("RECORDINGS_DIR", config.DEFAULT_RECORDINGS_DIR),
                   help="where recordings are written (SWITCHYARD_RECORDINGS_DIR)")
    add_logging_arguments(p)


def add_logging_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default=config.env_default("LOG_LEVEL", "info"),
                   help="debug, info, warning, error (SWITCHYARD_LOG_LEVEL)")
    p.add_argument("--log-format", default=config.env_default("LOG_FORMAT", "text"),
                   choices=["text", "json"], help="text or json lines (SWITCHYARD_LOG_FORMAT)")


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="switchyard", description="Switchyard: a WebRTC selective forwarding unit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True

    serve = sub.add_parser("serve", help="run the server (HTTP, signaling, media workers)")
    add_serve_arguments(serve)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=CliParser)
    db_sub.required = True
    upgrade = db_sub.add_parser("upgrade", help="apply the schema migrations")
    upgrade.add_argument("--database-url", default=config.env_default("DATABASE_URL", config.DEFAULT_DATABASE_URL),
                         help="SQLAlchemy async URL (SWITCHYARD_DATABASE_URL)")

    token = sub.add_parser("token", help="mint a JWT for a user id (needs SWITCHYARD_JWT_SECRET)")
    token.add_argument("user_id", help="the user id to put in `sub`")
    token.add_argument("--ttl", default="86400", help="lifetime in seconds (default 24 h)")

    sub.add_parser("bench", help="run the fast-path benchmarks (bench/)")
    from loadgen.harness.scenario import add_arguments as add_loadtest_arguments

    add_loadtest_arguments(sub.add_parser("loadtest", help="run the load-testing harness (docs/loadtest.md)"))
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags, validated."""
    from app.turn.settings import turn_settings_from_env

    settings = Settings(
        host=args.host,
        port=config.parse_int(args.port, "HTTP port"),
        signaling_port=config.parse_int(args.signaling_port, "signaling port"),
        workers=config.parse_int(args.workers, "workers"),
        rtc_port_base=config.parse_int(args.rtc_port_base, "RTC port base"),
        announced_ip=args.announced_ip,
        database_url=args.database_url,
        redis_url=args.redis_url,
        public_url=args.public_url,
        pipe_announced_ip=args.pipe_announced_ip,
        max_peers=config.parse_int(args.max_peers, "max peers"),
        pipe_srtp=config.env_int("PIPE_SRTP", config.DEFAULT_PIPE_SRTP),
        jwt_secret=config.env_default("JWT_SECRET"),
        allow_guests=config.parse_bool(config.env_default("ALLOW_GUESTS", "true"), "SWITCHYARD_ALLOW_GUESTS"),
        log_level=args.log_level,
        log_format=args.log_format,
        max_incoming_bitrate=config.parse_int(args.max_incoming_bitrate, "max incoming bitrate"),
        recordings_dir=args.recordings_dir,
        spread_consumers=config.env_int("SPREAD_CONSUMERS", config.DEFAULT_SPREAD_CONSUMERS),
        recording_max_bytes=config.env_int("RECORDING_MAX_BYTES", config.DEFAULT_RECORDING_MAX_BYTES),
        recording_min_free_bytes=config.env_int("RECORDING_MIN_FREE_BYTES", config.DEFAULT_RECORDING_MIN_FREE_BYTES),
        worker_respawn_limit=config.env_int("WORKER_RESPAWN_LIMIT", config.DEFAULT_WORKER_RESPAWN_LIMIT),
        worker_respawn_window=config.env_int("WORKER_RESPAWN_WINDOW", config.DEFAULT_WORKER_RESPAWN_WINDOW),
        worker_standby=config.env_int("WORKER_STANDBY", config.DEFAULT_WORKER_STANDBY),
        turn=turn_settings_from_env(),
    )
    return config.validate(settings)


def run_serve(args: argparse.Namespace) -> int:
    from app.server import serve, web_dir_default
    from common.log import setup_logging

    settings = settings_from_args(args)
    settings.web_dir = web_dir_default()
    setup_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0


def run_token(args: argparse.Namespace) -> int:
    import jwt

    secret = config.env_default("JWT_SECRET")
    if not secret:
        raise ConfigError("SWITCHYARD_JWT_SECRET must be set to mint a token the server will accept")
    ttl = config.parse_int(args.ttl, "--ttl")
    if ttl <= 0:
        raise ConfigError("--ttl must be positive")
    now = int(time.time())
    print(jwt.encode({"sub": args.user_id, "iat": now, "exp": now + ttl}, secret, algorithm="HS256"))
    return 0


BENCHMARKS = ("bench_srtp.py", "bench_udp.py", "bench_forward.py")


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmarks of bench/ one after the other (they print and save JSON)."""
    import subprocess
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "bench"
    scripts = [folder / name for name in BENCHMARKS if (folder / name).is_file()]
    if not scripts:
        raise ConfigError(f"no benchmarks found in {folder} (run from a source checkout)")
    for script in scripts:
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=folder.parent)
        if result.returncode != 0:
            sys.stderr.write(f"switchyard: {script.name} failed with exit code {result.returncode}\n")
            return result.returncode
    return 0


def run_loadtest(args: argparse.Namespace) -> int:
    from loadgen.harness.run import LoadtestError, main

    try:
        return main(args)
    except LoadtestError as exc:
        raise ConfigError(str(exc)) from None


def run_db_upgrade(args: argparse.Namespace) -> int:
    from app.db import check_database, make_engine, safe_url
    from app.migrate import upgrade

    async def migrate() -> str:
        engine = make_engine(args.database_url)
        try:
            await check_database(engine)
            revision = await upgrade(engine)
            return f"database {safe_url(engine)} is at revision {revision} (newest)"
        finally:
            await engine.dispose()

    print(asyncio.run(migrate()))
    return 0


def not_built(name: str) -> int:
    sys.stderr.write(f"switchyard: {name} is not built yet\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "token":
            return run_token(args)
        if args.command == "bench":
            return run_bench(args)
        if args.command == "db":
            return run_db_upgrade(args)
        if args.command == "loadtest":
            return run_loadtest(args)
        return not_built(args.command)
    except ConfigError as exc:
        sys.stderr.write(f"switchyard: error: {exc}\n")
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
