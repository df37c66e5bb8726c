"""Short-lived TURN credentials, minted per peer (the TURN REST API convention).

draft-uberti-behave-turn-rest-00: the username is `<expiry as Unix time>:<who>`, the password is
base64(HMAC-SHA1(shared secret, username)). The TURN server (coturn's `use-auth-secret`) recomputes
the password from the username alone and refuses a username whose expiry has passed (401), so nothing
is stored per peer and a leaked credential dies on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from app.turn.settings import TurnSettings


def mint(secret: str, subject: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    """(username, password) valid for `ttl` seconds from `now` for `subject` (a peer id)."""
    expiry = int(time.time() if now is None else now) + ttl
    username = f"{expiry}:{subject}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def url_host(host: str) -> str:
    """An IPv6 literal goes in brackets in a TURN URI (RFC 7065 section 3.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def turn_urls(turn: TurnSettings) -> list[str]:
    """The TURN URIs (RFC 7065) clients get: UDP first (aiortc uses the first), then TCP, then TLS."""
    if turn.mode == "external":
        return list(turn.urls)
    host = url_host(turn.host or "127.0.0.1")
    urls = []
    if "udp" in turn.transports:
        urls.append(f"turn:{host}:{turn.port}?transport=udp")
    if "tcp" in turn.transports:
        urls.append(f"turn:{host}:{turn.port}?transport=tcp")
    if "tls" in turn.transports:
        urls.append(f"turns:{host}:{turn.tls_port}?transport=tcp")
    return urls


def ice_servers(turn: TurnSettings, subject: str, now: float | None = None) -> list[dict[str, Any]]:
    """The `iceServers` of a `createWebRtcTransport` answer (RTCIceServer dictionaries, W3C WebRTC)."""
    if not turn.enabled or not turn.secret:
        return []
    username, credential = mint(turn.secret, subject, turn.ttl, now)
    return [{"urls": turn_urls(turn), "username": username, "credential": credential}]
