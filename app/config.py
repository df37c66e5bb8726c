"""Settings of `switchyard serve`: command-line flags over `SWITCHYARD_*` variables over defaults (PROTOCOL.md §1)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from media.limits import DEFAULT_MAX_INCOMING_BITRATE, MAX_INCOMING_BITRATE
from signaling.placement import DEFAULT_SPREAD_CONSUMERS

if TYPE_CHECKING:
    from app.turn.settings import TurnSettings

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./switchyard.db"
DEFAULT_RECORDINGS_DIR = "./recordings"
DEFAULT_RECORDING_MAX_BYTES = 2 * 1024**3  # per recording: a few hours of a small room
DEFAULT_RECORDING_MIN_FREE_BYTES = 1024**3  # no recording starts, or goes on, with less free
DEFAULT_WORKER_RESPAWN_LIMIT = 5  # deaths of one worker slot respawned within the window
DEFAULT_WORKER_RESPAWN_WINDOW = 60  # seconds
DEFAULT_WORKER_STANDBY = 1  # a warm standby worker per slot
DEFAULT_PIPE_SRTP = 0  # pipes between workers and nodes carry plain RTP


class ConfigError(Exception):
    """A setting is invalid or cannot be used; the CLI prints it as one line and exits 2."""


def turn_off() -> TurnSettings:
    """No TURN (app/turn/settings.py imports this module, hence the late import)."""
    from app.turn.settings import TurnSettings

    return TurnSettings()


@dataclass
class Settings:
    host: str = "0.0.0.0"
    port: int = 3000
    signaling_port: int = 4000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    rtc_port_base: int = 40000
    announced_ip: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # where other nodes send clients of the rooms this node hosts (PROTOCOL.md §3, wrong_node)
    public_url: str | None = None
    # where other nodes send the media of rooms that span nodes (docs/operations.md; default announced_ip),
    # and the peers this node takes before joins to rooms not open here go elsewhere (0: no limit)
    pipe_announced_ip: str | None = None
    max_peers: int = 0
    # 1: pipes (to other nodes, and between this node's workers) carry SRTP, each end keyed in
    # signalling; 0: plain RTP. Every node of a deployment must use the same value.
    pipe_srtp: int = DEFAULT_PIPE_SRTP
    jwt_secret: str | None = None
    jwt_secret_generated: bool = False
    log_level: str = "info"
    log_format: str = "text"
    web_dir: str | None = None
    allow_guests: bool = True
    # what a publisher is told it may send on one transport at most (transport.setMaxIncomingBitrate
    # changes it per transport); 0: no ceiling
    max_incoming_bitrate: int = DEFAULT_MAX_INCOMING_BITRATE
    # recordings (docs/operations.md): where their files go, the cap on one recording's media bytes,
    # and the free space below which none starts and a running one stops
    recordings_dir: str = DEFAULT_RECORDINGS_DIR
    recording_max_bytes: int = DEFAULT_RECORDING_MAX_BYTES
    recording_min_free_bytes: int = DEFAULT_RECORDING_MIN_FREE_BYTES
    # a dead worker is respawned on its port unless its slot died more than `limit` times within
    # `window` seconds (app/worker_pool.py); limit 0: never respawn
    worker_respawn_limit: int = DEFAULT_WORKER_RESPAWN_LIMIT
    worker_respawn_window: int = DEFAULT_WORKER_RESPAWN_WINDOW
    # 1: each worker slot keeps a warm standby process that takes over when its worker dies (about
    # 33 MiB RSS each, app/worker_pool.py); 0: a dead worker is replaced by a freshly started process
    worker_standby: int = DEFAULT_WORKER_STANDBY
    # TURN for clients behind strict firewalls (app/turn/, SWITCHYARD_TURN_*; docs/operations.md)
    turn: TurnSettings = field(default_factory=turn_off)
    # a room's consumers on one worker before it spreads to another (signaling/placement.py says how
    # the default was sized); 0: rooms never spread
    spread_consumers: int = DEFAULT_SPREAD_CONSUMERS

    @property
    def rtc_ports(self) -> list[int]:
        """The RTC port of each worker: `rtc_port_base + i`."""
        return [self.rtc_port_base + i for i in range(self.workers)]


def env_default(name: str, fallback: str | None = None) -> str | None:
    """The value of `SWITCHYARD_<NAME>`, or `fallback`."""
    value = os.environ.get(f"SWITCHYARD_{name}")
    return value if value not in (None, "") else fallback


def env_int(name: str, default: int) -> int:
    """The integer `SWITCHYARD_<NAME>`, or `default`; a ConfigError naming the variable otherwise."""
    return parse_int(env_default(name, str(default)), f"SWITCHYARD_{name}")


def parse_int(value: object, what: str) -> int:
    """An integer setting, or a ConfigError naming it."""
    try:
        return int(str(value), 10)
    except ValueError:
        raise ConfigError(f"{what} must be an integer, got {value!r}") from None


def parse_bool(value: object, what: str) -> bool:
    """A yes/no setting: true/false, yes/no, on/off, 1/0."""
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what} must be true or false, got {value!r}")


def check_port(port: int, what: str, allow_zero: bool = False) -> None:
    """Ports are 1..65535 (0 only where it means 'off')."""
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{what} must be between {low} and 65535, got {port}")


def first_non_loopback_ip() -> str:
    """The address a UDP socket would use towards the outside, else 127.0.0.1.

    Connecting a UDP socket sends nothing; it only asks the kernel for a route.
    """
    for target in ("192.0.2.1", "2001:db8::1"):
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                ip = probe.getsockname()[0]
        except OSError:
            continue
        if not ipaddress.ip_address(ip).is_loopback:
            return ip
    return "127.0.0.1"


def check_announced_ip(value: str) -> str:
    """The announced IP must be a literal unicast address, not a name or a wildcard."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"announced IP {value!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ConfigError(f"announced IP {value} cannot be used by clients (unspecified or multicast)")
    return str(ip)


def check_public_url(value: str) -> str:
    """The node's public base URL: http(s)://host[:port], no path; kept without a trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"public URL {value!r} must look like http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"public URL {value!r} must be a base URL, without a path or query")
    return f"{parts.scheme}://{parts.netloc}"


def default_public_url(announced_ip: str, port: int) -> str:
    host = f"[{announced_ip}]" if ":" in announced_ip else announced_ip
    return f"http://{host}:{port}"


def validate(settings: Settings) -> Settings:
    """Check every setting that can be checked without touching the network."""
    check_port(settings.port, "HTTP port")
    check_port(settings.signaling_port, "signaling port", allow_zero=True)
    if settings.signaling_port and settings.signaling_port == settings.port:
        raise ConfigError("signaling port must differ from the HTTP port (or be 0 to turn it off)")
    if not 0 <= settings.max_incoming_bitrate <= MAX_INCOMING_BITRATE:
        raise ConfigError("max incoming bitrate must be 0 (no ceiling) or up to 4 Gbit/s, "
                          f"got {settings.max_incoming_bitrate}")
    if settings.recording_max_bytes < 1 or settings.recording_min_free_bytes < 0:
        raise ConfigError("recording max bytes must be at least 1 and recording min free bytes at least 0")
    if settings.spread_consumers < 0:
        raise ConfigError(f"spread consumers must be 0 (never spread) or more, got {settings.spread_consumers}")
    if not settings.recordings_dir:
        raise ConfigError("recordings dir must not be empty")
    if settings.worker_respawn_limit < 0 or settings.worker_respawn_window < 1:
        raise ConfigError("worker respawn limit must be at least 0 and worker respawn window at least 1 s")
    if settings.worker_standby not in (0, 1):
        raise ConfigError(f"worker standby must be 1 (on) or 0 (off), got {settings.worker_standby}")
    if settings.pipe_srtp not in (0, 1):
        raise ConfigError(f"pipe SRTP must be 1 (SRTP) or 0 (plain RTP), got {settings.pipe_srtp}")
    if settings.workers < 1 or settings.workers > 256:
        raise ConfigError(f"workers must be between 1 and 256, got {settings.workers}")
    check_port(settings.rtc_port_base, "RTC port base")
    if settings.rtc_port_base + settings.workers - 1 > 65535:
        raise ConfigError(
            f"RTC ports {settings.rtc_port_base}..{settings.rtc_port_base + settings.workers - 1} exceed 65535"
        )
    try:
        ipaddress.ip_address(settings.host)
    except ValueError:
        raise ConfigError(f"host {settings.host!r} is not an IP address to listen on") from None
    if settings.announced_ip is None:
        settings.announced_ip = first_non_loopback_ip()
    else:
        settings.announced_ip = check_announced_ip(settings.announced_ip)
    if settings.pipe_announced_ip is None:
        settings.pipe_announced_ip = settings.announced_ip
    else:
        settings.pipe_announced_ip = check_announced_ip(settings.pipe_announced_ip)
    if not 0 <= settings.max_peers <= 1_000_000:
        raise ConfigError(f"max peers must be 0 (no limit) or up to 1000000, got {settings.max_peers}")
    if settings.public_url is None:
        settings.public_url = default_public_url(settings.announced_ip, settings.port)
    else:
        settings.public_url = check_public_url(settings.public_url)
    if settings.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"log level {settings.log_level!r} is not one of debug, info, warning, error")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"log format {settings.log_format!r} is not text or json")
    if not settings.jwt_secret:
        settings.jwt_secret = secrets.token_urlsafe(32)
        settings.jwt_secret_generated = True
    from app.turn.settings import validate_turn

    settings.turn = validate_turn(settings.turn, settings.announced_ip)
    return settings
