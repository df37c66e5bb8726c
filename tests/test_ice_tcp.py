"""ICE over TCP (RFC 6544, RFC 4571 framing) with a client that speaks it: media in over TCP is
decoded by an aiortc receiver over UDP, and a consumer on the TCP transport gets its copy over TCP.

aiortc's ICE has no TCP candidates, so the client here is assembled from third-party parts where
they exist: aioice's STUN messages, pylibsrtp for SRTP, aiortc's VP8 encoder and decoder; the DTLS
client is our sans-I/O DtlsSession (tested against aiortc's DTLS in tests/test_dtls.py).
"""

from __future__ import annotations

import asyncio
import os
import struct

import pytest
from aioice import stun
from aiortc.codecs import depayload
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from media.engine.dtls import DtlsCertificate, DtlsSession
from tests.media.client import Client, receive_frames
from tests.media.tracks import HEIGHT, WIDTH, moving_bar
from tests.test_media_call import start_worker, stun_request
from tests.test_plain_transport import VP8

pytestmark = pytest.mark.timeout(60)

LIBSRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class TcpWebRtcClient:
    """A controlling ICE agent on one TCP connection, then DTLS-SRTP over the same connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.certificate = DtlsCertificate.generate()
        self.ufrag = "tcpclient"
        self.tx: Session | None = None
        self.rx: Session | None = None

    def send(self, packet: bytes) -> None:
        self.writer.write(struct.pack("!H", len(packet)) + packet)

    async def receive(self, timeout: float = 5) -> bytes:
        header = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        return await self.reader.readexactly(struct.unpack("!H", header)[0])

    async def ice_check(self, ice: dict) -> stun.Message:
        self.send(stun_request(f"{ice['usernameFragment']}:{self.ufrag}", ice["password"], use_candidate=True))
        return stun.parse_message(await self.receive())

    async def handshake(self, server_fingerprints: list[dict]) -> str:
        session = DtlsSession(self.certificate, "client", server_fingerprints)
        for datagram in session.start():
            self.send(datagram)
        while session.state not in ("connected", "failed"):
            for datagram in session.feed(await self.receive()):
                self.send(datagram)
        assert session.state == "connected", session.failure_reason
        keys = session.srtp_keys
        profile = LIBSRTP_PROFILES[keys.profile]
        self.tx = Session(Policy(key=keys.local_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self.rx = Session(Policy(key=keys.remote_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
        return keys.profile


async def test_media_over_ice_tcp_both_ways():
    worker = await start_worker()
    try:
        router = await worker.create_router()
        server = await router.create_webrtc_transport(enable_udp=False, enable_tcp=True)
        assert [c["protocol"] for c in server.ice_candidates] == ["tcp"]
        candidate = server.ice_candidates[0]
        reader, writer = await asyncio.open_connection(candidate["ip"], candidate["port"])
        client = TcpWebRtcClient(reader, writer)

        answer = await client.ice_check(server.ice_parameters)
        assert answer.message_class == stun.Class.RESPONSE
        assert answer.attributes["XOR-MAPPED-ADDRESS"][1] == writer.get_extra_info("sockname")[1]
        await server.connect(client.certificate.dtls_parameters("client"))
        profile = await client.handshake(server.dtls_parameters["fingerprints"])
        for _ in range(50):  # the worker's notification may trail the client's last flight
            if server.dtls_state == "connected":
                break
            await asyncio.sleep(0.05)
        assert server.ice_selected_tuple["protocol"] == "tcp" and server.dtls_state == "connected"
        assert profile in LIBSRTP_PROFILES

        producer = await server.produce("video", {
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
            "encodings": [{"ssrc": 31313131}],
        })
        viewer = await Client(router).load()
        udp_consumer, server_udp_consumer = await viewer.consume(producer.id)
        await server_udp_consumer.resume()
        tcp_consumer = await server.consume(producer.id, router.rtp_capabilities, paused=False)
        tcp_ssrc = tcp_consumer.rtp_parameters["encodings"][0]["ssrc"]

        encoder, decoder = Vp8Encoder(), Vp8Decoder()
        decoded_over_tcp, parts = [], []

        async def read_tcp_copies():
            while True:
                packet = await client.receive(timeout=10)
                if 192 <= packet[1] <= 223:
                    continue  # RTCP: reports and key-frame requests
                rtp = RtpPacket.parse(client.rx.unprotect(packet))
                assert rtp.ssrc == tcp_ssrc
                parts.append(depayload(VP8, rtp.payload))
                if rtp.marker:
                    decoded_over_tcp.extend(decoder.decode(JitterFrame(b"".join(parts), rtp.timestamp)))
                    parts.clear()

        async def send_frames():
            seq = 7000
            for index in range(120):
                payloads, timestamp = encoder.encode(moving_bar(index), index % 15 == 0)
                for n, payload in enumerate(payloads):
                    rtp = RtpPacket(payload_type=101, sequence_number=seq & 0xFFFF, timestamp=timestamp,
                                    ssrc=31313131, marker=int(n == len(payloads) - 1), payload=payload)
                    seq += 1
                    client.send(client.tx.protect(rtp.serialize()))
                await writer.drain()
                await asyncio.sleep(1 / 30)

        reading = asyncio.ensure_future(read_tcp_copies())
        sending = asyncio.ensure_future(send_frames())
        try:
            frames, _ = await receive_frames(udp_consumer.track, 20)
            assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
            for _ in range(100):
                if len(decoded_over_tcp) >= 10:
                    break
                await asyncio.sleep(0.05)
            assert len(decoded_over_tcp) >= 10, "the TCP consumer's copies decode"
        finally:
            sending.cancel()
            reading.cancel()
        stats = (await server.get_stats())[0]
        assert stats["rtpPacketsReceived"] > 20 and stats["rtpPacketsSent"] > 10
        writer.close()
        await viewer.close()
    finally:
        await worker.close()


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (a reset counts: it closed with our data unread)."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


async def test_unvalidated_and_garbage_tcp_connections_are_dropped():
    worker = await start_worker()
    try:
        port = worker.settings.rtc_port
        # a STUN-looking frame with an unknown username is dropped; the connection may retry
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x14" + b"\x00\x01" + os.urandom(18) + b"\x00\x00")
        await writer.drain()
        await asyncio.sleep(0.2)
        counters = await worker.request("worker.counters")
        assert counters["controlDrops"].get("stun_unknown_ufrag", 0) >= 1
        # anything but a connectivity check before one succeeded closes the connection
        writer.write(struct.pack("!H", 40) + b"\x80" + os.urandom(39))
        await writer.drain()
        assert await closed(reader)
        # so does a flood of garbage
        flood_reader, flood_writer = await asyncio.open_connection("127.0.0.1", port)
        flood_writer.write(b"\x00\x08" + b"\x00\x01" + os.urandom(6) + b"\xff\xff" + os.urandom(300_000))
        try:
            await flood_writer.drain()
        except ConnectionError:
            pass
        assert await closed(flood_reader), "a flooding connection is closed"
        assert (await worker.request("worker.dump"))["pid"] == worker.pid
    finally:
        await worker.close()
