"""The SDK Room's data channels against a real server: publish_data, auto-received channels, `data` events.

Two Rooms through a `switchyard serve` subprocess: ordered text and binary messages arrive in order
with their sender and label, a closed channel is seen closed, and after the server drops a Room's
socket its channel is opened again and the channel it received is received again.
"""

from __future__ import annotations

import asyncio

import pytest
from switchyard_client import Room

from tests.signaling_server import serving
from tests.test_sdk import WAIT, new_room, next_item, queue_of

pytestmark = pytest.mark.timeout(90)
MESSAGES = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("sdkdata"))


def message(n: int) -> str | bytes:
    """Text for odd n, binary for even n: each must arrive as it was sent."""
    return f"message {n}" if n % 2 else f"message {n}".encode()


async def collect(queue: asyncio.Queue, count: int) -> list:
    """`count` items of `queue`, each within WAIT seconds."""
    return [await next_item(queue) for _ in range(count)]


async def test_ordered_text_and_binary_messages_arrive_in_order_and_a_closed_channel_is_seen(server):
    room_id = await new_room(server.url)
    alice = await Room.join(server.url, room_id, "Alice")
    bob = await Room.join(server.url, room_id, "Bob")
    try:
        opened, closed, data = queue_of(bob, "data-channel"), queue_of(bob, "data-channel-closed"), queue_of(bob, "data")
        chat = await alice.publish_data("chat", protocol="text")
        cursor = await alice.publish_data("cursor", max_retransmits=0)
        assert (chat.ordered, cursor.ordered) == (True, False)  # a retransmit limit makes it unordered

        remotes = {r.label: r for r in await collect(opened, 2)}
        assert remotes["chat"].peer.peer_id == alice.peer_id and remotes["chat"].peer.display_name == "Alice"
        assert (remotes["chat"].data_producer_id, remotes["chat"].protocol) == (chat.id, "text")
        assert remotes["cursor"].data_producer_id == cursor.id
        assert queue_of(bob, "data-channel").qsize() == 2  # a late handler hears of the open channels
        await asyncio.sleep(0.2)  # the server opens its side of each stream with the association

        for n in range(MESSAGES):
            chat.send(message(n))
        received = await collect(data, MESSAGES)
        assert [m for m, _, _ in received] == [message(n) for n in range(MESSAGES)]
        assert all(peer.peer_id == alice.peer_id and label == "chat" for _, peer, label in received)
        cursor.send(b"\x00\x01")
        assert await next_item(data) == (b"\x00\x01", bob.peers[alice.peer_id], "cursor")

        await chat.close()
        assert (await next_item(closed)).data_producer_id == chat.id
        assert list(bob.data_subscriptions) == [cursor.id] and alice.data_channels == [cursor]
        with pytest.raises(ConnectionError):
            chat.send("after close")
        cursor.send("still open")
        assert (await next_item(data))[0] == "still open"
    finally:
        await alice.leave()
        await bob.leave()


async def test_data_channels_are_opened_again_after_the_server_drops_the_socket(server):
    room_id = await new_room(server.url)
    alice = await Room.join(server.url, room_id, "Alice")
    bob = await Room.join(server.url, room_id, "Bob")
    try:
        bob_opened, bob_data = queue_of(bob, "data-channel"), queue_of(bob, "data")
        alice_opened, alice_data = queue_of(alice, "data-channel"), queue_of(alice, "data")
        reconnected = queue_of(alice, "reconnected")
        alice_channel = await alice.publish_data("alice")
        bob_channel = await bob.publish_data("bob")
        await next_item(bob_opened)
        await next_item(alice_opened)
        old_peer, old_id = alice.peer_id, alice_channel.id

        # over 256 KiB in one WebSocket message: the server closes the connection (close code 1009)
        await alice.client.sio.emit("chat", {"text": "x" * 300_000})
        await asyncio.wait_for(reconnected.get(), WAIT)
        assert alice.peer_id != old_peer and alice_channel.id != old_id

        again = await next_item(bob_opened, lambda remote: remote.data_producer_id == alice_channel.id)
        assert again.peer.peer_id == alice.peer_id and again.label == "alice"
        assert (await next_item(alice_opened)).data_producer_id == bob_channel.id
        await asyncio.sleep(0.2)
        alice_channel.send("from alice, again")
        bob_channel.send(b"from bob")
        assert await next_item(bob_data) == ("from alice, again", bob.peers[alice.peer_id], "alice")
        assert await next_item(alice_data) == (b"from bob", alice.peers[bob.peer_id], "bob")
    finally:
        await alice.leave()
        await bob.leave()
