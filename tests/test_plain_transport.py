"""Plain transports with real media: a VP8 RTP source (our test socket, as ffmpeg would send) into a
WebRTC call, and a WebRTC producer out to a plain receiver that decodes it; plain RTP and SRTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import time

import pytest
from aiortc.codecs import depayload
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpPacket, RtpPacket
from fastpath.srtp import SrtpSession

from tests.media.client import Client, receive_frames
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, moving_bar
from tests.test_media_call import start_worker

pytestmark = pytest.mark.timeout(60)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=101)
SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture
async def worker():
    worker = await start_worker()
    yield worker
    await worker.close()


class RtpSource:
    """What ffmpeg's RTP muxer does: encode VP8, packetize (RFC 7741), send; answers PLI with a key frame."""

    def __init__(self, ssrc: int, srtp: SrtpSession | None, srtp_in: SrtpSession | None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.ssrc = ssrc
        self.srtp = srtp
        self.srtp_in = srtp_in
        self.encoder = Vp8Encoder()
        self.seq = 1000
        self.plis = 0

    def key_frame_wanted(self) -> bool:
        wanted = False
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return wanted
            if self.srtp_in is not None:
                data = self.srtp_in.rtcp_unprotect(data)
            for packet in RtcpPacket.parse(data):
                if getattr(packet, "fmt", None) == 1 and packet.media_ssrc == self.ssrc:
                    self.plis += 1
                    wanted = True

    async def run(self, target: tuple, frames: int) -> None:
        for index in range(frames):
            payloads, timestamp = self.encoder.encode(moving_bar(index), self.key_frame_wanted() or index == 0)
            for n, payload in enumerate(payloads):
                packet = RtpPacket(payload_type=101, sequence_number=self.seq & 0xFFFF, timestamp=timestamp,
                                   ssrc=self.ssrc, marker=int(n == len(payloads) - 1), payload=payload)
                self.seq += 1
                data = packet.serialize()
                self.sock.sendto(self.srtp.protect(data) if self.srtp else data, target)
            await asyncio.sleep(1 / 30)


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_plain_rtp_source_is_decoded_by_a_webrtc_consumer(worker, srtp, caplog):
    router = await worker.create_router()
    plain = await router.create_plain_transport(comedia=True, enable_srtp=srtp, srtp_crypto_suite=SUITE)
    source_key = os.urandom(30)
    sessions = (None, None)
    if srtp:
        server_key = base64.b64decode(plain.srtp_parameters["keyBase64"])
        sessions = (SrtpSession(SUITE, source_key, "outbound"), SrtpSession(SUITE, server_key, "inbound"))
    await plain.connect(srtp_parameters={"cryptoSuite": SUITE, "keyBase64": base64.b64encode(source_key).decode()}
                        if srtp else None)
    producer = await plain.produce("video", {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"ssrc": 22222222}],
    })
    learned = asyncio.Event()
    plain.on("tuple", lambda t: learned.set())
    viewer = await Client(router).load()
    client_consumer, server_consumer = await viewer.consume(producer.id)
    await server_consumer.resume()
    source = RtpSource(22222222, *sessions)
    sending = asyncio.ensure_future(source.run(("127.0.0.1", worker.settings.rtc_port), 150))
    try:
        frames, _ = await receive_frames(client_consumer.track, 30)
    finally:
        sending.cancel()
    assert learned.is_set() and plain.tuple["remotePort"] == source.sock.getsockname()[1]
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
    # the consumer starts on a key frame its receiver actually gets: no undecodable delta frames
    assert not [r for r in caplog.records if "failed to decode" in r.getMessage()]
    await viewer.close()


class RtpSink:
    """A plain receiver: unprotects, reassembles VP8 frames by marker bit and decodes them."""

    def __init__(self, srtp_in: SrtpSession | None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.srtp_in = srtp_in
        self.decoder = Vp8Decoder()

    async def decode(self, ssrc: int, payload_type: int, count: int, timeout: float = 15) -> list:
        loop = asyncio.get_running_loop()
        frames, parts = [], []
        deadline = time.monotonic() + timeout
        while len(frames) < count and time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 1)
            except TimeoutError:
                continue
            if 192 <= data[1] <= 223:
                continue  # RTCP (sender reports)
            if self.srtp_in is not None:
                data = self.srtp_in.unprotect(data)
            packet = RtpPacket.parse(data)
            assert packet.ssrc == ssrc and packet.payload_type == payload_type
            parts.append(depayload(VP8, packet.payload))
            if packet.marker:
                frames.extend(self.decoder.decode(JitterFrame(b"".join(parts), packet.timestamp)))
                parts = []
        return frames


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_webrtc_producer_is_received_by_a_plain_consumer(worker, srtp):
    router = await worker.create_router()
    track = MovingBarTrack()
    alice = await Client(router, [track]).load()
    _, producer = await alice.produce(track)
    plain = await router.create_plain_transport(enable_srtp=srtp, srtp_crypto_suite=SUITE)
    sink_key = os.urandom(30)
    sink = RtpSink(SrtpSession(SUITE, base64.b64decode(plain.srtp_parameters["keyBase64"]), "inbound")
                   if srtp else None)
    ip, port = sink.sock.getsockname()
    await plain.connect(ip=ip, port=port, srtp_parameters={
        "cryptoSuite": SUITE, "keyBase64": base64.b64encode(sink_key).decode()} if srtp else None)
    consumer = await plain.consume(producer.id, router.rtp_capabilities, paused=False)
    encoding = consumer.rtp_parameters["encodings"][0]
    payload_type = next(c["payloadType"] for c in consumer.rtp_parameters["codecs"]
                        if c["mimeType"].lower() == "video/vp8")
    frames = await sink.decode(encoding["ssrc"], payload_type, 20)
    assert len(frames) >= 20
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
    await alice.close()


