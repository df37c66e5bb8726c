"""REST accounts (PROTOCOL.md §2): register, login, guest, /api/me, tokens, login rate limits."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from app.api import STORE
from app.auth import AUTH, Passwords
from app.config import Settings
from app.models import User
from app.server import Runtime, create_app
from common.ratelimit import SlidingWindow
from tests.rest_helpers import JWT_SECRET, PASSWORD, assert_error, bearer, register
from tests.test_cli import run_cli

pytest_plugins = ("tests.rest_fixtures",)


async def stored_user(app, user_id: str) -> User:
    async with app[STORE].session() as session:
        return await session.scalar(select(User).where(User.id == user_id))


# register


async def test_register_answers_201_with_user_and_token(client, app):
    resp = await client.post("/api/auth/register", json={
        "email": "Ada.Lovelace@Example.COM", "password": PASSWORD, "displayName": "  Ada  "})
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"user", "token"}
    user = body["user"]
    assert set(user) == {"id", "email", "displayName", "isGuest"}
    assert user["email"] == "ada.lovelace@example.com" and user["displayName"] == "Ada"
    assert user["isGuest"] is False
    uuid.UUID(user["id"])
    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert abs(claims["iat"] - time.time()) < 5
    row = await stored_user(app, user["id"])
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash


async def test_register_refuses_a_taken_email_whatever_its_case(client):
    await register(client, email="bob@example.com")
    resp = await client.post("/api/auth/register", json={
        "email": "BOB@Example.com", "password": PASSWORD, "displayName": "Bob 2"})
    await assert_error(resp, 409, "email_taken")


@pytest.mark.parametrize("body", [
    {},
    {"password": PASSWORD, "displayName": "A"},
    {"email": "a@example.com", "displayName": "A"},
    {"email": "a@example.com", "password": PASSWORD},
    {"email": 42, "password": PASSWORD, "displayName": "A"},
    {"email": "a@example.com", "password": ["x"] * 9, "displayName": "A"},
    {"email": "a@example.com", "password": PASSWORD, "displayName": None},
    {"email": "a@example.com", "password": PASSWORD, "displayName": True},
    {"email": "not-an-email", "password": PASSWORD, "displayName": "A"},
    {"email": "a@example.com", "password": "short", "displayName": "A"},
    {"email": "a@example.com", "password": PASSWORD, "displayName": ""},
    {"email": "a@example.com", "password": PASSWORD, "displayName": "   "},
    {"email": "a@example.com", "password": PASSWORD, "displayName": "bad\x00name"},
    {"email": "a@example.com", "password": PASSWORD, "displayName": "x" * 65},
    {"email": "a@exam\nple.com", "password": PASSWORD, "displayName": "A"},
    {"email": "a" * 250 + "@example.com", "password": PASSWORD, "displayName": "A"},
], ids=lambda body: ",".join(f"{k}={str(v)[:12]!r}" for k, v in body.items()) or "empty")
async def test_register_refuses_bad_fields_with_422(client, body):
    message = await assert_error(await client.post("/api/auth/register", json=body), 422, "invalid_input")
    assert PASSWORD not in message


async def test_register_names_the_missing_field(client):
    resp = await client.post("/api/auth/register", json={"email": "a@example.com", "password": PASSWORD})
    assert "displayName" in await assert_error(resp, 422, "invalid_input")


async def test_lone_surrogate_in_a_password_is_refused_not_a_crash(client):
    resp = await client.post("/api/auth/register", data='{"email": "s@example.com", "password": '
                             '"abcdefgh\\ud800", "displayName": "S"}',
                             headers={"Content-Type": "application/json"})
    await assert_error(resp, 422, "invalid_input")


# bodies that never reach validation


async def test_a_megabyte_string_is_413(client):
    resp = await client.post("/api/auth/register", json={
        "email": "big@example.com", "password": PASSWORD, "displayName": "x" * (1 << 20)})
    await assert_error(resp, 413, "payload_too_large")


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe\x00", b"", b'{"email": "a"', b"[" * 60000],
                         ids=["open-brace", "text", "bad-utf8", "empty", "truncated", "nested-60000-deep"])
async def test_invalid_json_is_400(client, raw):
    resp = await client.post("/api/auth/login", data=raw, headers={"Content-Type": "application/json"})
    await assert_error(resp, 400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
async def test_a_body_that_is_not_an_object_is_422(client, raw):
    resp = await client.post("/api/auth/guest", data=raw, headers={"Content-Type": "application/json"})
    await assert_error(resp, 422, "invalid_input")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_not_sent_as_json_is_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post("/api/auth/guest", data=b'{"displayName": "G"}', headers=headers)
    await assert_error(resp, 415, "unsupported_media_type")


async def test_json_with_a_charset_is_accepted(client):
    resp = await client.post("/api/auth/guest", data=b'{"displayName": "G"}',
                             headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status == 200


# login


async def test_login_with_the_right_password(client):
    _, user = await register(client, email="carol@example.com")
    resp = await client.post("/api/auth/login", json={"email": "Carol@Example.com", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"] == user
    assert jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])["sub"] == user["id"]


@pytest.mark.parametrize("email,password", [
    ("dave@example.com", "wrong password"),
    ("nobody@example.com", PASSWORD),
    ("dave@example.com", ""),
])
async def test_login_with_wrong_credentials_is_401_and_says_nothing_more(client, email, password):
    await register(client, email="dave@example.com")
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert await assert_error(resp, 401, "invalid_credentials") == "wrong email or password"


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"email": 1, "password": PASSWORD}])
async def test_login_with_bad_fields_is_422(client, body):
    await assert_error(await client.post("/api/auth/login", json=body), 422, "invalid_input")


async def test_login_is_limited_per_email(client):
    await register(client, email="eve@example.com")
    for _ in range(10):
        resp = await client.post("/api/auth/login", json={"email": "eve@example.com", "password": "guess-guess"})
        await assert_error(resp, 401, "invalid_credentials")
    resp = await client.post("/api/auth/login", json={"email": "EVE@example.com", "password": PASSWORD})
    await assert_error(resp, 429, "limit_exceeded")
    assert 1 <= int(resp.headers["Retry-After"]) <= 61
    resp = await client.post("/api/auth/login", json={"email": "other@example.com", "password": PASSWORD})
    await assert_error(resp, 401, "invalid_credentials")


async def test_login_is_limited_per_client_address(client):
    for i in range(30):
        resp = await client.post("/api/auth/login", json={"email": f"u{i}@example.com", "password": "x"})
        await assert_error(resp, 401, "invalid_credentials")
    resp = await client.post("/api/auth/login", json={"email": "fresh@example.com", "password": "x"})
    await assert_error(resp, 429, "limit_exceeded")


def test_sliding_window_forgets_old_attempts():
    now = [1000.0]
    window = SlidingWindow(limit=2, window=60, clock=lambda: now[0])
    assert window.allow("k") and window.allow("k") and not window.allow("k")
    assert window.retry_after("k") == 61
    now[0] += 30
    assert not window.allow("k") and window.allow("other")
    now[0] += 30.5
    assert window.allow("k")


def test_sliding_window_forget_drops_a_key_at_once():
    window = SlidingWindow(limit=1, window=60, clock=lambda: 1000.0)
    assert window.allow("peer") and not window.allow("peer")
    window.forget("peer")
    window.forget("never-seen")
    assert window.events == {}
    assert window.allow("peer")


async def test_login_rehashes_a_password_hashed_with_older_parameters(client, app):
    _, user = await register(client, email="frank@example.com")
    old_hash = (await stored_user(app, user["id"])).password_hash
    app[AUTH].passwords = Passwords(PasswordHasher(time_cost=2, memory_cost=8, parallelism=1))
    resp = await client.post("/api/auth/login", json={"email": "frank@example.com", "password": PASSWORD})
    assert resp.status == 200
    new_hash = (await stored_user(app, user["id"])).password_hash
    assert new_hash != old_hash and "t=2" in new_hash


async def test_the_default_hasher_is_argon2id():
    passwords = Passwords()
    password_hash = await passwords.hash("a password")
    assert password_hash.startswith("$argon2id$")
    assert await passwords.verify(password_hash, "a password")
    assert not await passwords.verify(password_hash, "another")
    assert not await passwords.verify("not a hash", "a password")


# guest


async def test_guest_sign_in(client):
    resp = await client.post("/api/auth/guest", json={"displayName": "Guest Gail"})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["isGuest"] is True and body["user"]["email"] is None
    assert body["user"]["displayName"] == "Guest Gail"
    me = await client.get("/api/me", headers=bearer(body["token"]))
    assert (await me.json())["user"] == body["user"]


@pytest.mark.parametrize("body", [{}, {"displayName": ""}, {"displayName": 5}, {"displayName": "x" * 65}])
async def test_guest_with_bad_fields_is_422(client, body):
    await assert_error(await client.post("/api/auth/guest", json=body), 422, "invalid_input")


async def test_guests_can_be_turned_off(aiohttp_client, engine):
    app = create_app(Runtime(Settings(jwt_secret=JWT_SECRET, allow_guests=False), engine=engine))
    client = await aiohttp_client(app)
    resp = await client.post("/api/auth/guest", json={"displayName": "Gus"})
    await assert_error(resp, 403, "forbidden")


def test_allow_guests_setting_is_read_from_the_environment(monkeypatch):
    from app.cli import build_parser, settings_from_args
    from app.config import ConfigError

    def allow_guests(value):
        monkeypatch.setenv("SWITCHYARD_ALLOW_GUESTS", value)
        return settings_from_args(build_parser().parse_args(["serve", "--announced-ip", "127.0.0.1"])).allow_guests

    assert allow_guests("false") is False and allow_guests("0") is False
    assert allow_guests("true") is True and allow_guests("") is True
    with pytest.raises(ConfigError, match="SWITCHYARD_ALLOW_GUESTS"):
        allow_guests("perhaps")


# /api/me and tokens


async def test_me_answers_the_user(client):
    token, user = await register(client)
    resp = await client.get("/api/me", headers=bearer(token))
    assert resp.status == 200 and await resp.json() == {"user": user}


def forge(claims: dict, secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize("make_header", [
    lambda uid: {},
    lambda uid: {"Authorization": ""},
    lambda uid: {"Authorization": "Bearer"},
    lambda uid: {"Authorization": "Bearer "},
    lambda uid: {"Authorization": "Bearer not-a-jwt"},
    lambda uid: {"Authorization": "Basic dXNlcjpwYXNz"},
    lambda uid: bearer(forge({"sub": uid, "iat": int(time.time()), "exp": int(time.time()) + 60},
                             secret="another-secret-that-is-long-enough-for-hs256")),
    lambda uid: bearer(forge({"sub": uid, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600})),
    lambda uid: bearer(forge({"sub": uid, "iat": int(time.time())})),
    lambda uid: bearer(forge({"sub": uid, "exp": int(time.time()) + 60})),
    lambda uid: bearer(forge({"iat": int(time.time()), "exp": int(time.time()) + 60})),
    lambda uid: bearer(forge({"sub": str(uuid.uuid4()), "iat": int(time.time()), "exp": int(time.time()) + 60})),
    lambda uid: bearer(forge({"sub": "../../etc", "iat": int(time.time()), "exp": int(time.time()) + 60})),
    lambda uid: bearer(forge({"sub": uid, "iat": int(time.time()), "exp": int(time.time()) + 60},
                             secret="", algorithm="none")),
    lambda uid: bearer(forge({"sub": uid, "iat": int(time.time()), "exp": int(time.time()) + 60},
                             algorithm="HS512")),
], ids=["none", "empty", "bearer-only", "bearer-blank", "garbage", "basic", "forged", "expired",
        "no-exp", "no-iat", "no-sub", "unknown-user", "odd-sub", "alg-none", "hs512"])
async def test_bad_tokens_are_401(client, make_header):
    _, user = await register(client)
    resp = await client.get("/api/me", headers=make_header(user["id"]))
    await assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_token_says_so(client):
    _, user = await register(client)
    token = forge({"sub": user["id"], "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600})
    assert "expired" in await assert_error(await client.get("/api/me", headers=bearer(token)), 401, "unauthorized")


async def test_a_token_minted_by_switchyard_token_is_accepted(client):
    _, user = await register(client)
    result = run_cli("token", user["id"], "--ttl", "60", env={"SWITCHYARD_JWT_SECRET": JWT_SECRET})
    assert result.returncode == 0, result.stderr
    resp = await client.get("/api/me", headers=bearer(result.stdout.strip()))
    assert resp.status == 200 and (await resp.json())["user"] == user
