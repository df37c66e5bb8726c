"""REST rooms (PROTOCOL.md §2): create, list, get, delete, and the live-room hooks signaling fills."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.rest_helpers import assert_error, bearer, create_room, register

pytest_plugins = ("tests.rest_fixtures",)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROOM_KEYS = {"id", "name", "ownerId", "isPublic", "maxParticipants", "createdAt", "participantCount"}


async def test_create_room_answers_201_with_the_room(client):
    token, user = await register(client)
    resp = await client.post("/api/rooms", json={"name": " Design review "}, headers=bearer(token))
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"room"}
    room = body["room"]
    assert set(room) == ROOM_KEYS
    uuid.UUID(room["id"])
    assert room["name"] == "Design review" and room["ownerId"] == user["id"]
    assert room["isPublic"] is True and room["maxParticipants"] is None
    assert room["participantCount"] == 0
    assert ISO_Z.match(room["createdAt"]), room["createdAt"]


async def test_create_room_with_every_field(client):
    token, _ = await register(client)
    room = await create_room(client, token, name="Board", isPublic=False, maxParticipants=8)
    assert room["isPublic"] is False and room["maxParticipants"] == 8
    room = await create_room(client, token, name="Open", maxParticipants=None)
    assert room["maxParticipants"] is None


@pytest.mark.parametrize("body", [
    {},
    {"name": ""},
    {"name": "  "},
    {"name": 12},
    {"name": None},
    {"name": "x" * 101},
    {"name": "tab\there"},
    {"name": "ok", "isPublic": "yes"},
    {"name": "ok", "isPublic": 1},
    {"name": "ok", "isPublic": None},
    {"name": "ok", "maxParticipants": 0},
    {"name": "ok", "maxParticipants": -3},
    {"name": "ok", "maxParticipants": "5"},
    {"name": "ok", "maxParticipants": 5.5},
    {"name": "ok", "maxParticipants": True},
    {"name": "ok", "maxParticipants": 10001},
], ids=lambda body: ",".join(f"{k}={str(v)[:10]!r}" for k, v in body.items()) or "empty")
async def test_create_room_refuses_bad_fields(client, body):
    token, _ = await register(client)
    await assert_error(await client.post("/api/rooms", json=body, headers=bearer(token)), 422, "invalid_input")


async def test_create_room_refusals_before_validation(client):
    token, _ = await register(client)
    await assert_error(await client.post("/api/rooms", json={"name": "x"}), 401, "unauthorized")
    resp = await client.post("/api/rooms", json={"name": "x" * (1 << 20)}, headers=bearer(token))
    await assert_error(resp, 413, "payload_too_large")
    resp = await client.post("/api/rooms", data=b'{"name": "x"}', headers={**bearer(token), "Content-Type": "text/plain"})
    await assert_error(resp, 415, "unsupported_media_type")
    resp = await client.post("/api/rooms", data=b'{"name": ', headers={**bearer(token), "Content-Type": "application/json"})
    await assert_error(resp, 400, "invalid_json")


async def test_list_shows_public_rooms_and_the_callers_own(client):
    alice, _ = await register(client, display_name="Alice")
    bob, _ = await register(client, display_name="Bob")
    public_a = await create_room(client, alice, name="A public")
    private_a = await create_room(client, alice, name="A private", isPublic=False)
    public_b = await create_room(client, bob, name="B public")
    private_b = await create_room(client, bob, name="B private", isPublic=False)

    async def listed(token):
        resp = await client.get("/api/rooms", headers=bearer(token))
        assert resp.status == 200
        body = await resp.json()
        assert set(body) == {"rooms"}
        return [room["id"] for room in body["rooms"]]

    # newest first
    assert await listed(alice) == [public_b["id"], private_a["id"], public_a["id"]]
    assert await listed(bob) == [private_b["id"], public_b["id"], public_a["id"]]
    guest = await client.post("/api/auth/guest", json={"displayName": "G"})
    assert await listed((await guest.json())["token"]) == [public_b["id"], public_a["id"]]


async def test_get_room(client):
    alice, _ = await register(client)
    bob, _ = await register(client)
    room = await create_room(client, alice, isPublic=False)
    resp = await client.get(f"/api/rooms/{room['id']}", headers=bearer(bob))
    assert resp.status == 200
    assert await resp.json() == {"room": room}, "a private room is unlisted, not hidden from its link"


@pytest.mark.parametrize("room_id", [
    str(uuid.uuid4()),
    "not-a-uuid",
    "1",
    "x" * 500,
    "%00",
    "%F0%9F%98%80",
    "%ED%A0%80",  # a UTF-16 surrogate, invalid in UTF-8
    "'%20OR%201=1",
])
async def test_unknown_or_malformed_room_ids_are_404(client, room_id):
    token, _ = await register(client)
    real = await create_room(client, token)
    for method, path in [("GET", f"/api/rooms/{room_id}"), ("DELETE", f"/api/rooms/{room_id}"),
                         ("GET", f"/api/rooms/{room_id}/messages")]:
        resp = await client.request(method, path, headers=bearer(token))
        await assert_error(resp, 404, "not_found")
    upper = real["id"].upper()
    await assert_error(await client.get(f"/api/rooms/{upper}", headers=bearer(token)), 404, "not_found")


async def test_room_routes_need_a_token(client):
    token, _ = await register(client)
    room = await create_room(client, token)
    for method, path in [("GET", "/api/rooms"), ("GET", f"/api/rooms/{room['id']}"),
                         ("DELETE", f"/api/rooms/{room['id']}"), ("GET", f"/api/rooms/{room['id']}/messages")]:
        await assert_error(await client.request(method, path), 401, "unauthorized")
        await assert_error(await client.request(method, path, headers=bearer("x.y.z")), 401, "unauthorized")


async def test_owner_deletes_a_room(client):
    token, _ = await register(client)
    room = await create_room(client, token)
    resp = await client.delete(f"/api/rooms/{room['id']}", headers=bearer(token))
    assert resp.status == 204 and await resp.read() == b""
    await assert_error(await client.get(f"/api/rooms/{room['id']}", headers=bearer(token)), 404, "not_found")
    await assert_error(await client.delete(f"/api/rooms/{room['id']}", headers=bearer(token)), 404, "not_found")
    rooms = (await (await client.get("/api/rooms", headers=bearer(token))).json())["rooms"]
    assert rooms == []


async def test_only_the_owner_may_delete(client):
    owner, _ = await register(client)
    other, _ = await register(client)
    room = await create_room(client, owner)
    await assert_error(await client.delete(f"/api/rooms/{room['id']}", headers=bearer(other)), 403, "forbidden")
    resp = await client.get(f"/api/rooms/{room['id']}", headers=bearer(other))
    assert resp.status == 200


async def test_wrong_methods_are_405(client):
    token, _ = await register(client)
    room = await create_room(client, token)
    for method, path in [("PUT", "/api/rooms"), ("PATCH", f"/api/rooms/{room['id']}"),
                         ("POST", f"/api/rooms/{room['id']}"), ("DELETE", "/api/me"),
                         ("GET", "/api/auth/login"), ("POST", f"/api/rooms/{room['id']}/messages")]:
        resp = await client.request(method, path, headers=bearer(token))
        await assert_error(resp, 405, "method_not_allowed")