OPUS = {"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}


@contextlib.contextmanager
def frozen(worker):
    """Stop the worker process while datagrams pile up in its socket, so that its next drain reads
    them all at once (as after a busy moment): one receive batch of 64, then the rest."""
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(worker.pid, signal.SIGCONT)


def receive_rtp(sock: socket.socket, count: int, srtp_in: SrtpSession | None, timeout: float = 5) -> list:
    sock.settimeout(0.5)
    packets, deadline = [], time.monotonic() + timeout
    while len(packets) < count and time.monotonic() < deadline:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        if 192 <= data[1] <= 223:
            continue  # RTCP (sender reports)
        packets.append(RtpPacket.parse(srtp_in.unprotect(data) if srtp_in else data))
    return packets


def opus_packet(seq: int, ssrc: int, payload: bytes) -> bytes:
    return bytes(RtpPacket(payload_type=111, sequence_number=seq & 0xFFFF, timestamp=960 * seq, ssrc=ssrc,
                           payload=payload).serialize())


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_comedia_keeps_the_whole_first_burst_from_the_address_it_learns(worker, srtp):
    """The first packet from an unknown address teaches a comedia transport its remote; the packets
    right behind it, in the same receive batch and in the next one of the same drain, are already
    that transport's media: a consumer gets every one, in order, and nothing counts as unknown."""
    router = await worker.create_router()
    plain = await router.create_plain_transport(comedia=True, enable_srtp=srtp, srtp_crypto_suite=SUITE)
    source_key, sink_key = os.urandom(30), os.urandom(30)
    await plain.connect(srtp_parameters={"cryptoSuite": SUITE, "keyBase64": base64.b64encode(source_key).decode()}
                        if srtp else None)
    producer = await plain.produce("audio", {"codecs": [OPUS], "encodings": [{"ssrc": 33333333}]})
    learned = asyncio.Event()
    plain.on("tuple", lambda t: learned.set())
    out = await router.create_plain_transport(enable_srtp=srtp, srtp_crypto_suite=SUITE)
    target = ("127.0.0.1", worker.settings.rtc_port)
    burst = 100  # more than one receive batch (64 datagrams)
    with (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source,
          socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink):
        source.bind(("127.0.0.1", 0))
        sink.bind(("127.0.0.1", 0))
        await out.connect(*sink.getsockname(), srtp_parameters={
            "cryptoSuite": SUITE, "keyBase64": base64.b64encode(sink_key).decode()} if srtp else None)
        consumer = await out.consume(producer.id, router.rtp_capabilities, paused=False)
        source_srtp = SrtpSession(SUITE, source_key, "outbound") if srtp else None
        sink_srtp = (SrtpSession(SUITE, base64.b64decode(out.srtp_parameters["keyBase64"]), "inbound")
                     if srtp else None)
        with frozen(worker):
            for index in range(burst):
                data = opus_packet(7000 + index, 33333333, index.to_bytes(2, "big") * 20)
                source.sendto(source_srtp.protect(data) if source_srtp else data, target)
        packets = receive_rtp(sink, burst, sink_srtp)
        await asyncio.wait_for(learned.wait(), 5)
        assert plain.tuple["remotePort"] == source.getsockname()[1]
    # every packet of the burst, in order, on the consumer's SSRC with consecutive sequence numbers
    assert [int.from_bytes(p.payload[:2], "big") for p in packets] == list(range(burst))
    assert {p.ssrc for p in packets} == {consumer.rtp_parameters["encodings"][0]["ssrc"]}
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1
               for a, b in zip(packets, packets[1:], strict=False))
    counters = await worker.request("worker.counters")
    assert counters["drops"]["unknown_tuple"] == 0
    assert counters["controlDrops"].get("unknown_tuple", 0) == 0
    assert (await producer.get_stats())[0]["packetCount"] == burst

    # once learned, nothing waits any more: a flood from another address is dropped in C and counted
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger, frozen(worker):
        for index in range(burst):
            stranger.sendto(opus_packet(index, 33333333, b"x" * 40), target)
    deadline = time.monotonic() + 5
    while counters["drops"]["unknown_tuple"] < burst and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counters = await worker.request("worker.counters")
    assert counters["drops"]["unknown_tuple"] == burst
    assert counters["controlDrops"].get("unknown_tuple", 0) == 0
    assert (await producer.get_stats())[0]["packetCount"] == burst
