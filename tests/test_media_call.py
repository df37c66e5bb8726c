"""Real calls through a real worker: aiortc clients (via pymediasoup) send and receive over UDP.

Issue 4's tests 1, 2 and 4-7: decoding on the far side, each SRTP profile the
client offers, key-frame requests, ICE restart and consent, close cascades and
a dead worker, and a flood of bad datagrams during a call.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import time

import aiortc.rtcdtlstransport as aiortc_dtls
import pytest
from pymediasoup.transport import IceParameters

from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets
from tests.conftest import free_port_range
from tests.media.client import Client, receive_frames
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, ToneTrack

pytestmark = pytest.mark.timeout(90)


async def start_worker(consent_timeout: float = 30.0) -> Worker:
    port = free_port_range(1)
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    worker = Worker(WorkerSettings(0, "127.0.0.1", port, "127.0.0.1", "warning",
                                   consent_timeout=consent_timeout), udp, tcp)
    await worker.start()
    return worker


@pytest.fixture
async def worker():
    worker = await start_worker()
    yield worker
    await worker.close()


async def call(router, with_audio: bool = True):
    """A sends a moving picture (and a tone); B consumes and resumes everything."""
    video = MovingBarTrack()
    tracks = [video] + ([ToneTrack()] if with_audio else [])
    alice = await Client(router, tracks).load()
    bob = await Client(router).load()
    producers = [await alice.produce(track) for track in tracks]
    consumers = []
    for _, server_producer in producers:
        client_consumer, server_consumer = await bob.consume(server_producer.id)
        await server_consumer.resume()
        consumers.append((client_consumer, server_consumer))
    return alice, bob, producers, consumers


async def test_video_and_audio_are_decoded_by_the_receiver(worker):
    router = await worker.create_router()
    start = time.monotonic()
    alice, bob, producers, consumers = await call(router)
    (video_consumer, server_video), (audio_consumer, server_audio) = consumers
    frames, first = await receive_frames(video_consumer.track, 60)
    print(f"\njoin to first decoded video frame: {first - start:.3f}s")
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
    # the picture moves: decoded frames differ from each other
    assert len({f.to_ndarray(format="gray").tobytes()[:4096] for f in frames[-10:]}) > 1
    audio, _ = await receive_frames(audio_consumer.track, 25)
    assert all(f.sample_rate == 48000 for f in audio)
    tone = audio[-1].to_ndarray()
    assert abs(tone).max() > 1000, "the tone survives the trip"
    stats = (await server_video.get_stats())[0]
    assert stats["packetCount"] >= 60 and stats["currentLayer"] == 0
    await alice.close()
    await bob.close()


AIORTC_PROFILES = {
    "AEAD_AES_256_GCM": aiortc_dtls.SRTP_AEAD_AES_256_GCM,
    "AEAD_AES_128_GCM": aiortc_dtls.SRTP_AEAD_AES_128_GCM,
    "AES_CM_128_HMAC_SHA1_80": aiortc_dtls.SRTP_AES128_CM_SHA1_80,
}


# aiortc has no AES_CM_128_HMAC_SHA1_32; tests/test_forwarder.py covers it with our own sessions.
@pytest.mark.parametrize("profile", list(AIORTC_PROFILES))
async def test_call_under_each_srtp_profile_the_client_offers(worker, monkeypatch, profile):
    # the client offers only this profile, so the handshake must settle on it
    monkeypatch.setattr(aiortc_dtls, "SRTP_PROFILES", [AIORTC_PROFILES[profile]])
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router, with_audio=False)
    frames, _ = await receive_frames(consumers[0][0].track, 30)
    assert len(frames) == 30
    assert alice.server_send.srtp_crypto_suite == profile
    assert bob.server_recv.srtp_crypto_suite == profile
    await alice.close()
    await bob.close()


async def wait_for(predicate, timeout: float = 8.0, interval: float = 0.1):
    """Poll an async predicate until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def test_pli_from_the_receiver_and_resume_ask_the_sender_for_key_frames(worker):
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router, with_audio=False)
    client_consumer, server_consumer = consumers[0]
    server_producer = producers[0][1]
    await receive_frames(client_consumer.track, 10)

    async def key_frames() -> int:
        return sum(s["keyFrames"] for s in await server_producer.get_stats())

    await asyncio.sleep(0.6)  # past the 500 ms relay limit of the resume's own request
    before = await key_frames()
    receiver = bob.recv_transport._handler.pc.getTransceivers()[0].receiver
    await receiver._send_rtcp_pli(server_consumer.rtp_parameters["encodings"][0]["ssrc"])
    await wait_for(lambda: _greater(key_frames, before))
    assert (await server_consumer.get_stats())[0]["pliCount"] >= 1

    before = await key_frames()
    await server_consumer.pause()
    await server_consumer.resume()
    await wait_for(lambda: _greater(key_frames, before))
    frames, _ = await receive_frames(client_consumer.track, 10)
    assert len(frames) == 10
    await alice.close()
    await bob.close()


