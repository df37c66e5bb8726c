"""TURN settings: `SWITCHYARD_TURN_*` variables, checked before anything starts (docs/operations.md)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
from dataclasses import dataclass, field

from app.config import ConfigError, check_port, env_default, env_int, parse_int

MODES = ("off", "coturn", "external")
TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORT = 3478  # RFC 8656 section 18: the default port for TURN over UDP and TCP
# Corporate firewalls often let only 443 out; TURN over TLS there looks like HTTPS to them.
DEFAULT_TLS_PORT = 443
# Long enough for a long meeting: coturn checks the expiry on every Refresh, so an allocation whose
# credentials expired dies at its next refresh (a new transport gets new credentials).
DEFAULT_TTL = 12 * 3600
MIN_TTL, MAX_TTL = 60, 7 * 24 * 3600
DEFAULT_RELAY_PORTS = (49152, 65535)  # coturn's own default range
DEFAULT_REALM = "switchyard"


@dataclass
class TurnSettings:
    """Where TURN runs and how its credentials are made; `mode` "off" hands out no `iceServers`."""

    mode: str = "off"
    # the shared secret of coturn's use-auth-secret: random per start when Switchyard runs coturn
    secret: str | None = None
    secret_generated: bool = False
    # the name or IP put in the TURN URLs (a name that the TLS certificate covers for turns:)
    host: str | None = None
    port: int = DEFAULT_PORT
    tls_port: int = DEFAULT_TLS_PORT
    transports: tuple[str, ...] = TRANSPORTS
    cert: str | None = None
    key: str | None = None
    ttl: int = DEFAULT_TTL
    realm: str = DEFAULT_REALM
    relay_ports: tuple[int, int] = DEFAULT_RELAY_PORTS
    # the public address behind a 1:1 NAT (coturn's external-ip); None: the relay's own address
    external_ip: str | None = None
    binary: str = "turnserver"
    # mode "external": the URLs of a TURN server run elsewhere
    urls: tuple[str, ...] = field(default_factory=tuple)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_port_range(value: str, what: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    if not sep:
        raise ConfigError(f"{what} must look like 49152-65535, got {value!r}")
    first, last = parse_int(low.strip(), what), parse_int(high.strip(), what)
    check_port(first, what)
    check_port(last, what)
    if first > last:
        raise ConfigError(f"{what} must go from low to high, got {value!r}")
    return first, last


def turn_settings_from_env() -> TurnSettings:
    """The `SWITCHYARD_TURN*` variables as settings (not yet validated)."""
    env = env_default
    return TurnSettings(
        mode=(env("TURN", "off") or "off").strip().lower(),
        secret=env("TURN_SECRET"),
        host=env("TURN_HOST"),
        port=env_int("TURN_PORT", DEFAULT_PORT),
        tls_port=env_int("TURN_TLS_PORT", DEFAULT_TLS_PORT),
        transports=split_list((env("TURN_TRANSPORTS", ",".join(TRANSPORTS)) or "").lower()),
        cert=env("TURN_CERT"),
        key=env("TURN_KEY"),
        ttl=env_int("TURN_TTL", DEFAULT_TTL),
        realm=env("TURN_REALM", DEFAULT_REALM) or DEFAULT_REALM,
        relay_ports=parse_port_range(env("TURN_RELAY_PORTS", "{}-{}".format(*DEFAULT_RELAY_PORTS)) or "",
                                     "SWITCHYARD_TURN_RELAY_PORTS"),
        external_ip=env("TURN_EXTERNAL_IP"),
        binary=env("TURN_BINARY", "turnserver") or "turnserver",
        urls=split_list(env("TURN_URLS", "") or ""),
    )


def readable_file(path: str | None, what: str) -> str:
    if not path:
        raise ConfigError(f"TURN over TLS needs {what}")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"{what} {path!r} is not a readable file")
    return os.path.abspath(path)


def validate_turn(turn: TurnSettings, announced_ip: str) -> TurnSettings:
    """Check the TURN settings; fill the host (the announced IP) and a random secret for coturn."""
    if turn.mode not in MODES:
        raise ConfigError(f"SWITCHYARD_TURN must be one of {', '.join(MODES)}, got {turn.mode!r}")
    if turn.mode == "off":
        return turn
    if not MIN_TTL <= turn.ttl <= MAX_TTL:
        raise ConfigError(f"SWITCHYARD_TURN_TTL must be between {MIN_TTL} and {MAX_TTL} seconds, got {turn.ttl}")
    if ":" in turn.realm or not turn.realm.isprintable():
        raise ConfigError(f"SWITCHYARD_TURN_REALM {turn.realm!r} must be printable, without ':'")
    if turn.mode == "external":
        if not turn.urls:
            raise ConfigError("SWITCHYARD_TURN=external needs SWITCHYARD_TURN_URLS (turn:host:port?transport=udp,...)")
        for url in turn.urls:
            if not url.startswith(("turn:", "turns:")):
                raise ConfigError(f"TURN URL {url!r} must start with turn: or turns:")
        if not turn.secret:
            raise ConfigError("SWITCHYARD_TURN=external needs SWITCHYARD_TURN_SECRET, the TURN server's shared secret")
        return turn
    # coturn, started here
    found = shutil.which(turn.binary)
    if found is None:
        raise ConfigError(
            f"SWITCHYARD_TURN=coturn but coturn's {turn.binary!r} is not installed: "
            "apt-get install coturn (or set SWITCHYARD_TURN_BINARY, or SWITCHYARD_TURN=off)")
    turn.binary = found
    unknown = [t for t in turn.transports if t not in TRANSPORTS]
    if unknown or not turn.transports:
        raise ConfigError(f"SWITCHYARD_TURN_TRANSPORTS must list some of udp, tcp, tls, got {','.join(turn.transports)!r}")
    check_port(turn.port, "TURN port")
    check_port(turn.tls_port, "TURN TLS port")
    if "tls" in turn.transports:
        if turn.tls_port == turn.port and {"udp", "tcp"} & set(turn.transports):
            raise ConfigError("SWITCHYARD_TURN_TLS_PORT must differ from SWITCHYARD_TURN_PORT")
        turn.cert = readable_file(turn.cert, "SWITCHYARD_TURN_CERT (a PEM certificate chain)")
        turn.key = readable_file(turn.key, "SWITCHYARD_TURN_KEY (its PEM private key)")
    if turn.external_ip is not None:
        try:
            ipaddress.ip_address(turn.external_ip)
        except ValueError:
            raise ConfigError(f"SWITCHYARD_TURN_EXTERNAL_IP {turn.external_ip!r} is not an IP address") from None
    if not turn.secret:
        turn.secret = secrets.token_urlsafe(32)
        turn.secret_generated = True
    if not turn.host:
        turn.host = announced_ip
    return turn
