"""A RED publisher (RFC 2198 carrying Opus, as Chrome sends it) through a real worker to a consumer
that negotiated RED and one that did not (aiortc via pymediasoup): both decode the tone.

aiortc speaks no RED, so the publisher is our socket behind a plain transport, sending what Chrome
sends: each packet a RED payload whose primary block is this 20 ms Opus frame and whose redundant
block is the one before. The RED consumer is a plain transport too; the test reads its RED with its
own parser (below, independent of fastpath/red.pyx) and decodes both blocks with aiortc's Opus decoder.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import socket
import time

import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from av import AudioFrame

from tests.media.client import Client, receive_frames
from tests.test_media_call import start_worker

pytestmark = pytest.mark.timeout(60)

SSRC = 44444444
RED_PT, OPUS_PT = 63, 111  # the publisher's, as Chrome numbers them
TONE_HZ = 440


@pytest.fixture
async def worker():
    worker = await start_worker()
    yield worker
    await worker.close()


def tone(index: int) -> AudioFrame:
    """20 ms of a 440 Hz tone, 48 kHz mono."""
    t = (np.arange(960) + 960 * index) / 48000
    frame = AudioFrame.from_ndarray((np.sin(2 * math.pi * TONE_HZ * t) * 8000).astype(np.int16).reshape(1, -1),
                                    format="s16", layout="mono")
    frame.sample_rate = 48000
    frame.pts = 960 * index
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


def red(primary: bytes, previous: bytes | None) -> bytes:
    """RFC 2198 §3: the previous frame (20 ms = 960 ticks back) as the redundant block, then this one."""
    if previous is None:
        return bytes([OPUS_PT]) + primary
    return bytes([0x80 | OPUS_PT, 960 >> 6, ((960 & 0x3F) << 2) | (len(previous) >> 8), len(previous) & 0xFF,
                  OPUS_PT]) + previous + primary


def red_blocks(payload: bytes) -> list[tuple[int, int, bytes]]:
    """(payload type, timestamp offset, data) of each block, the primary last (offset 0)."""
    headers, pos = [], 0
    while payload[pos] & 0x80:
        b = payload[pos:pos + 4]
        headers.append((b[0] & 0x7F, (b[1] << 6) | (b[2] >> 2), ((b[2] & 0x03) << 8) | b[3]))
        pos += 4
    headers.append((payload[pos] & 0x7F, 0, None))
    pos += 1
    blocks = []
    for pt, offset, length in headers:
        length = len(payload) - pos if length is None else length
        blocks.append((pt, offset, payload[pos:pos + length]))
        pos += length
    assert pos == len(payload)
    return blocks


async def publish(sock: socket.socket, target: tuple, frames: int) -> None:
    """Opus frames of the tone in RED packets, paced in real time."""
    encoder, previous, seq = OpusEncoder(), None, 1000
    for index in range(frames):
        for payload in encoder.encode(tone(index))[0]:
            packet = RtpPacket(payload_type=RED_PT, sequence_number=seq & 0xFFFF, timestamp=960 * seq, ssrc=SSRC,
                               payload=red(payload, previous))
            sock.sendto(packet.serialize(), target)
            previous, seq = payload, seq + 1
        await asyncio.sleep(0.02)


def samples(frames: list[AudioFrame]) -> np.ndarray:
    """The first channel of decoded frames, end to end."""
    return np.concatenate([f.to_ndarray().reshape(-1)[:: len(f.layout.channels)] for f in frames]).astype(float)


def dominant_hz(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * 48000 / len(signal)


async def receive_red(sock: socket.socket, count: int, timeout: float = 15) -> list[RtpPacket]:
    loop = asyncio.get_running_loop()
    packets, deadline = [], time.monotonic() + timeout
    while len(packets) < count and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 1)
        except TimeoutError:
            continue
        if not 192 <= data[1] <= 223:  # not RTCP
            packets.append(RtpPacket.parse(data))
    return packets


async def test_red_publisher_to_a_red_and_a_plain_opus_consumer_both_decode(worker):
    router = await worker.create_router()
    caps = router.rtp_capabilities
    router_red, router_opus = (next(c["preferredPayloadType"] for c in caps["codecs"] if c["mimeType"] == mime)
                               for mime in ("audio/red", "audio/opus"))
    source = await router.create_plain_transport(comedia=True)
    await source.connect()
    producer = await source.produce("audio", {
        "codecs": [
            {"mimeType": "audio/red", "payloadType": RED_PT, "clockRate": 48000, "channels": 2,
             "parameters": {f"{OPUS_PT}/{OPUS_PT}": ""}},
            {"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
             "parameters": {"useinbandfec": 1, "minptime": 10}},
        ],
        "encodings": [{"ssrc": SSRC}],
    })

    # an aiortc endpoint: no RED in its capabilities, so it is given Opus (with in-band FEC)
    listener = await Client(router).load()
    opus_consumer, server_opus = await listener.consume(producer.id)
    assert [(c["mimeType"], c["payloadType"]) for c in server_opus.rtp_parameters["codecs"]] == [
        ("audio/opus", router_opus)]
    assert server_opus.rtp_parameters["codecs"][0]["parameters"]["useinbandfec"] == 1
    await server_opus.resume()

    # an endpoint that negotiated RED: a plain transport to our socket
    red_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    red_sink.bind(("127.0.0.1", 0))
    red_sink.setblocking(False)
    out = await router.create_plain_transport()
    await out.connect(*red_sink.getsockname())
    server_red = await out.consume(producer.id, caps, paused=False)
    assert [c["mimeType"] for c in server_red.rtp_parameters["codecs"]] == ["audio/red", "audio/opus"]
    assert server_red.rtp_parameters["codecs"][0]["parameters"] == {f"{router_opus}/{router_opus}": ""}

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as publisher:
        publisher.bind(("127.0.0.1", 0))
        sending = asyncio.ensure_future(publish(publisher, ("127.0.0.1", worker.settings.rtc_port), 150))
        try:
            red_packets = await receive_red(red_sink, 50)
            decoded, _ = await receive_frames(opus_consumer.track, 50)
        finally:
            sending.cancel()
    red_sink.close()

    # the Opus consumer (RED cut to its primary block by the server) hears the tone
    heard = samples(decoded[-25:])
    assert all(f.sample_rate == 48000 for f in decoded)
    assert np.abs(heard).max() > 1000 and abs(dominant_hz(heard) - TONE_HZ) < 10

    # the RED consumer gets RED in the router's payload types, its redundancy intact
    assert len(red_packets) == 50
    assert {p.payload_type for p in red_packets} == {router_red}
    assert {p.ssrc for p in red_packets} == {server_red.rtp_parameters["encodings"][0]["ssrc"]}
    blocks = [red_blocks(p.payload) for p in red_packets]
    assert {pt for packet in blocks for pt, _, _ in packet} == {router_opus}
    for before, after in zip(blocks, blocks[1:], strict=False):
        assert after[0][1:] == (960, before[-1][2])  # the redundant block repeats the primary before
    decoder = OpusDecoder()
    primaries = [frame for p, packet in zip(red_packets, blocks, strict=True)
                 for frame in decoder.decode(JitterFrame(packet[-1][2], p.timestamp))]
    tone_out = samples(primaries[-25:])
    assert np.abs(tone_out).max() > 1000 and abs(dominant_hz(tone_out) - TONE_HZ) < 10

    counters = await worker.request("worker.counters")
    assert counters["drops"]["red_malformed"] == 0 and counters["drops"]["unknown_payload_type"] == 0
    assert (await server_opus.get_stats())[0]["packetCount"] >= 50
    await listener.close()