async def _greater(getter, value) -> bool:
    return await getter() > value


def stun_request(ufrag_pair: str, password: str, use_candidate: bool = False) -> bytes:
    """A Binding request as a controlling ICE agent sends it (RFC 8445 §7.1.2), nominating if asked."""
    from aioice import stun

    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id=os.urandom(12))
    message.attributes["USERNAME"] = ufrag_pair
    message.attributes["PRIORITY"] = 1853824767
    message.attributes["ICE-CONTROLLING"] = random.getrandbits(64)
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    message.add_message_integrity(password.encode())
    message.add_fingerprint()
    return bytes(message)


async def stun_exchange(port: int, request: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request, ("127.0.0.1", port))
        return await asyncio.get_running_loop().run_in_executor(None, sock.recv, 2048)


async def test_ice_restart_keeps_media_flowing_and_new_credentials_work(worker):
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router, with_audio=False)
    await receive_frames(consumers[0][0].track, 10)
    old = dict(bob.server_recv.ice_parameters)
    new = await bob.server_recv.restart_ice()
    assert new["usernameFragment"] != old["usernameFragment"] and new["password"] != old["password"]
    await bob.recv_transport.restartIce(iceParameters=IceParameters(**new))
    frames, _ = await receive_frames(consumers[0][0].track, 30)
    assert len(frames) == 30
    port = worker.settings.rtc_port
    ok = await stun_exchange(port, stun_request(f"{new['usernameFragment']}:probe", new["password"]))
    assert ok[:2] == b"\x01\x01", "success response to the new credentials"
    bad = await stun_exchange(port, stun_request(f"{new['usernameFragment']}:probe", "wrong" * 6))
    assert bad[:2] == b"\x01\x11", "error response (401) to a wrong password"
    await alice.close()
    await bob.close()


async def test_consent_expiry_is_reported():
    worker = await start_worker(consent_timeout=2.0)
    try:
        router = await worker.create_router()
        alice, bob, producers, consumers = await call(router, with_audio=False)
        await receive_frames(consumers[0][0].track, 5)
        states = []
        bob.server_recv.on("icestatechange", states.append)
        # the client vanishes without a word: no more consent checks arrive
        await bob.recv_transport._handler.pc.close()
        await wait_for(_async(lambda: "disconnected" in states), timeout=8)
        assert bob.server_recv.ice_state == "disconnected"
        await alice.close()
    finally:
        await worker.close()


def _async(predicate):
    async def check():
        return predicate()
    return check


async def test_close_cascades_empty_every_table(worker):
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router)
    await receive_frames(consumers[0][0].track, 5)
    closed = []
    for _, server_consumer in consumers:
        server_consumer.on("producerclose", lambda c=server_consumer: closed.append(c.id))
    await alice.server_send.close()
    assert sorted(closed) == sorted(c.id for _, c in consumers)
    assert not bob.server_recv.consumers and not router.producers
    dump = await worker.request("worker.dump")
    tables = dump["tables"]
    assert tables["streams"] == 0 and tables["consumers"] == 0 and tables["producers"] == 0
    await router.close()
    tables = (await worker.request("worker.dump"))["tables"]
    assert all(count == 0 for count in tables.values()), tables
    assert not worker.routers
    await alice.close()
    await bob.close()


async def test_killed_worker_closes_everything_and_is_reported():
    worker = await start_worker()
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router, with_audio=False)
    await receive_frames(consumers[0][0].track, 5)
    died, router_closed = asyncio.Event(), asyncio.Event()
    worker.on("died", lambda code: died.set())
    router.on("workerclose", router_closed.set)
    os.kill(worker.pid, signal.SIGKILL)
    await asyncio.wait_for(died.wait(), 5)
    await asyncio.wait_for(router_closed.wait(), 5)
    assert router.closed and alice.server_send.closed and consumers[0][1].closed
    assert not worker.routers
    await alice.close()
    await bob.close()
    await worker.close()


