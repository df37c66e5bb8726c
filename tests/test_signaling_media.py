"""Media through the whole stack: SDK signaling to a real server, aiortc media through its worker."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest
from switchyard_client import SignalingError

from tests.media.client import receive_frames
from tests.media.signaled_client import Participant
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, ToneTrack
from tests.signaling_server import ServerProcess, serving, signed_in

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("media"))


async def test_call_events_and_cleanup_through_signaling(server):
    video, audio = MovingBarTrack(), ToneTrack()
    alice = Participant(await signed_in(server.url, "Alice"), [video, audio])
    bob = Participant(await signed_in(server.url, "Bob"))
    room = await alice.sdk.create_room("call")
    await alice.join(room["id"])
    await bob.join(room["id"])
    video_producer = await alice.produce(video)
    audio_producer = await alice.produce(audio)
    announced = [await bob.sdk.wait_for("new-producer") for _ in range(2)]
    assert {a["producerId"] for a in announced} == {video_producer.id, audio_producer.id}
    assert all(a["peerId"] == alice.joined["peerId"] for a in announced)

    video_consumer, video_answer = await bob.consume(video_producer.id)
    audio_consumer, _ = await bob.consume(audio_producer.id)
    assert video_answer["type"] == "simple" and video_answer["producerPaused"] is False
    frames, _ = await receive_frames(video_consumer.track, 30)
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
    assert len((await receive_frames(audio_consumer.track, 10))[0]) == 10

    speaker = await bob.sdk.wait_for("active-speaker", lambda d: d["peerId"] is not None)
    assert speaker["peerId"] == alice.joined["peerId"] and -127 <= speaker["volume"] <= 0
    stats = await bob.sdk.get_stats(video_answer["id"])
    assert stats[0]["packetCount"] > 0

    await alice.sdk.pause_producer(video_producer.id)
    assert await bob.sdk.wait_for("producer-paused") == {"producerId": video_producer.id,
                                                         "peerId": alice.joined["peerId"]}
    assert await bob.sdk.wait_for("consumer-paused") == {"consumerId": video_answer["id"]}
    await alice.sdk.resume_producer(video_producer.id)
    assert await bob.sdk.wait_for("consumer-resumed") == {"consumerId": video_answer["id"]}

    await alice.sdk.close_producer(video_producer.id)
    closed = await bob.sdk.wait_for("consumer-closed")
    assert closed == {"consumerId": video_answer["id"], "producerId": video_producer.id}
    with pytest.raises(SignalingError) as caught:
        await bob.sdk.resume_consumer(video_answer["id"])
    assert caught.value.code == "not_found"

    await alice.sdk.leave()
    assert (await bob.sdk.wait_for("producer-closed", lambda d: d["producerId"] == audio_producer.id))
    assert await bob.sdk.wait_for("user-left") == {"peerId": alice.joined["peerId"]}
    await alice.close()
    await bob.close()


async def test_consume_refusals(server):
    track = MovingBarTrack()
    alice = Participant(await signed_in(server.url), [track])
    bob = Participant(await signed_in(server.url))
    room = await alice.sdk.create_room("r1")
    elsewhere = await alice.sdk.create_room("r2")
    await alice.join(room["id"])
    producer = await alice.produce(track)
    await bob.join(elsewhere["id"])
    transport = await bob.sdk.create_webrtc_transport("recv")
    with pytest.raises(SignalingError) as caught:
        await bob.sdk.consume(transport["id"], producer.id, bob.joined["routerRtpCapabilities"])
    assert caught.value.code == "not_found", "a producer of another room"
    await bob.sdk.leave()
    await bob.join(room["id"])
    transport = await bob.sdk.create_webrtc_transport("recv")
    audio_only = {"codecs": [c for c in bob.joined["routerRtpCapabilities"]["codecs"]
                             if c["kind"] == "audio"], "headerExtensions": []}
    with pytest.raises(SignalingError) as caught:
        await bob.sdk.consume(transport["id"], producer.id, audio_only)
    assert caught.value.code == "cannot_consume"
    send = await bob.sdk.create_webrtc_transport("send")
    with pytest.raises(SignalingError) as caught:
        await bob.sdk.consume(send["id"], producer.id, bob.joined["routerRtpCapabilities"])
    assert caught.value.code == "invalid_input"
    await alice.close()
    await bob.close()


async def test_worker_death_closes_the_room_media_and_peers_can_rejoin(tmp_path):
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/w.db", workers=2)
    try:
        track = MovingBarTrack()
        alice = Participant(await signed_in(server.url, "Alice"), [track])
        bob = Participant(await signed_in(server.url, "Bob"))
        room = await alice.sdk.create_room("fragile")
        await alice.join(room["id"])
        await bob.join(room["id"])
        await alice.produce(track)
        with urllib.request.urlopen(server.url + "/api/health", timeout=5) as response:
            workers = json.loads(response.read())["workers"]
        host = next(w for w in workers if w["rooms"] == 1)
        os.kill(host["pid"], signal.SIGKILL)
        assert await bob.sdk.wait_for("room-closed") == {"roomId": room["id"], "reason": "worker_died"}
        await alice.sdk.wait_for("room-closed")
        # the sockets stay connected: joining again opens the room on the surviving worker
        again = await bob.sdk.join(room["id"])
        assert again["peers"] == []
        second_track = MovingBarTrack()
        rejoined = Participant(alice.sdk, [second_track])
        await rejoined.join(room["id"])
        producer = await rejoined.produce(second_track)
        consumer, _ = await bob.consume(producer.id)
        frames, _ = await receive_frames(consumer.track, 10)
        assert len(frames) == 10
        await rejoined.close()
        await bob.close()
    finally:
        err = server.stop()
    assert "Traceback" not in err


async def test_metrics_show_rooms_peers_objects_and_engine_counters(server):
    import asyncio as _asyncio

    track = MovingBarTrack()
    alice = Participant(await signed_in(server.url, "Alice"), [track])
    bob = Participant(await signed_in(server.url, "Bob"))
    room = await alice.sdk.create_room("metered")
    await alice.join(room["id"])
    await bob.join(room["id"])
    producer = await alice.produce(track)
    consumer, _ = await bob.consume(producer.id)
    await receive_frames(consumer.track, 10)
    await _asyncio.sleep(2.5)  # one poll of the workers' counters
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("switchyard_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["switchyard_rooms"] >= 1 and values["switchyard_peers"] >= 2
    assert values['switchyard_producers{worker="0"}'] >= 1 and values['switchyard_consumers{worker="0"}'] >= 1
    assert values['switchyard_worker_up{worker="0"}'] == 1
    assert values['switchyard_worker_forwarded_packets_total{worker="0"}'] > 0
    assert values['switchyard_worker_packets_received_total{worker="0"}'] > 0
    assert 'switchyard_worker_drops_total{reason="unknown_tuple",worker="0"}' in values
    assert any(name.startswith("switchyard_signaling_requests_total") for name in values)
    await alice.close()
    await bob.close()


async def test_remaining_requests_and_layer_events(server):
    track = MovingBarTrack()
    alice = Participant(await signed_in(server.url, "Alice"), [track])
    bob = Participant(await signed_in(server.url, "Bob"))
    room = await alice.sdk.create_room("requests")
    await alice.join(room["id"])
    await bob.join(room["id"])
    producer = await alice.produce(track)
    consumer, answer = await bob.consume(producer.id)
    layers = await bob.sdk.wait_for("consumer-layers-changed")
    assert layers == {"consumerId": answer["id"], "spatialLayer": 0, "temporalLayer": 0}
    await receive_frames(consumer.track, 5)

    transport_id = bob.recv_transport.id
    ice = await bob.sdk.restart_ice(transport_id)
    assert set(ice) >= {"usernameFragment", "password"} and ice["iceLite"] is True
    await bob.sdk.set_consumer_preferred_layers(answer["id"], 0, 0)
    await bob.sdk.request_consumer_key_frame(answer["id"])
    await bob.sdk.pause_consumer(answer["id"])
    await bob.sdk.resume_consumer(answer["id"])
    await receive_frames(consumer.track, 5)
    transport_stats = await bob.sdk.get_stats(transport_id)
    assert transport_stats[0]["type"] == "webrtc-transport" and transport_stats[0]["rtpPacketsSent"] > 0
    producer_stats = await alice.sdk.get_stats(producer.id)
    assert producer_stats[0]["type"] == "inbound-rtp" and producer_stats[0]["keyFrames"] >= 2
    consumer_stats = await bob.sdk.get_stats(answer["id"])
    assert consumer_stats[0]["type"] == "outbound-rtp"
    with pytest.raises(SignalingError) as caught:
        await alice.sdk.get_stats(answer["id"])
    assert caught.value.code == "not_found", "another peer's consumer"
    await alice.close()
    await bob.close()
