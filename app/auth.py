"""Accounts' secrets: argon2 password hashes, JWTs (HS256), login rate limits, and the bearer check."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import ApiError
from app.models import User
from app.store import Store

TOKEN_TTL_SECONDS = 24 * 3600
JWT_ALGORITHM = "HS256"
# Nodes' clocks differ a little; a token issued by one must work on the others at once.
CLOCK_LEEWAY_SECONDS = 30
LOGIN_ATTEMPTS_PER_EMAIL = 10
LOGIN_ATTEMPTS_PER_IP = 30
LOGIN_WINDOW_SECONDS = 60.0


class InvalidToken(Exception):
    """The token is missing, forged, malformed or expired; the message says which for the client."""


class Passwords:
    """argon2id hashes (argon2-cffi's defaults: 64 MiB, 3 passes), computed off the event loop."""

    def __init__(self, hasher: PasswordHasher | None = None):
        self.hasher = hasher or PasswordHasher()
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if the password matches; an account without a hash still costs one verification,
        so the answer's timing does not tell which emails are registered."""
        if password_hash is None:
            if self._decoy is None:
                self._decoy = await self.hash(secrets.token_urlsafe(16))
            password_hash = self._decoy
            password = ""
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


class Tokens:
    """JWTs with `sub` (the user id), `iat` and `exp`, signed with HS256."""

    def __init__(self, secret: str, ttl: int = TOKEN_TTL_SECONDS, clock: Callable[[], float] = time.time):
        self.secret = secret
        self.ttl = ttl
        self.clock = clock

    def issue(self, user_id: str) -> str:
        now = int(self.clock())
        return jwt.encode({"sub": user_id, "iat": now, "exp": now + self.ttl}, self.secret,
                          algorithm=JWT_ALGORITHM)

    def subject(self, token: str) -> str:
        """The user id a valid token names; InvalidToken otherwise."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=[JWT_ALGORITHM], leeway=CLOCK_LEEWAY_SECONDS,
                                options={"require": ["sub", "exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise InvalidToken("the token is not valid")
        return subject


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key."""

    MAX_KEYS = 100_000

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for `key`, unless the key is over its limit (then False, and nothing counted)."""
        now = self.clock()
        recent = self.events.get(key)
        if recent is None:
            if len(self.events) >= self.MAX_KEYS:
                self._forget_idle(now)
            recent = self.events[key] = deque()
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            return False
        recent.append(now)
        return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may try again."""
        recent = self.events.get(key)
        if not recent:
            return 0
        return max(1, int(recent[0] + self.window - self.clock()) + 1)

    def forget(self, key: str) -> None:
        """Drop `key`'s events: for keys that end (a peer that left), so they are not kept until
        MAX_KEYS is reached."""
        self.events.pop(key, None)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, q in self.events.items() if not q or q[-1] <= now - self.window]:
            del self.events[key]


@dataclass
class LoginLimits:
    """Login attempts allowed per email and per client address (in-process, per node)."""

    per_email: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(LOGIN_ATTEMPTS_PER_EMAIL, LOGIN_WINDOW_SECONDS))
    per_ip: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(LOGIN_ATTEMPTS_PER_IP, LOGIN_WINDOW_SECONDS))

    def check(self, email: str, ip: str) -> None:
        """Count one attempt; ApiError 429 `limit_exceeded` when either limit is reached."""
        for window, key in ((self.per_ip, ip), (self.per_email, email)):
            if not window.allow(key):
                error = ApiError(429, "limit_exceeded", "too many login attempts; try again later")
                error.headers["Retry-After"] = str(window.retry_after(key))
                raise error


@dataclass
class Auth:
    """What the routes need to sign people in; one per application, at `app[AUTH]`."""

    tokens: Tokens
    passwords: Passwords = field(default_factory=Passwords)
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    allow_guests: bool = True


AUTH = web.AppKey("auth", Auth)


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`; InvalidToken if there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("send `Authorization: Bearer <token>`")
    return token.strip()


async def user_for_token(store: Store, tokens: Tokens, token: str) -> User:
    """The user a token belongs to; InvalidToken if the token is bad or the user is gone.

    Socket.IO's connect handler uses this too, with `auth.token`.
    """
    user = await store.user(tokens.subject(token))
    if user is None:
        raise InvalidToken("the token's user does not exist")
    return user


def unauthorized(reason: str) -> ApiError:
    error = ApiError(401, "unauthorized", reason)
    error.headers["WWW-Authenticate"] = "Bearer"
    return error