def hostile_datagrams(count: int, ufrag: str, seed: int = 4) -> list[bytes]:
    """Random bytes and mutations of every packet class the worker demuxes (RFC 7983)."""
    rng = random.Random(seed)
    stun = stun_request(f"{ufrag}:evil", "not-the-password-at-all-0123456")
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(10) + bytes([0, 100]) + bytes(rng.getrandbits(8) for _ in range(100))
    rtp = bytes([0x80, 96]) + bytes(rng.getrandbits(8) for _ in range(150))
    rtcp = bytes([0x81, 201, 0, 7]) + bytes(rng.getrandbits(8) for _ in range(28))
    seeds = [stun, dtls, rtp, rtcp]
    out = []
    for i in range(count):
        if i % 5 == 4:
            out.append(rng.randbytes(rng.randrange(0, 1400)))
            continue
        packet = bytearray(seeds[i % 4])
        for _ in range(rng.randrange(1, 6)):
            packet[rng.randrange(len(packet))] = rng.getrandbits(8)
        if rng.random() < 0.2:
            packet = packet[: rng.randrange(len(packet) + 1)]
        out.append(bytes(packet))
    return out


async def test_flood_of_bad_datagrams_does_not_hurt_the_call(worker):
    router = await worker.create_router()
    alice, bob, producers, consumers = await call(router, with_audio=False)
    track = consumers[0][0].track
    await receive_frames(track, 5)
    datagrams = hostile_datagrams(100_000, bob.server_recv.ice_parameters["usernameFragment"])
    target = ("127.0.0.1", worker.settings.rtc_port)

    def flood():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for index, datagram in enumerate(datagrams):
                sock.sendto(datagram, target)
                if index % 2000 == 1999:
                    time.sleep(0.005)  # let the call's packets interleave with the flood

    flooding = asyncio.get_running_loop().run_in_executor(None, flood)
    frames, _ = await receive_frames(track, 30)
    await flooding
    frames, _ = await receive_frames(track, 15)
    assert len(frames) == 15
    counters = await worker.request("worker.counters")
    dropped = sum(counters["drops"].values()) + sum(counters["controlDrops"].values())
    assert counters["drops"]["unknown_tuple"] > 10_000
    assert counters["drops"]["unknown_class"] > 1_000
    assert dropped > 30_000
    assert (await worker.request("worker.dump"))["pid"] == worker.pid
    await alice.close()
    await bob.close()


async def test_active_speaker_follows_the_audio_level(worker):
    router = await worker.create_router()
    speakers = []
    router.on("activespeaker", speakers.append)
    alice, bob, producers, consumers = await call(router)
    audio_producer = producers[1][1]
    # aiortc's sender writes the RFC 6464 level of every Opus frame; a steady tone is loud enough
    await wait_for(_async(lambda: any(s["producerId"] == audio_producer.id for s in speakers)))
    event = next(s for s in speakers if s["producerId"] == audio_producer.id)
    assert -70 < event["volume"] <= 0
    await producers[1][1].pause()
    await wait_for(_async(lambda: speakers[-1] == {"producerId": None, "volume": None}))
    await alice.close()
    await bob.close()


async def call_over_a_lossy_link(worker, direction: str):
    """Alice sends video to Bob; one of them is behind a relay losing 1 media packet in 15 the
    given way. Returns the 60 frames Bob decoded and the server's producer and consumer stats."""
    from tests.media.lossy import LossyRelay

    router = await worker.create_router()
    relay = await LossyRelay.start(("127.0.0.1", worker.settings.rtc_port), every=15, direction=direction)
    try:
        video = MovingBarTrack()
        alice = await Client(router, [video], relay=relay.address if direction == "up" else None).load()
        bob = await Client(router, relay=relay.address if direction == "down" else None).load()
        _, server_producer = await alice.produce(video)
        client_consumer, server_consumer = await bob.consume(server_producer.id)
        await server_consumer.resume()
        frames, _ = await receive_frames(client_consumer.track, 60)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        assert relay.dropped > 0
        stats = (await server_producer.get_stats())[0], (await server_consumer.get_stats())[0]
        await alice.close()
        await bob.close()
        return frames, *stats
    finally:
        relay.close()


async def test_uplink_loss_is_repaired_with_nack_and_rtx(worker):
    _, producer_stats, _ = await call_over_a_lossy_link(worker, "up")
    assert producer_stats["nackCount"] > 0, "the worker asked the sender for what the link lost"
    assert producer_stats["rtxPacketsReceived"] > 0, "and the sender's RTX repairs were unwrapped"


async def test_downlink_loss_is_repaired_with_rtx_to_the_receiver(worker):
    frames, _, consumer_stats = await call_over_a_lossy_link(worker, "down")
    assert consumer_stats["nackCount"] > 0, "the receiver asked for what the link lost"
    assert consumer_stats["retransmittedPackets"] > 0 and consumer_stats["rtxSsrc"], "and got it as RTX"
    # a repaired frame is decoded in its turn: no frame is missing between the first and last
    steps = [b.pts - a.pts for a, b in zip(frames[5:], frames[6:], strict=False)]
    assert max(steps) < 1.5 * sorted(steps)[len(steps) // 2], steps
