"""loadgen.synth on loopback: paced frames out, receive statistics and latency in, PLI -> key frame."""

from __future__ import annotations

import os
import socket

import pytest
from fastpath.rtcp import build_compound
from fastpath.srtp import SrtpSession, profile_key_lengths
from loadgen.synth import SyntheticMedia

PROFILE = "AEAD_AES_128_GCM"


def key() -> bytes:
    return os.urandom(sum(profile_key_lengths(PROFILE)))


@pytest.fixture
def sockets():
    opened = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        opened.append(sock)
    yield opened
    for sock in opened:
        sock.close()


def test_streams_reach_their_consumers_with_sequence_and_latency(sockets):
    send, recv = sockets
    media_key, rtcp_key = key(), key()
    media = SyntheticMedia(max_streams=4, max_consumers=4, max_sockets=4)
    s = media.add_socket(send, SrtpSession(PROFILE, rtcp_key, "inbound"), True)
    r = media.add_socket(recv, SrtpSession(PROFILE, media_key, "inbound"), False)
    outbound = SrtpSession(PROFILE, media_key, "outbound")
    media.add_stream(s, recv.getsockname(), outbound, 1111, 96, "vp8", 90000, 30, 3, 1000)
    media.add_stream(s, recv.getsockname(), outbound, 2222, 111, "audio", 48000, 50, 1, 120)
    media.add_consumer(r, 1111)
    media.add_consumer(r, 2222)
    result = media.run(0.5)
    assert result["sent"] > 60 and result["send_failed"] == 0
    assert result["received"] == result["sent"] and result["srtp_failures"] == 0
    latencies = result["latencies_ns"]
    assert len(latencies) == result["received"] and 0 < latencies.max() < 50_000_000
    stats = media.consumer_stats()
    assert list(stats["expected"]) == list(stats["received"]) and stats["received"].min() > 20
    streams = media.stream_stats()
    assert list(streams["key_frames"]) == [1, 0]
    assert media.run(0.2, send=False)["sent"] == 0


def test_a_pli_makes_the_next_frame_a_key_frame(sockets):
    send, sfu = sockets
    rtcp_key = key()
    media = SyntheticMedia(max_streams=2, max_consumers=2, max_sockets=2)
    s = media.add_socket(send, SrtpSession(PROFILE, rtcp_key, "inbound"), True)
    media.add_stream(s, sfu.getsockname(), SrtpSession(PROFILE, key(), "outbound"), 3333, 96, "vp8",
                     90000, 30, 1, 300)
    media.run(0.2)
    # PLI (RFC 4585 6.3.1): V=2 FMT=1, PT=206, length 2, sender SSRC, media SSRC
    pli = bytes([0x81, 206, 0, 2]) + (1).to_bytes(4, "big") + (3333).to_bytes(4, "big")
    sfu_rtcp = SrtpSession(PROFILE, rtcp_key, "outbound")
    sfu.sendto(sfu_rtcp.rtcp_protect(pli), send.getsockname())
    media.run(0.2)
    streams = media.stream_stats()
    assert streams["key_requests"][0] == 1 and streams["key_frames"][0] == 2
    # and a FIR (RFC 5104 §4.3.1), in a compound after a receiver report, the same
    fir = build_compound([("rr", 1, []), ("fir", 1, 3333, 1)])
    sfu.sendto(sfu_rtcp.rtcp_protect(fir), send.getsockname())
    media.run(0.2)
    streams = media.stream_stats()
    assert streams["key_requests"][0] == 2 and streams["key_frames"][0] == 3


def test_bad_arguments_are_refused(sockets):
    send, recv = sockets
    media = SyntheticMedia(max_streams=1, max_consumers=1, max_sockets=2)
    s = media.add_socket(send, SrtpSession(PROFILE, key(), "inbound"), True)
    with pytest.raises(ValueError):
        media.add_stream(s, recv.getsockname(), SrtpSession(PROFILE, key(), "outbound"), 1, 96, "h264",
                         90000, 30, 1, 1000)
    with pytest.raises(ValueError):
        media.add_stream(s, recv.getsockname(), SrtpSession(PROFILE, key(), "outbound"), 1, 96, "vp8",
                         90000, 30, 1, 40)
    with pytest.raises(ValueError):
        media.add_consumer(s, 5)
    with pytest.raises(ValueError):
        media.run(0)


def test_a_header_extension_block_leads_every_packet(sockets):
    send, sfu = sockets
    media_key = key()
    media = SyntheticMedia(max_streams=2, max_consumers=1, max_sockets=1)
    s = media.add_socket(send, SrtpSession(PROFILE, key(), "inbound"), True)
    # RFC 8285 one-byte block: MID "1" (id 1), RID "r0" (id 2), padded to a word
    block = bytes([0xBE, 0xDE, 0, 2, 0x10, ord("1"), 0x21, ord("r"), ord("0"), 0, 0, 0])
    media.add_stream(s, sfu.getsockname(), SrtpSession(PROFILE, media_key, "outbound"), 4444, 96, "vp8",
                     90000, 30, 1, 300, extension=block)
    media.run(0.1)
    packet = SrtpSession(PROFILE, media_key, "inbound").unprotect(sfu.recv(2048))
    assert packet[0] == 0x90 and packet[12:24] == block
    assert packet[24] & 0x10 and packet[24 + 6] & 0x01 == 0     # VP8 descriptor S, then a key frame
    with pytest.raises(ValueError, match="whole header extension block"):
        media.add_stream(s, sfu.getsockname(), SrtpSession(PROFILE, media_key, "outbound"), 5, 96, "vp8",
                         90000, 30, 1, 300, extension=block[:8])
