"""The recordings REST routes' refusals, in the contract's error shape, on SQLite and PostgreSQL
(recording itself, through a real call, is tests/test_recording.py)."""

from __future__ import annotations

import uuid

import pytest

from app.api import RUNTIME
from app.config import Settings
from tests.rest_helpers import JWT_SECRET, assert_error, bearer, create_room, register

pytest_plugins = ("tests.rest_fixtures",)


@pytest.fixture
def settings(tmp_path):
    return Settings(jwt_secret=JWT_SECRET, workers=1, recordings_dir=str(tmp_path / "recordings"),
                    recording_min_free_bytes=0)


async def test_recording_refusals(client, app):
    owner, _ = await register(client)
    other, _ = await register(client, display_name="Mallory")
    room = await create_room(client, owner)
    base = f"/api/rooms/{room['id']}/recordings"
    missing = f"{base}/{uuid.uuid4()}"

    resp = await client.get(base, headers=bearer(other))
    assert resp.status == 200 and await resp.json() == {"recordings": []}
    await assert_error(await client.get(base), 401, "unauthorized")
    # someone else's room: 403 for starting, stopping and downloading
    await assert_error(await client.post(base, json={}, headers=bearer(other)), 403, "forbidden")
    await assert_error(await client.delete(missing, headers=bearer(other)), 403, "forbidden")
    await assert_error(await client.get(f"{missing}/file", headers=bearer(other)), 403, "forbidden")
    # unknown room, unknown recording
    unknown_room = f"/api/rooms/{uuid.uuid4()}/recordings"
    for method in ("get", "post"):
        await assert_error(await getattr(client, method)(unknown_room, json={}, headers=bearer(owner)),
                           404, "not_found")
    await assert_error(await client.delete(missing, headers=bearer(owner)), 404, "not_found")
    await assert_error(await client.get(f"{missing}/file", headers=bearer(owner)), 404, "not_found")
    await assert_error(await client.delete(f"{base}/not-an-id", headers=bearer(owner)), 404, "not_found")
    # a body of the wrong shape
    await assert_error(await client.post(base, json={"producerId": 5}, headers=bearer(owner)), 422, "invalid_input")
    await assert_error(await client.post(base, data="{", headers={**bearer(owner), "Content-Type": "application/json"}),
                       400, "invalid_json")
    # nobody has joined: there is no call to record
    await assert_error(await client.post(base, json={}, headers=bearer(owner)), 409, "invalid_state")

    # the disk check comes first: less free space than configured refuses any start
    app[RUNTIME].settings.recording_min_free_bytes = 2**62
    message = await assert_error(await client.post(base, json={}, headers=bearer(owner)), 507, "insufficient_storage")
    assert "free" in message
    resp = await client.get(base, headers=bearer(owner))
    assert await resp.json() == {"recordings": []}, "a refused start leaves no row"
