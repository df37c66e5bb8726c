"""The SDK's Room (sdk/python, switchyard-client) against a real server: media both ways, decoded.

Two Rooms exchange video and audio through a `switchyard serve` subprocess, with chat, mute and
leave; and a Room whose socket the server drops (a message over the 256 KiB limit of PROTOCOL.md
section 4 makes it close the WebSocket) joins again, publishes again and subscribes again.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from switchyard_client import Room, SignalingError

from tests.media.client import receive_frames
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, ToneTrack
from tests.signaling_server import serving, signed_in

pytestmark = pytest.mark.timeout(90)
WAIT = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("sdk"))


async def new_room(url: str, name: str = "sdk") -> str:
    owner = await signed_in(url, "Owner", connect=False)
    room = await owner.create_room(name)
    await owner.close()
    return room["id"]


def queue_of(room: Room, event: str) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    room.on(event, lambda *args: queue.put_nowait(args[0] if len(args) == 1 else args))
    return queue


async def next_item(queue: asyncio.Queue, predicate=lambda item: True, timeout: float = WAIT):
    """The next item of `queue` matching `predicate`, within `timeout` seconds."""
    async def scan():
        while True:
            item = await queue.get()
            if predicate(item):
                return item
    return await asyncio.wait_for(scan(), timeout)


def dominant_frequency(frames) -> float:
    """The strongest frequency of decoded audio frames (first channel)."""
    samples = np.concatenate([f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0] for f in frames])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / frames[0].sample_rate)[np.argmax(spectrum[1:]) + 1])


async def drain_until_quiet(track, quiet: float = 1.0, limit: int = 120) -> bool:
    """Read frames until none comes for `quiet` seconds (True), at most `limit` frames (False)."""
    for _ in range(limit):
        try:
            await asyncio.wait_for(track.recv(), quiet)
        except TimeoutError:
            return True
    return False


async def test_two_rooms_exchange_decoded_video_and_audio_chat_mute_and_leave(server):
    room_id = await new_room(server.url)
    alice = await Room.join(server.url, room_id, "Alice")
    bob = await Room.join(server.url, room_id, "Bob", auto_subscribe=False)
    try:
        assert bob.peers[alice.peer_id].display_name == "Alice"
        offered, bob_chat, mutes = queue_of(bob, "producer"), queue_of(bob, "chat"), queue_of(bob, "mute")
        alice_tracks = queue_of(alice, "track")
        video = await alice.publish(MovingBarTrack())
        await bob.publish(ToneTrack())

        info = await next_item(offered)
        assert (info.kind, info.peer_id, info.producer_id) == ("video", alice.peer_id, video.producer_id)
        remote_video = await bob.subscribe(info.producer_id, layer=0)
        assert (remote_video.kind, remote_video.peer.display_name, remote_video.layer) == ("video", "Alice", 0)
        frames, _ = await receive_frames(remote_video.track, 20)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)

        remote_audio = await next_item(alice_tracks)
        assert (remote_audio.kind, remote_audio.peer.display_name) == ("audio", "Bob")
        audio_frames, _ = await receive_frames(remote_audio.track, 50)
        assert abs(dominant_frequency(audio_frames[10:]) - 440) < 10  # the tone, decoded
        late = queue_of(alice, "track")  # a handler registered late hears of the tracks already there
        assert late.get_nowait() is remote_audio

        sent = await alice.chat("hello from the SDK")
        received = await next_item(bob_chat)
        assert (received.text, received.display_name, received.id) == ("hello from the SDK", "Alice", sent.id)

        await video.mute()
        assert await next_item(mutes) == (bob.peers[alice.peer_id], "video", True)
        assert bob.peers[alice.peer_id].video_muted
        assert await drain_until_quiet(remote_video.track), "frames kept coming while muted"
        await video.unmute()
        assert await next_item(mutes) == (bob.peers[alice.peer_id], "video", False)
        await receive_frames(remote_video.track, 5)

        with pytest.raises(NotImplementedError, match="simulcast"):
            await alice.publish(MovingBarTrack(), simulcast=True)

        left, ended = queue_of(bob, "peer-left"), queue_of(bob, "track-ended")
        await alice.leave()
        assert (await next_item(left)).peer_id == alice.peer_id
        assert (await next_item(ended)).producer_id == video.producer_id
        assert bob.subscriptions == {} and alice.peer_id not in bob.peers
        with pytest.raises(SignalingError, match="not_connected"):
            await alice.client.chat("after leave")
    finally:
        await alice.leave()
        await bob.leave()


async def test_reconnects_republishes_and_resubscribes_after_the_server_drops_the_socket(server):
    room_id = await new_room(server.url)
    alice = await Room.join(server.url, room_id, "Alice")
    bob = await Room.join(server.url, room_id, "Bob")
    try:
        alice_tracks, bob_tracks = queue_of(alice, "track"), queue_of(bob, "track")
        disconnected, reconnected = queue_of(alice, "disconnected"), queue_of(alice, "reconnected")
        video = await alice.publish(MovingBarTrack())
        await bob.publish(ToneTrack())
        first_video = await next_item(bob_tracks)
        await receive_frames(first_video.track, 5)
        await receive_frames((await next_item(alice_tracks)).track, 5)
        old_peer, old_producer = alice.peer_id, video.producer_id

        # over 256 KiB in one WebSocket message: the server closes the connection (close code 1009)
        await alice.client.sio.emit("chat", {"text": "x" * 300_000})
        await next_item(disconnected)
        await asyncio.wait_for(reconnected.get(), WAIT)
        assert alice.peer_id != old_peer and video.producer_id != old_producer

        again = await next_item(bob_tracks, lambda remote: remote.producer_id == video.producer_id)
        assert again.peer.peer_id == alice.peer_id and old_peer not in bob.peers
        frames, _ = await receive_frames(again.track, 10)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        audio = await next_item(alice_tracks)
        assert audio.kind == "audio" and audio.peer.display_name == "Bob"
        await receive_frames(audio.track, 10)
        assert list(alice.subscriptions) == [audio.producer_id]
    finally:
        await alice.leave()
        await bob.leave()
