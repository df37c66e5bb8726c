"""The Socket.IO contract (PROTOCOL.md §3) against a real `switchyard serve`, through the Python SDK."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import jwt
import pytest
import socketio
from switchyard_client import ApiError, SignalingError, SwitchyardClient

from tests.signaling_server import SECRET, ServerProcess, serving, signed_in

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("sig"))


@pytest.fixture
async def pair(server):
    """Two connected guests and a public room made by the first."""
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    room = await alice.create_room("standup")
    yield alice, bob, room
    await alice.close()
    await bob.close()


async def connect_error(url: str, auth) -> str:
    """The `connect_error` message a Socket.IO client gets (or "connected")."""
    client = socketio.AsyncClient(reconnection=False)
    errors = []
    client.on("connect_error", lambda data: errors.append(data))
    try:
        await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return str(errors[0].get("message") if errors and isinstance(errors[0], dict) else errors)
    finally:
        await client.disconnect()
    return "connected"


async def test_bad_tokens_are_refused_at_connect(server):
    now = int(time.time())
    expired = jwt.encode({"sub": "x", "iat": now - 100, "exp": now - 10}, SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "x", "iat": now, "exp": now + 60}, "not-the-secret-" * 3, algorithm="HS256")
    for auth in (None, {}, {"token": ""}, {"token": 42}, {"token": "garbage"}, {"token": expired},
                 {"token": forged}):
        assert "unauthorized" in await connect_error(server.url, auth), auth


async def test_join_announces_peers_and_existing_producers(pair):
    alice, bob, room = pair
    joined = await alice.join(room["id"], "Alice A.")
    assert joined["roomId"] == room["id"] and joined["peers"] == [] and joined["producers"] == []
    caps = joined["routerRtpCapabilities"]
    assert any(c["mimeType"] == "video/VP8" for c in caps["codecs"])
    bob_joined = await bob.join(room["id"])
    assert [p["peerId"] for p in bob_joined["peers"]] == [joined["peerId"]]
    assert bob_joined["peers"][0] == {"peerId": joined["peerId"], "userId": alice.user["id"],
                                      "displayName": "Alice A.", "audioMuted": False,
                                      "videoMuted": False, "handRaised": False}
    event = await alice.wait_for("user-joined")
    assert event["peerId"] == bob_joined["peerId"] and event["displayName"] == "Bob"
    assert (await alice.get_room(room["id"]))["participantCount"] == 2
    listed = {r["id"]: r["participantCount"] for r in await bob.list_rooms()}
    assert listed[room["id"]] == 2
    await bob.leave()
    assert (await alice.wait_for("user-left")) == {"peerId": bob_joined["peerId"]}


async def test_chat_mute_and_hand_reach_the_others_only(pair):
    alice, bob, room = pair
    a = await alice.join(room["id"])
    await bob.join(room["id"])
    message = await alice.chat("hello")
    assert message["text"] == "hello" and message["peerId"] == a["peerId"] and message["ts"].endswith("Z")
    assert await bob.wait_for("chat") == message
    history = await bob.messages(room["id"])
    assert history[-1] == message
    await alice.audio_mute(True)
    assert await bob.wait_for("audio-mute") == {"peerId": a["peerId"], "muted": True}
    await alice.video_mute(True)
    assert await bob.wait_for("video-mute") == {"peerId": a["peerId"], "muted": True}
    await alice.raise_hand(True)
    assert await bob.wait_for("raised-hand") == {"peerId": a["peerId"], "raised": True}
    with pytest.raises(asyncio.TimeoutError):
        await alice.wait_for("chat", timeout=0.3)
    late = await signed_in(alice.base_url, "Late")
    joined = await late.join(room["id"])
    me = next(p for p in joined["peers"] if p["peerId"] == a["peerId"])
    assert me["audioMuted"] and me["videoMuted"] and me["handRaised"]
    await late.close()


async def test_chat_is_rate_limited(pair):
    alice, bob, room = pair
    await alice.join(room["id"])
    results = []
    for index in range(15):
        try:
            await alice.chat(f"m{index}")
            results.append("ok")
        except SignalingError as exc:
            results.append(exc.code)
    assert results[:10] == ["ok"] * 10 and "limit_exceeded" in results[10:]


@pytest.mark.parametrize("event,payload,code", [
    ("join", {}, "invalid_input"),
    ("join", {"roomId": 5}, "invalid_input"),
    ("join", {"roomId": "x" * 1_000}, "invalid_input"),
    ("join", {"roomId": "00000000-0000-0000-0000-000000000000"}, "not_found"),
    ("join", "not an object", "invalid_input"),
    ("createWebRtcTransport", {"direction": "send"}, "invalid_state"),
    ("chat", {"text": "hi"}, "invalid_state"),
    ("no-such-request", {}, "not_found"),
])
async def test_refusals_before_join(pair, event, payload, code):
    alice, _, _ = pair
    with pytest.raises(SignalingError) as caught:
        await alice.request(event, payload)
    assert caught.value.code == code


@pytest.mark.parametrize("event,payload", [
    ("chat", {"text": ""}),
    ("chat", {"text": "x" * 2001}),
    ("chat", {"text": 12}),
    ("audio-mute", {"muted": "yes"}),
    ("raise-hand", {}),
    ("createWebRtcTransport", {"direction": "sideways"}),
    ("connectWebRtcTransport", {"transportId": "t"}),
    ("produce", {"transportId": "t", "kind": "video"}),
    ("consume", {"transportId": "t", "producerId": "p", "rtpCapabilities": "caps"}),
    ("setConsumerPreferredLayers", {"consumerId": "c", "spatialLayer": -1}),
    ("setConsumerPreferredLayers", {"consumerId": "c", "spatialLayer": True}),
])
async def test_bad_payloads_are_invalid_input(pair, event, payload):
    alice, _, room = pair
    await alice.join(room["id"])
    with pytest.raises(SignalingError) as caught:
        await alice.request(event, payload)
    assert caught.value.code == "invalid_input"


@pytest.mark.parametrize("event,payload", [
    ("connectWebRtcTransport", {"transportId": "nope", "dtlsParameters": {"fingerprints": []}}),
    ("restartIce", {"transportId": "nope"}),
    ("closeProducer", {"producerId": "nope"}),
    ("resumeConsumer", {"consumerId": "nope"}),
    ("requestConsumerKeyFrame", {"consumerId": "nope"}),
    ("getStats", {"id": "nope"}),
])
async def test_unknown_ids_are_not_found(pair, event, payload):
    alice, _, room = pair
    await alice.join(room["id"])
    with pytest.raises(SignalingError) as caught:
        await alice.request(event, payload)
    assert caught.value.code == "not_found"


async def test_other_peers_objects_are_out_of_reach(pair):
    alice, bob, room = pair
    await alice.join(room["id"])
    await bob.join(room["id"])
    transport = await alice.create_webrtc_transport("send")
    for event, payload in (("restartIce", {"transportId": transport["id"]}),
                           ("getStats", {"id": transport["id"]})):
        with pytest.raises(SignalingError) as caught:
            await bob.request(event, payload)
        assert caught.value.code == "not_found"


async def test_transport_limits_and_second_connect(pair):
    alice, _, room = pair
    await alice.join(room["id"])
    created = [await alice.create_webrtc_transport("recv") for _ in range(4)]
    assert created[0]["iceParameters"]["iceLite"] is True
    assert created[0]["dtlsParameters"]["role"] == "auto"
    assert {c["protocol"] for c in created[0]["iceCandidates"]} == {"udp", "tcp"}
    tcp = next(c for c in created[0]["iceCandidates"] if c["protocol"] == "tcp")
    assert tcp["tcpType"] == "passive" and tcp["type"] == "host"
    with pytest.raises(SignalingError) as caught:
        await alice.create_webrtc_transport("recv")
    assert caught.value.code == "limit_exceeded"
    fingerprint = {"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}
    await alice.connect_webrtc_transport(created[0]["id"], {"role": "client", "fingerprints": [fingerprint]})
    with pytest.raises(SignalingError) as caught:
        await alice.connect_webrtc_transport(created[0]["id"], {"role": "client", "fingerprints": [fingerprint]})
    assert caught.value.code == "invalid_state"


async def test_full_room_is_refused(server):
    owner = await signed_in(server.url, "Owner")
    room = await owner.create_room("tiny", max_participants=1)
    await owner.join(room["id"])
    guest = await signed_in(server.url)
    with pytest.raises(SignalingError) as caught:
        await guest.join(room["id"])
    assert caught.value.code == "room_full"
    await owner.close()
    await guest.close()


async def test_deleting_a_room_closes_it_for_everyone(pair):
    alice, bob, room = pair
    await alice.join(room["id"])
    await bob.join(room["id"])
    with pytest.raises(ApiError) as caught:
        await bob.delete_room(room["id"])
    assert caught.value.status == 403 and caught.value.code == "forbidden"
    with pytest.raises(asyncio.TimeoutError):
        await bob.wait_for("room-closed", timeout=0.3)
    await alice.delete_room(room["id"])
    assert await bob.wait_for("room-closed") == {"roomId": room["id"]}
    await bob.wait_for("disconnect", timeout=5)


async def test_joining_twice_leaves_first(pair):
    alice, bob, room = pair
    other = await alice.create_room("other")
    first = await alice.join(room["id"])
    await bob.join(room["id"])
    second = await alice.join(other["id"])
    assert second["peerId"] != first["peerId"]
    assert await bob.wait_for("user-left") == {"peerId": first["peerId"]}


async def test_huge_message_does_not_hurt_the_server(pair, server):
    alice, bob, room = pair
    await bob.join(room["id"])
    with pytest.raises((SignalingError, socketio.exceptions.TimeoutError, asyncio.TimeoutError)):
        await alice.request("chat", {"text": "x" * (1 << 20)}, timeout=3)
    fresh = SwitchyardClient(server.url, token=bob.token)
    await fresh.connect()
    assert (await fresh.get_room(room["id"]))["participantCount"] == 1
    await fresh.close()


async def test_server_stops_promptly_with_clients_connected(tmp_path):
    process = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/stop.db")
    client = await signed_in(process.url, "Lingering")
    room = await client.create_room("open")
    await client.join(room["id"])
    started = time.monotonic()
    err = process.stop()
    assert process.process.returncode == 0 and time.monotonic() - started < 10, err
    assert "Traceback" not in err
    await client.wait_for("disconnect", timeout=5)
    await client.close()


async def test_a_request_flood_is_bounded_and_the_socket_stays_usable(pair):
    alice, bob, room = pair
    await alice.join(room["id"])
    replies = await asyncio.gather(*(alice.sio.call("getStats", {"id": "nope"}, timeout=20) for _ in range(500)))
    codes = {r["error"]["code"] for r in replies}
    assert codes <= {"not_found", "limit_exceeded"} and "not_found" in codes
    assert (await alice.chat("still here"))["text"] == "still here"


# Socket.IO's own event names (socket.io-parser's RESERVED_EVENTS); python-socketio's server would run
# its connection handlers for an event named "connect" or "disconnect".
RESERVED_EVENTS = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]


@pytest.mark.parametrize("name", RESERVED_EVENTS)
async def test_reserved_event_names_are_unknown_requests(pair, name):
    alice, bob, room = pair
    joined = await alice.join(room["id"])
    await bob.join(room["id"])
    unknown = await alice.sio.call("no-such-request", {}, timeout=5)
    # also with the arguments the real connection handlers take (auth with a valid token)
    for args in ({}, ({}, {"token": alice.token})):
        reply = await alice.sio.call(name, args, timeout=5)
        assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply
        assert reply.keys() == unknown.keys() and reply["error"].keys() == unknown["error"].keys()
        await alice.sio.emit(name, args)  # without an ack: nothing to answer, nothing happens
    with pytest.raises(asyncio.TimeoutError):
        await bob.wait_for("user-left", timeout=0.5)
    message = await alice.chat("still here")
    assert message["peerId"] == joined["peerId"]
    assert await bob.wait_for("chat") == message
    assert (await alice.get_room(room["id"]))["participantCount"] == 2
    # the real disconnect still runs the cleanup
    await alice.close()
    assert await bob.wait_for("user-left") == {"peerId": joined["peerId"]}


async def test_reserved_event_names_leave_the_server_log_quiet(tmp_path):
    process = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/reserved.db")
    try:
        client = await signed_in(process.url, "Reserved")
        room = await client.create_room("reserved")
        await client.join(room["id"])
        for name in RESERVED_EVENTS:
            await client.sio.emit(name, {})
            await client.sio.emit(name, ({}, {"token": client.token}))
        await asyncio.sleep(0.5)
        await client.close()
    finally:
        err = process.stop()
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert len(err.splitlines()) <= 2 * len(RESERVED_EVENTS), err


# Every request but join and leave, each with a valid payload: only the missing room can refuse it.
ROOM_REQUESTS = [
    ("createWebRtcTransport", {"direction": "send"}),
    ("connectWebRtcTransport", {"transportId": "t", "dtlsParameters": {}}),
    ("restartIce", {"transportId": "t"}),
    ("produce", {"transportId": "t", "kind": "audio", "rtpParameters": {}}),
    ("closeProducer", {"producerId": "p"}),
    ("pauseProducer", {"producerId": "p"}),
    ("resumeProducer", {"producerId": "p"}),
    ("consume", {"transportId": "t", "producerId": "p", "rtpCapabilities": {}}),
    ("resumeConsumer", {"consumerId": "c"}),
    ("pauseConsumer", {"consumerId": "c"}),
    ("setConsumerPreferredLayers", {"consumerId": "c", "spatialLayer": 0}),
    ("requestConsumerKeyFrame", {"consumerId": "c"}),
    ("getStats", {"id": "x"}),
    ("chat", {"text": "hi"}),
    ("audio-mute", {"muted": True}),
    ("video-mute", {"muted": True}),
    ("raise-hand", {"raised": True}),
]


async def test_requests_outside_a_room_are_invalid_state(pair):
    alice, _, room = pair
    assert await alice.leave() == {}  # leave without a room is a no-op
    with pytest.raises(SignalingError) as caught:
        await alice.request("chat", {"text": ""})
    assert caught.value.code == "invalid_input"  # the payload is checked first
    for when in ("before join", "after leave"):
        for event, payload in ROOM_REQUESTS:
            with pytest.raises(SignalingError) as caught:
                await alice.request(event, payload)
            assert caught.value.code == "invalid_state", (when, event)
        await alice.join(room["id"])
        await alice.leave()


MAX_MESSAGE_BYTES = 256 * 1024


async def raw_socket(session: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientWebSocketResponse:
    """A Socket.IO connection spoken by hand over a WebSocket, to send frames of an exact size."""
    ws = await session.ws_connect(url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str(timeout=5)).startswith("0")  # Engine.IO open
    await ws.send_str("40" + json.dumps({"token": token}))  # Socket.IO connect with auth
    assert (await ws.receive_str(timeout=5)).startswith("40{")
    return ws


async def raw_reply(ws: aiohttp.ClientWebSocketResponse, ack_id: int):
    """The ack with this id, or the first non-text message (a close) that comes instead."""
    while True:
        message = await ws.receive(timeout=5)
        if message.type != aiohttp.WSMsgType.TEXT:
            return message
        if message.data.startswith(f"43{ack_id}["):
            return json.loads(message.data[len(f"43{ack_id}"):])[0]


def chat_frame(ack_id: int, size: int) -> str:
    """An Engine.IO message carrying a Socket.IO `chat` request with an ack, `size` bytes long."""
    head, tail = f'42{ack_id}["chat",{{"text":"', '"}]'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def test_a_message_of_256_kib_closes_the_connection(pair, server):
    alice, bob, room = pair
    await bob.join(room["id"])
    async with aiohttp.ClientSession() as session:
        ws = await raw_socket(session, server.url, alice.token)
        await ws.send_str(f'421["join",{json.dumps({"roomId": room["id"]})}]')
        joined = await raw_reply(ws, 1)
        assert joined["ok"], joined
        # one byte under the limit: read and answered (the text is over 2000 characters)
        await ws.send_str(chat_frame(2, MAX_MESSAGE_BYTES - 1))
        reply = await raw_reply(ws, 2)
        assert isinstance(reply, dict) and reply["error"]["code"] == "invalid_input", reply
        # at the limit: no ack, the server closes the WebSocket (1009, message too big)
        await ws.send_str(chat_frame(3, MAX_MESSAGE_BYTES))
        closed = await raw_reply(ws, 3)
        assert not isinstance(closed, dict), closed
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1009, closed
    # as on any disconnect: the peer left its room
    assert await bob.wait_for("user-left") == {"peerId": joined["data"]["peerId"]}
    assert (await bob.get_room(room["id"]))["participantCount"] == 1
