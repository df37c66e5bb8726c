"""`/api/auth/*` and `/api/me`: accounts, sign-in, guests."""

from __future__ import annotations

from app.api import Call, Endpoint, reply
from app.auth import AUTH
from app.errors import ApiError
from app.schemas import AuthAnswer, GuestBody, LoginBody, MeAnswer, RegisterBody, UserOut
from app.store import EmailTaken, normalize_email

BODY_ERRORS = (400, 413, 415, 422)


async def register(call: Call):
    body: RegisterBody = call.body
    auth = call.request.app[AUTH]
    password_hash = await auth.passwords.hash(body.password)
    try:
        user = await call.store.create_user(email=body.email, display_name=body.display_name,
                                            password_hash=password_hash)
    except EmailTaken:
        raise ApiError(409, "email_taken", "an account with this email exists") from None
    return reply(AuthAnswer(user=UserOut.of(user), token=auth.tokens.issue(user.id)), status=201)


async def login(call: Call):
    body: LoginBody = call.body
    auth = call.request.app[AUTH]
    auth.login_limits.check(normalize_email(body.email), call.request.remote or "unknown")
    user = await call.store.user_by_email(body.email)
    password_hash = user.password_hash if user is not None else None
    if not await auth.passwords.verify(password_hash, body.password) or user is None:
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    if auth.passwords.needs_rehash(password_hash):
        await call.store.set_password_hash(user.id, await auth.passwords.hash(body.password))
    return reply(AuthAnswer(user=UserOut.of(user), token=auth.tokens.issue(user.id)))


async def guest(call: Call):
    body: GuestBody = call.body
    auth = call.request.app[AUTH]
    if not auth.allow_guests:
        raise ApiError(403, "forbidden", "guest sign-in is turned off on this server")
    user = await call.store.create_guest(body.display_name)
    return reply(AuthAnswer(user=UserOut.of(user), token=auth.tokens.issue(user.id)))


async def me(call: Call):
    return reply(MeAnswer(user=UserOut.of(call.me)))


ENDPOINTS = [
    Endpoint("POST", "/api/auth/register", register, "Create an account", "auth", status=201,
             answer=AuthAnswer, auth=False, body=RegisterBody, errors=(*BODY_ERRORS, 409),
             description="Emails are unique regardless of case and are stored lower-cased."),
    Endpoint("POST", "/api/auth/login", login, "Sign in with email and password", "auth",
             answer=AuthAnswer, auth=False, body=LoginBody, errors=(*BODY_ERRORS, 401, 429),
             description="At most 10 attempts a minute per email and 30 per client address (429 `limit_exceeded`)."),
    Endpoint("POST", "/api/auth/guest", guest, "Sign in as a guest", "auth",
             answer=AuthAnswer, auth=False, body=GuestBody, errors=(*BODY_ERRORS, 403),
             description="A new guest account (no email, no password). 403 `forbidden` when the "
                         "server runs with SWITCHYARD_ALLOW_GUESTS=false."),
    Endpoint("GET", "/api/me", me, "The signed-in user", "auth", answer=MeAnswer, errors=(401,)),
]
