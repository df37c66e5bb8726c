"""Helpers of the REST tests: sign-up, rooms, and the contract's error shape."""

from __future__ import annotations

import uuid

JWT_SECRET = "rest-tests-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client, email: str | None = None, display_name: str = "Alice",
                   password: str = PASSWORD) -> tuple[str, dict]:
    """A new account: (token, user)."""
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    resp = await client.post("/api/auth/register",
                             json={"email": email, "password": password, "displayName": display_name})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return body["token"], body["user"]


async def create_room(client, token: str, **fields) -> dict:
    resp = await client.post("/api/rooms", json={"name": "Standup", **fields}, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["room"]


async def assert_error(resp, status: int, code: str) -> str:
    """The contract's error: this status, JSON, exactly `{"error": {"code", "message"}}`; returns the message."""
    text_body = await resp.text()
    assert resp.status == status, text_body
    assert resp.content_type == "application/json", text_body
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in text_body
    return body["error"]["message"]
