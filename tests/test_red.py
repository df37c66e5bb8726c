"""RED (RFC 2198) in the fast path: passed on to consumers that negotiated it, cut to its primary
Opus block for the others, malformed payloads dropped and counted; over real loopback sockets."""

from __future__ import annotations

import socket

import pytest
from aiortc.rtp import RtpPacket
from fastpath.codecs import CODEC_OPUS
from fastpath.red import RED_MALFORMED, RED_UNKNOWN_PT, red_rewrite_py
from fastpath.route import Forwarder

from tests.test_forwarder import Peer, connect, drain_until

RED_PT, OPUS_PT = 63, 111            # what Chrome sends: red/48000/2 at 63, fmtp 111/111
OUT_RED_PT, OUT_OPUS_PT = 113, 100   # the router's (and so a consumer's) payload types


def red_payload(redundant: list[tuple[int, int, bytes]], primary_pt: int, primary: bytes) -> bytes:
    """A RED payload (RFC 2198 §3): a 4-byte header per (pt, timestamp offset, block), a 1-byte
    header for the primary, then the blocks in the same order, the primary last."""
    headers = b"".join(
        bytes([0x80 | pt, offset >> 6, ((offset & 0x3F) << 2) | (len(block) >> 8), len(block) & 0xFF])
        for pt, offset, block in redundant
    )
    return headers + bytes([primary_pt]) + b"".join(block for _, _, block in redundant) + primary


def red_packet(seq: int, ts: int, payload: bytes, pt: int = RED_PT, padding: int = 0, marker: int = 0) -> bytes:
    packet = RtpPacket(payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=1111,
                       marker=marker, payload=payload)
    packet.padding_size = padding
    return bytes(packet.serialize())


def opus_frame(index: int) -> bytes:
    return f"opus frame {index:04d} ".encode() * 4


# the RED block walk, on single packets


def test_primary_only_red_is_cut_to_its_payload():
    packet = red_packet(1, 960, red_payload([], OPUS_PT, b"primary"))
    out = RtpPacket.parse(red_rewrite_py(packet, True, RED_PT, {OPUS_PT: OUT_OPUS_PT}))
    assert (out.payload_type, out.payload, out.timestamp) == (OUT_OPUS_PT, b"primary", 960)


def test_a_red_consumer_gets_its_own_payload_types_in_the_block_headers():
    payload = red_payload([(OPUS_PT, 1920, b"older"), (OPUS_PT, 960, b"old")], OPUS_PT, b"primary")
    out = RtpPacket.parse(red_rewrite_py(red_packet(1, 960, payload), False, RED_PT,
                                         {RED_PT: OUT_RED_PT, OPUS_PT: OUT_OPUS_PT}))
    assert out.payload == red_payload([(OUT_OPUS_PT, 1920, b"older"), (OUT_OPUS_PT, 960, b"old")],
                                      OUT_OPUS_PT, b"primary")


@pytest.mark.parametrize("blocks, ok", [(31, True), (32, False)], ids=["32 blocks", "33 blocks"])
def test_at_most_32_blocks(blocks, ok):
    payload = red_payload([(OPUS_PT, 960, b"r")] * blocks, OPUS_PT, b"p")
    result = red_rewrite_py(red_packet(1, 960, payload), True, RED_PT, {OPUS_PT: OUT_OPUS_PT})
    assert (RtpPacket.parse(result).payload == b"p") if ok else result == RED_MALFORMED


@pytest.mark.parametrize("payload", [
    # a block length one byte beyond the payload (no primary left)
    red_payload([(OPUS_PT, 960, b"x" * 10)], OPUS_PT, b""),
    bytes([0x80 | OPUS_PT, 0x0F, 0x00, 0x0B, OPUS_PT]) + b"x" * 10,
    # a block length far beyond the payload
    bytes([0x80 | OPUS_PT, 0x0F, 0x03, 0xFF, OPUS_PT]) + b"x" * 10,
    # a 4-byte header cut short, and a payload of headers only
    bytes([0x80 | OPUS_PT, 0x0F]),
    bytes([0x80 | OPUS_PT, 0x0F, 0x00, 0x00]),
    # RED inside RED
    red_payload([], RED_PT, b"primary"),
    red_payload([(RED_PT, 960, b"r")], OPUS_PT, b"primary"),
], ids=["primary empty", "length past end", "length 1023", "short header", "headers only",
        "nested primary", "nested block"])
def test_malformed_red_is_refused(payload):
    for strip in (False, True):
        result = red_rewrite_py(red_packet(1, 960, payload), strip, RED_PT,
                                {RED_PT: OUT_RED_PT, OPUS_PT: OUT_OPUS_PT})
        assert result == RED_MALFORMED


def test_a_block_of_a_payload_type_the_consumer_lacks():
    payload = red_payload([(0, 960, b"pcmu")], OPUS_PT, b"primary")
    pt_map = {RED_PT: OUT_RED_PT, OPUS_PT: OUT_OPUS_PT}
    assert red_rewrite_py(red_packet(1, 960, payload), False, RED_PT, pt_map) == RED_UNKNOWN_PT
    # cut to the primary, the other block does not matter
    assert RtpPacket.parse(red_rewrite_py(red_packet(1, 960, payload), True, RED_PT, pt_map)).payload == b"primary"


