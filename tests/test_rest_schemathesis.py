"""Schemathesis against `/api/openapi.json` on a real `switchyard serve` (SQLite and PostgreSQL):
generated valid and invalid requests for every operation; no 5xx, every answer as documented,
every error in the contract's shape."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.openapi import openapi_document
from app.routes import all_endpoints
from tests.conftest import free_port_range
from tests.test_cli import SWITCHYARD, serve_args, wait_for_health
from tests.test_rest_db import create_scratch_database, drop_scratch_database

SCHEMA = schemathesis.openapi.from_dict(openapi_document(all_endpoints()))
JWT_SECRET = "schemathesis-secret-that-is-long-enough-for-hs256"
EXAMPLES_PER_OPERATION = 30


@dataclass
class Server:
    base_url: str
    token: str


def post_json(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_server(db_url: str) -> tuple[subprocess.Popen, str]:
    base = free_port_range(4)
    env = {**os.environ, "SWITCHYARD_JWT_SECRET": JWT_SECRET}
    proc = subprocess.Popen([*SWITCHYARD, *serve_args(base, db=db_url)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env)
    base_url = f"http://127.0.0.1:{base}"
    wait_for_health(f"{base_url}/api/health", proc)
    return proc, base_url


def stop_server(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    return err


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """One `switchyard serve` per database, on a fresh database, with a signed-up user."""
    postgres_url = None
    if request.param == "sqlite":
        db_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('schemathesis')}/api.db"
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        db_url, _ = asyncio.run(create_scratch_database(postgres_url))
    proc, base_url = start_server(db_url)
    try:
        token = post_json(f"{base_url}/api/auth/register",
                          {"email": "fuzz@example.com", "password": "fuzz-password", "displayName": "Fuzz"})["token"]
        post_json(f"{base_url}/api/rooms", {"name": "fuzzed"}, token)
        yield Server(base_url, token)
    finally:
        err = stop_server(proc)
        if postgres_url is not None:
            asyncio.run(drop_scratch_database(postgres_url, db_url))
    assert "Traceback" not in err, err
    assert "unhandled error" not in err, err


def contract_error_shape(ctx, response, case):
    """Every 4xx and 5xx answer is JSON `{"error": {"code": "<snake_case>", "message": "..."}}`."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"error answered as {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message"}, body
    assert isinstance(error["code"], str) and error["code"].replace("_", "").isalpha(), body
    assert error["code"] == error["code"].lower(), body
    assert isinstance(error["message"], str) and error["message"], body
    return True


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_holds_to_the_contract(case, server):
    headers = {"Authorization": f"Bearer {server.token}"}
    response = case.call(base_url=server.base_url, headers=headers, timeout=10)
    case.validate_response(response, headers=headers, additional_checks=[contract_error_shape])
