"""Chat history (`GET /api/rooms/{roomId}/messages`, PROTOCOL.md §2 and §4) and the store calls
the signaling layer makes: persisting chat messages and room sessions."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.api import STORE
from app.schemas import ChatMessageOut
from tests.rest_helpers import assert_error, bearer, create_room, register

pytest_plugins = ("tests.rest_fixtures",)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def post_messages(app, room_id: str, user: dict, count: int, start: int = 0) -> list[dict]:
    """Messages as the signaling layer stores them; returns their wire shape."""
    store = app[STORE]
    sent = []
    for i in range(start, start + count):
        message = await store.add_chat_message(room_id=room_id, user_id=user["id"], peer_id="peer-1",
                                               display_name=user["displayName"], text=f"message {i}")
        sent.append(ChatMessageOut.of(message).model_dump(mode="json", by_alias=True))
    return sent


async def history(client, token: str, room_id: str, **params) -> list[dict]:
    resp = await client.get(f"/api/rooms/{room_id}/messages", params=params, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == {"messages"}
    return body["messages"]


async def test_history_is_newest_last_in_the_contracts_shape(client, app):
    token, user = await register(client, display_name="Ann")
    room = await create_room(client, token)
    sent = await post_messages(app, room["id"], user, 3)
    got = await history(client, token, room["id"])
    assert got == sent
    assert [m["text"] for m in got] == ["message 0", "message 1", "message 2"]
    first = got[0]
    assert set(first) == {"id", "roomId", "peerId", "userId", "displayName", "text", "ts"}
    assert first["roomId"] == room["id"] and first["userId"] == user["id"]
    assert first["peerId"] == "peer-1" and first["displayName"] == "Ann"
    assert ISO_Z.match(first["ts"])


async def test_an_empty_room_has_an_empty_history(client):
    token, _ = await register(client)
    room = await create_room(client, token)
    assert await history(client, token, room["id"]) == []


async def test_limit_defaults_to_50_and_takes_the_newest(client, app):
    token, user = await register(client)
    room = await create_room(client, token)
    sent = await post_messages(app, room["id"], user, 55)
    assert await history(client, token, room["id"]) == sent[-50:]
    assert await history(client, token, room["id"], limit="3") == sent[-3:]
    assert await history(client, token, room["id"], limit="1") == sent[-1:]
    assert await history(client, token, room["id"], limit="200") == sent


async def test_paging_back_with_before_a_message_id(client, app):
    token, user = await register(client)
    room = await create_room(client, token)
    sent = await post_messages(app, room["id"], user, 12)  # many in one millisecond: ids keep them in order
    pages, before = [], None
    while True:
        params = {"limit": "5"} | ({"before": before} if before else {})
        page = await history(client, token, room["id"], **params)
        if not page:
            break
        pages.append(page)
        before = page[0]["id"]
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [m for page in reversed(pages) for m in page] == sent


async def test_before_an_iso_time(client, app):
    token, user = await register(client)
    room = await create_room(client, token)
    early = await post_messages(app, room["id"], user, 2)
    await asyncio.sleep(0.01)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await post_messages(app, room["id"], user, 2, start=2)
    assert await history(client, token, room["id"], before=cut.isoformat()) == early
    assert await history(client, token, room["id"], before=cut.isoformat().replace("+00:00", "Z")) == early
    naive_utc = cut.replace(tzinfo=None).isoformat()
    assert await history(client, token, room["id"], before=naive_utc) == early
    in_paris = cut.astimezone(ZoneInfo("Europe/Paris")).isoformat()
    assert await history(client, token, room["id"], before=in_paris) == early
    # a message's own `ts` excludes that message and keeps the older ones
    assert await history(client, token, room["id"], before=early[1]["ts"]) == early[:1]
    long_ago = (cut - timedelta(days=3650)).isoformat()
    assert await history(client, token, room["id"], before=long_ago) == []


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "1.5"},
    {"limit": " 5"}, {"limit": "+5"}, {"limit": "5_0"}, {"limit": ""}, {"limit": "9" * 40},
    {"before": ""}, {"before": "yesterday"}, {"before": "2025-13-01T00:00:00Z"}, {"before": "12"},
    {"before": "9999-12-31T23:59:59-05:00"}, {"before": "\x00"},
], ids=lambda p: repr(p)[:40])
async def test_bad_limit_or_before_is_422(client, params):
    token, _ = await register(client)
    room = await create_room(client, token)
    resp = await client.get(f"/api/rooms/{room['id']}/messages", params=params, headers=bearer(token))
    await assert_error(resp, 422, "invalid_input")


async def test_before_a_message_of_another_room_or_no_message_is_422(client, app):
    token, user = await register(client)
    room = await create_room(client, token)
    elsewhere = await create_room(client, token, name="elsewhere")
    other = await post_messages(app, elsewhere["id"], user, 1)
    for before in (other[0]["id"], "00000000-0000-7000-8000-000000000000"):
        resp = await client.get(f"/api/rooms/{room['id']}/messages", params={"before": before},
                                headers=bearer(token))
        await assert_error(resp, 422, "invalid_input")


async def test_history_of_a_private_or_deleted_room(client, app):
    owner, user = await register(client)
    other, _ = await register(client)
    room = await create_room(client, owner, isPublic=False)
    sent = await post_messages(app, room["id"], user, 1)
    assert await history(client, other, room["id"]) == sent
    assert (await client.delete(f"/api/rooms/{room['id']}", headers=bearer(owner))).status == 204
    resp = await client.get(f"/api/rooms/{room['id']}/messages", headers=bearer(owner))
    await assert_error(resp, 404, "not_found")


async def test_messages_do_not_leak_between_rooms(client, app):
    token, user = await register(client)
    one = await create_room(client, token, name="one")
    two = await create_room(client, token, name="two")
    sent_one = await post_messages(app, one["id"], user, 2)
    sent_two = await post_messages(app, two["id"], user, 2, start=2)
    assert await history(client, token, one["id"]) == sent_one
    assert await history(client, token, two["id"]) == sent_two


async def test_room_sessions_record_joins_and_leaves(client, app):
    token, user = await register(client)
    room = await create_room(client, token)
    store = app[STORE]
    stay = await store.session_started(room_id=room["id"], user_id=user["id"], peer_id="peer-9")
    assert stay.left_at is None and stay.joined_at.tzinfo is not None
    await store.session_ended(stay.id)
    await store.session_ended(stay.id)  # a second end keeps the first time
    (recorded,) = await store.room_sessions(room["id"])
    assert recorded.peer_id == "peer-9" and recorded.user_id == user["id"]
    assert recorded.joined_at <= recorded.left_at <= datetime.now(UTC)
    assert recorded.left_at.tzinfo == UTC
