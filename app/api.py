"""Declared endpoints: each route names its body, query and answer models, whether it needs a
token, and which errors it can give. One table serves routing, validation and the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from app.auth import AUTH, InvalidToken, bearer_token, unauthorized, user_for_token
from app.errors import ApiError
from app.models import User
from app.store import Store

# The running server's state (app.server.Runtime); a typed key, as aiohttp asks.
RUNTIME = web.AppKey("runtime", object)

STORE = web.AppKey("store", Store)
JSON_TYPES = ("application/json",)
MAX_ERRORS_SHOWN = 3


@dataclass
class Call:
    """One request as a handler sees it: validated body and query, and the caller if signed in."""

    request: web.Request
    user: User | None = None
    body: Any = None
    query: Any = None

    @property
    def store(self) -> Store:
        return self.request.app[STORE]

    @property
    def runtime(self):
        return self.request.app[RUNTIME]

    @property
    def me(self) -> User:
        assert self.user is not None, "only for endpoints with auth=True"
        return self.user


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    status: int = 200
    answer: type[BaseModel] | None = None  # None: no JSON body (204, or `media_type` below)
    errors: tuple[int, ...] = ()  # answered with the contract's error shape
    other_answers: tuple[tuple[int, type[BaseModel], str], ...] = ()  # (status, model, description)
    auth: bool = True
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    media_type: str = "application/json"
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def reply(answer: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=answer.model_dump_json(by_alias=True), status=status,
                        content_type="application/json")


def describe(error: ValidationError, where: str) -> str:
    """A short human account of what failed validation, naming the fields as the client spells them."""
    parts = []
    for item in error.errors()[:MAX_ERRORS_SHOWN]:
        field = ".".join(str(p) for p in item["loc"]) or where
        if item["type"] == "string_pattern_mismatch":
            detail = "must contain a visible character and no control characters"
            if field == "email":
                detail = "must be an email address"
        elif item["type"] == "missing":
            detail = "is required"
        else:
            detail = item["msg"][0].lower() + item["msg"][1:]
        parts.append(f"{field}: {detail}")
    more = len(error.errors()) - MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def invalid_input(message: str) -> ApiError:
    return ApiError(422, "invalid_input", message)


async def read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)")
    raw = await request.read()  # over client_max_size: 413, answered by the error middleware
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or nested past the parser's depth
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid_input("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(describe(exc, "body")) from None


def read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    first_values = {key: request.query.get(key) for key in request.query}
    try:
        return model.model_validate(first_values)
    except ValidationError as exc:
        raise invalid_input(describe(exc, "query")) from None


async def signed_in_user(request: web.Request) -> User:
    try:
        return await user_for_token(request.app[STORE], request.app[AUTH].tokens, bearer_token(request))
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from None


def bind(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for an endpoint: token, then body, then query, then the endpoint's own code."""

    async def handle(request: web.Request) -> web.StreamResponse:
        call = Call(request)
        if endpoint.auth:
            call.user = await signed_in_user(request)
        if endpoint.body is not None:
            call.body = await read_body(request, endpoint.body)
        if endpoint.query is not None:
            call.query = read_query(request, endpoint.query)
        return await endpoint.handler(call)

    handle.__name__ = endpoint.operation_id
    return handle


@web.middleware
async def keep_allow_header(request: web.Request, handler) -> web.StreamResponse:
    """A 405 lists the allowed methods (RFC 9110); the error middleware answers aiohttp's own
    405 afresh, so it is turned into an ApiError that keeps the `Allow` header."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        error = ApiError(405, "method_not_allowed", f"{request.method} is not allowed on this path")
        error.headers["Allow"] = exc.headers.get("Allow", "")
        raise error from None


def route_defs(endpoints: list[Endpoint]) -> list[web.RouteDef]:
    return [web.route(e.method, e.path, bind(e)) for e in endpoints]