# the Forwarder over loopback: one producer stream of RED, a RED consumer and an Opus consumer


@pytest.fixture
def call():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    fwd = Forwarder(server, lambda packets, events: None)
    producer, red_peer, opus_peer = Peer(), Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 1111, 0, CODEC_OPUS, 48000, 0, False)
    red_consumer = fwd.add_consumer(connect(fwd, red_peer), 5000, 1, {RED_PT: OUT_RED_PT, OPUS_PT: OUT_OPUS_PT},
                                    {}, 0, CODEC_OPUS, 48000, False, False)
    fwd.set_consumer_red(red_consumer, RED_PT, False)
    # without RED negotiated, the RED payload type is forwarded and cut (as media/engine/consumer.py maps it)
    opus_consumer = fwd.add_consumer(connect(fwd, opus_peer), 6000, 1, {RED_PT: OUT_OPUS_PT, OPUS_PT: OUT_OPUS_PT},
                                     {}, 0, CODEC_OPUS, 48000, False, False)
    fwd.set_consumer_red(opus_consumer, RED_PT, True)
    for consumer in (red_consumer, opus_consumer):
        fwd.attach_stream(consumer, 0, stream)

    def send(packets: list[bytes]) -> None:
        for data in packets:
            producer.sock.sendto(producer.tx.protect(data), server.getsockname())
        drain_until(fwd, 0.3)

    def receive(peer: Peer, count: int) -> list[tuple[bytes, RtpPacket]]:
        raw = [peer.rx.unprotect(p) for p in peer.receive(count)]
        peer.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            peer.sock.recv(2048)  # and nothing more
        peer.sock.settimeout(2)
        return [(data, RtpPacket.parse(data)) for data in raw]

    yield fwd, send, receive, red_peer, opus_peer
    server.close()


def test_red_to_a_red_consumer_and_cut_to_opus_for_a_consumer_without_red(call):
    fwd, send, receive, red_peer, opus_peer = call
    sent = []
    for i in range(20):
        seq = 65530 + i  # across the wrap
        redundant = [(OPUS_PT, 960, opus_frame(i - 1))] if i else []
        sent.append(red_packet(seq, 960 * i, red_payload(redundant, OPUS_PT, opus_frame(i)),
                               padding=4 if i == 7 else 0, marker=int(i == 0)))
    send(sent)

    red = receive(red_peer, 20)
    for i, (_, packet) in enumerate(red):
        redundant = [(OUT_OPUS_PT, 960, opus_frame(i - 1))] if i else []
        assert packet.payload_type == OUT_RED_PT and packet.ssrc == 5000
        assert packet.payload == red_payload(redundant, OUT_OPUS_PT, opus_frame(i))
    assert red[7][1].padding_size == 4

    opus = receive(opus_peer, 20)
    assert [p.payload for _, p in opus] == [opus_frame(i) for i in range(20)]
    assert {p.payload_type for _, p in opus} == {OUT_OPUS_PT} and {p.ssrc for _, p in opus} == {6000}
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for (_, a), (_, b) in zip(opus, opus[1:], strict=False))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 for (_, a), (_, b) in zip(opus, opus[1:], strict=False))
    assert opus[0][1].marker == 1
    # the padding of the RED packet went with the redundancy: no P bit, no trailing bytes
    raw7 = opus[7][0]
    assert raw7[0] & 0x20 == 0 and raw7.endswith(opus_frame(7))
    assert fwd.counters()["drops"]["red_malformed"] == 0


def test_plain_opus_of_a_red_producer_reaches_both(call):
    fwd, send, receive, red_peer, opus_peer = call
    send([red_packet(100 + i, 960 * i, opus_frame(i), pt=OPUS_PT) for i in range(5)])
    for peer in (red_peer, opus_peer):
        packets = receive(peer, 5)
        assert [(p.payload_type, p.payload) for _, p in packets] == [(OUT_OPUS_PT, opus_frame(i)) for i in range(5)]


def test_malformed_red_is_dropped_for_every_consumer_and_counted(call):
    fwd, send, receive, red_peer, opus_peer = call
    good = [red_payload([(OPUS_PT, 960, opus_frame(i - 1))], OPUS_PT, opus_frame(i)) for i in range(3)]
    bad = [
        bytes([0x80 | OPUS_PT, 0x0F, 0x03, 0xFF, OPUS_PT]) + b"x" * 10,   # block beyond the payload
        red_payload([(OPUS_PT, 960, b"r")] * 40, OPUS_PT, b"p"),          # 41 blocks
        bytes([0x80 | OPUS_PT, 0x0F]),                                     # header cut short
    ]
    payloads = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    send([red_packet(200 + i, 960 * i, payload) for i, payload in enumerate(payloads)])
    assert [p.payload for _, p in receive(opus_peer, 3)] == [opus_frame(i) for i in range(3)]
    assert len(receive(red_peer, 3)) == 3
    # counted per consumer copy, as unknown payload types are
    assert fwd.counters()["drops"]["red_malformed"] == 2 * len(bad)


def test_red_needs_a_forwarded_payload_type(call):
    fwd = call[0]
    with pytest.raises(ValueError, match="not forwarded"):
        fwd.set_consumer_red(0, 96, True)
    with pytest.raises(ValueError):
        fwd.set_consumer_red(0, 128, True)
