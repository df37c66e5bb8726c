"""Malformed Socket.IO packets (PROTOCOL.md §4) against a real `switchyard serve`, spoken by hand over a
WebSocket where a Socket.IO client could not produce them."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from tests.signaling_server import ServerProcess, signed_in
from tests.test_signaling import raw_socket

pytestmark = pytest.mark.timeout(60)

ACK = 5  # the ack id the malformed packets ask for
NEXT = 900  # the ack id of the valid request sent after them
DEEP = 40  # levels: past the server's 32, well within what JSON decodes
TOO_DEEP = 5000  # levels: past what Python's JSON decoder can decode at all
PLACEHOLDER = {"_placeholder": True, "num": 0}


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# (name, Engine.IO messages: the Socket.IO packet and any binary attachments, ack expected, dropped)
ANSWERED = [
    ("number as name", ['425[5,{}]'], 0),
    ("empty event", ['425[]'], 0),
    ("null as name", ['425[null,{}]'], 0),
    ("list as name", ['425[[1],{}]'], 0),
    ("object as name", ['425[{"a":1}]'], 0),
    ("object instead of array", ['425{"a":1}'], 0),
    ("bare string", ['425"chat"'], 0),
    ("bare number", ['425 7'], 0),  # the space ends the ack id
    ("null", ['425null'], 0),
    ("no data", ['425'], 0),
    ("deeply nested payload", ['425["chat",{"text":' + nested(DEEP) + '}]'], 0),
    ("deeply nested name", ['425[' + nested(DEEP) + ']'], 0),
    ("binary attachments missing", ['451-5["chat",{"text":' + json.dumps(PLACEHOLDER) + '}]'], 0),
    ("placeholder past the attachments",
     ['451-5["chat",{"text":{"_placeholder":true,"num":3}}]', b"\x00\x01"], 0),
    ("placeholder num not an integer",
     ['451-5["chat",{"text":{"_placeholder":true,"num":"0"}}]', b"\x00\x01"], 0),
    ("placeholder as name", ['451-5[' + json.dumps(PLACEHOLDER) + ',{}]', b"\x00\x01"], 1),
    ("too many attachments", ['4517-5["chat",{}]'], 0),
    # not JSON, and would be sent on to other peers (appData): refused whatever the request
    ("NaN", ['425["chat",{"text":"hi","x":NaN}]'], 0),
    ("Infinity", ['425["chat",{"text":"hi","x":-Infinity}]'], 0),
    ("number beyond a double", ['425["chat",{"text":"hi","x":1e999}]'], 0),
]
DROPPED = [
    ("number as name, no ack", ['42[5,{}]'], 1),
    ("empty event, no ack", ['42[]'], 1),
    ("list as name, no ack", ['42[[1],{}]'], 1),
    ("object as name, no ack", ['42[{"a":1}]'], 1),
    ("object instead of array, no ack", ['42{"a":1}'], 1),
    ("bare string, no ack", ['42"x"'], 1),
    ("null, no ack", ['42null'], 1),
    ("no data, no ack", ['42'], 1),
    ("deeply nested payload, no ack", ['42["chat",' + nested(DEEP) + ']'], 1),
    ("nested past the JSON decoder", ['425' + nested(TOO_DEEP)], 1),
    ("nested past the JSON decoder in a payload", ['425["chat",{"text":' + nested(TOO_DEEP) + '}]'], 1),
    ("ack id over 100 digits", ['42' + '9' * 101 + '["chat",{"text":"hi"}]'], 1),
    ("not JSON", ['425["chat",{"text":"hi"}'], 1),
    ("garbage", ['42garbage'], 1),
    ("empty Socket.IO packet", ['4'], 1),
    ("binary attachments missing, no ack", ['451-["chat",' + json.dumps(PLACEHOLDER) + ']'], 1),
    ("attachment count over 10 digits", ['4512345678901-5["chat",{}]'], 1),
    ("binary message without a packet", [b"\x00\x01\x02"], 1),
    ("CONNECT_ERROR from a client", ['44{"message":"x"}'], 1),
    ("unknown packet type", ['47[]'], 1),
    ("packet type not a digit", ['4x[]'], 1),
    ("event in a namespace not connected", ['42/elsewhere,5[5]'], 1),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('malformed')}/m.db")
    yield process
    err = process.stop()
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert "malformed" not in err, err  # logged at debug only: a client cannot fill the log


@pytest.fixture
async def raw_peer(server):
    """A raw socket joined to a room, and an SDK client (Bob) in the same room."""
    bob = await signed_in(server.url, "Bob")
    room = await bob.create_room("malformed")
    await bob.join(room["id"])
    alice = await signed_in(server.url, "Alice", connect=False)
    async with aiohttp.ClientSession() as session:
        ws = await raw_socket(session, server.url, alice.token)
        await ws.send_str(f'421["join",{json.dumps({"roomId": room["id"]})}]')
        joined = await acks_until(ws, 1)
        assert joined[1]["ok"], joined
        await bob.wait_for("user-joined")
        yield ws, joined[1]["data"]["peerId"], bob, session
        await ws.close()
    await alice.close()
    await bob.close()


async def acks_until(ws: aiohttp.ClientWebSocketResponse, ack_id: int) -> dict[int, object]:
    """Every ack (by id) the socket gets up to and including the one with `ack_id`."""
    acks = {}
    while True:
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        found = re.match(r"43(\d+)(.*)", message.data, re.S)
        if found:
            acks[int(found[1])] = json.loads(found[2])[0]
            if int(found[1]) == ack_id:
                return acks


async def malformed_counts(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    found = re.findall(r'^switchyard_signaling_malformed_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


async def send(ws: aiohttp.ClientWebSocketResponse, messages: list) -> None:
    for message in messages:
        await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))


async def check_unharmed(ws, peer_id: str, bob) -> dict[int, object]:
    """The next valid request from the socket works as the same peer, and Bob saw nothing else happen.
    Returns the acks that came before its own."""
    await ws.send_str(f'42{NEXT}["chat",{{"text":"still here"}}]')
    acks = await acks_until(ws, NEXT)
    reply = acks.pop(NEXT)
    assert reply["ok"] and reply["data"]["message"]["peerId"] == peer_id, reply
    assert await bob.wait_for("chat", timeout=5) == reply["data"]["message"]
    with pytest.raises(asyncio.TimeoutError):
        await bob.wait_for("user-left", timeout=0.2)
    return acks


@pytest.mark.parametrize("messages,dropped", [c[1:] for c in ANSWERED], ids=[c[0] for c in ANSWERED])
async def test_a_malformed_event_with_an_ack_id_is_invalid_input(server, raw_peer, messages, dropped):
    ws, peer_id, bob, session = raw_peer
    before = await malformed_counts(session, server.url)
    await send(ws, messages)
    acks = await check_unharmed(ws, peer_id, bob)
    assert list(acks) == [ACK], acks
    reply = acks[ACK]
    assert reply.keys() == {"ok", "error"} and reply["ok"] is False, reply
    assert reply["error"].keys() == {"code", "message"} and reply["error"]["code"] == "invalid_input", reply
    after = await malformed_counts(session, server.url)
    assert after.get("invalid_input", 0) - before.get("invalid_input", 0) == 1
    assert after.get("dropped", 0) - before.get("dropped", 0) == dropped


@pytest.mark.parametrize("messages,dropped", [c[1:] for c in DROPPED], ids=[c[0] for c in DROPPED])
async def test_a_malformed_packet_without_an_ack_id_or_unparseable_is_dropped(server, raw_peer, messages,
                                                                               dropped):
    ws, peer_id, bob, session = raw_peer
    before = await malformed_counts(session, server.url)
    await send(ws, messages)
    assert await check_unharmed(ws, peer_id, bob) == {}
    after = await malformed_counts(session, server.url)
    assert after.get("dropped", 0) - before.get("dropped", 0) == dropped
    assert after.get("invalid_input", 0) == before.get("invalid_input", 0)


async def test_a_binary_event_with_its_attachments_is_an_ordinary_request(raw_peer):
    ws, peer_id, bob, _ = raw_peer
    # the attachment arrives in place of the placeholder: bytes are no chat text
    await send(ws, ['451-5["chat",{"text":' + json.dumps(PLACEHOLDER) + '}]', b"hello"])
    assert (await acks_until(ws, ACK))[ACK]["error"]["code"] == "invalid_input"
    # no attachments announced: an EVENT, answered at once
    await ws.send_str('456["chat",{"text":"binary"}]')
    reply = (await acks_until(ws, 6))[6]
    assert reply["ok"] and reply["data"]["message"]["peerId"] == peer_id, reply
    assert (await bob.wait_for("chat", timeout=5))["text"] == "binary"
    assert await check_unharmed(ws, peer_id, bob) == {}


async def test_a_long_ack_id_is_answered_with_it(raw_peer):
    ws, peer_id, bob, _ = raw_peer
    ack_id = int("9" * 99)
    await ws.send_str(f'42{ack_id}[5]')
    assert (await acks_until(ws, ack_id))[ack_id]["error"]["code"] == "invalid_input"
    assert await check_unharmed(ws, peer_id, bob) == {}


async def test_a_socketio_client_emitting_a_number_gets_invalid_input(server):
    client = await signed_in(server.url, "Numbers")
    room = await client.create_room("numbers")
    joined = await client.join(room["id"])
    for name in (5, 5.5):
        reply = await client.sio.call(name, {}, timeout=5)
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_input", reply
    await client.sio.emit(5, {})  # without an ack: dropped
    assert (await client.chat("still here"))["peerId"] == joined["peerId"]
    await client.close()
