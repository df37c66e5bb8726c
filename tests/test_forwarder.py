"""The route stage end to end over real loopback sockets: SRTP in, rewritten SRTP out to each consumer."""

from __future__ import annotations

import os
import socket
import time

import pytest
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtpPacket
from fastpath.codecs import CODEC_OPUS, CODEC_VP8
from fastpath.route import Forwarder
from fastpath.srtp import SrtpSession, profile_key_lengths

PROFILE = "AEAD_AES_128_GCM"
ALL_PROFILES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM",
                "AEAD_AES_256_GCM"]


def keypair(profile: str) -> tuple[bytes, bytes]:
    size = sum(profile_key_lengths(profile))
    return os.urandom(size), os.urandom(size)


class Peer:
    """A test-side endpoint with its own socket and SRTP contexts (what a client would hold)."""

    def __init__(self, profile: str = PROFILE):
        self.profile = profile
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.addr = self.sock.getsockname()
        # the peer's send key is the server's receive key, and the other way round
        self.send_key, self.recv_key = keypair(profile)
        self.tx = SrtpSession(profile, self.send_key, "outbound")
        self.rx = SrtpSession(profile, self.recv_key, "inbound")

    def server_sessions(self):
        return (SrtpSession(self.profile, self.send_key, "inbound"),
                SrtpSession(self.profile, self.recv_key, "outbound"))

    def receive(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            out.append(self.sock.recv(2048))
        return out


@pytest.fixture
def forwarder():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    control = []
    fwd = Forwarder(server, lambda packets, events: control.append((packets, events)))
    yield fwd, server.getsockname(), control
    server.close()


def connect(fwd: Forwarder, peer: Peer) -> int:
    slot = fwd.add_transport(1234)
    fwd.set_transport_tuple(slot, peer.addr)
    fwd.set_transport_srtp(slot, *peer.server_sessions())
    return slot


def rtcp_datagrams(peer: Peer, seconds: float) -> list[tuple[int, bytes]]:
    """Every SRTCP datagram the server sent the peer within `seconds`: (its size, unprotected); RTP
    is skipped (RFC 5761: RTCP packet types 192-223 in the second byte)."""
    out = []
    deadline = time.monotonic() + seconds
    peer.sock.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            data = peer.sock.recv(2048)
        except TimeoutError:
            continue
        if 192 <= data[1] <= 223:
            out.append((len(data), peer.rx.rtcp_unprotect(data)))
    return out


def drain_until(fwd: Forwarder, seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fwd.drain()
        time.sleep(0.005)


def rtp(seq: int, ts: int, ssrc: int, pt: int, payload: bytes, marker: int = 0) -> bytes:
    packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc, marker=marker,
                       payload=payload)
    return bytes(packet.serialize())


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_audio_fans_out_rewritten_to_every_consumer(forwarder, profile):
    fwd, server_addr, control = forwarder
    producer = Peer(profile)
    consumers = [Peer(profile) for _ in range(3)]
    pt_slot = connect(fwd, producer)
    stream = fwd.add_producer_stream(pt_slot, 1111, 0, CODEC_OPUS, 48000, 0, False)
    slots = []
    for i, peer in enumerate(consumers):
        t = connect(fwd, peer)
        slots.append(fwd.add_consumer(t, 5000 + i, 1, {111: 100}, {}, 0, CODEC_OPUS, 48000, False, False))
        fwd.attach_stream(slots[-1], 0, stream)
    for seq in range(65530, 65530 + 20):
        producer.sock.sendto(producer.tx.protect(rtp(seq & 0xFFFF, seq * 960, 1111, 111, b"opus" * 10)),
                             server_addr)
    drain_until(fwd, 0.3)
    for i, peer in enumerate(consumers):
        packets = [RtpPacket.parse(peer.rx.unprotect(p)) for p in peer.receive(20)]
        assert {p.ssrc for p in packets} == {5000 + i}
        assert {p.payload_type for p in packets} == {100}
        assert all(p.payload == b"opus" * 10 for p in packets)
        seqs = [p.sequence_number for p in packets]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
        assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 for a, b in zip(packets, packets[1:], strict=False))
        assert fwd.consumer_stats(slots[i])["packetCount"] == 20
    counters = fwd.counters()
    assert counters["forwardedPackets"] == 60
    assert fwd.stream_stats(stream)["packetCount"] == 20


def test_a_batch_leaves_as_one_gso_message_per_consumer(forwarder):
    """40 consumers x 8 packets read in one batch: 320 copies, more than one flush holds (256).
    Fanned out consumer by consumer, each consumer's 8 copies share a flush and leave as one GSO
    message: 40 messages. Packet by packet, each flush would hold a few copies per consumer:
    80 messages."""
    fwd, server_addr, control = forwarder
    producer = Peer()
    consumers = [Peer() for _ in range(40)]
    stream = fwd.add_producer_stream(connect(fwd, producer), 1111, 0, CODEC_OPUS, 48000, 0, False)
    for i, peer in enumerate(consumers):
        consumer = fwd.add_consumer(connect(fwd, peer), 5000 + i, 1, {111: 100}, {}, 0, CODEC_OPUS,
                                    48000, False, False)
        fwd.attach_stream(consumer, 0, stream)
    for seq in range(8):
        producer.sock.sendto(producer.tx.protect(rtp(seq, seq * 960, 1111, 111, b"opus" * 10)), server_addr)
    time.sleep(0.05)  # all eight wait in the server's socket, so one receive batch holds them
    before = fwd.counters()["socket"]
    fwd.drain()
    after = fwd.counters()["socket"]
    assert after["rx_batches"] - before["rx_batches"] == 1
    assert after["tx_packets"] - before["tx_packets"] == 320
    assert after["tx_messages"] - before["tx_messages"] == 40
    for i, peer in enumerate(consumers):
        packets = [RtpPacket.parse(peer.rx.unprotect(p)) for p in peer.receive(8)]
        assert [p.sequence_number - packets[0].sequence_number for p in packets] == list(range(8))
        assert {p.ssrc for p in packets} == {5000 + i}


def test_a_frames_packets_are_padded_to_one_size_and_leave_as_one_gso_message(forwarder):
    """libwebrtc cuts a frame into packets within one byte of each other, the larger last; UDP GSO
    needs one size, so a consumer's copies left as two messages. The smaller ones are padded
    (RFC 3550 section 5.1): each consumer's frame is one message and the payloads are intact."""
    fwd, server_addr, control = forwarder
    producer = Peer()
    consumers = [Peer() for _ in range(3)]
    stream = fwd.add_producer_stream(connect(fwd, producer), 1111, 0, CODEC_OPUS, 48000, 0, False)
    for i, peer in enumerate(consumers):
        consumer = fwd.add_consumer(connect(fwd, peer), 5000 + i, 1, {111: 100}, {}, 0, CODEC_OPUS,
                                    48000, False, False)
        fwd.attach_stream(consumer, 0, stream)
    payloads = [bytes([k]) * size for k, size in enumerate((300, 300, 300, 301, 301))]
    for seq, payload in enumerate(payloads):
        producer.sock.sendto(producer.tx.protect(rtp(seq, 960, 1111, 111, payload)), server_addr)
    time.sleep(0.05)  # one receive batch holds the frame
    before = fwd.counters()["socket"]
    fwd.drain()
    after = fwd.counters()["socket"]
    assert after["rx_batches"] - before["rx_batches"] == 1
    assert after["tx_packets"] - before["tx_packets"] == 15
    assert after["tx_messages"] - before["tx_messages"] == 3
    for peer in consumers:
        wire = peer.receive(5)
        assert len({len(p) for p in wire}) == 1
        packets = [RtpPacket.parse(peer.rx.unprotect(p)) for p in wire]
        assert [p.payload for p in packets] == payloads
        assert [p.padding_size for p in packets] == [1, 1, 1, 0, 0]


def test_padding_a_packet_that_has_padding_keeps_its_payload(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 1111, 0, CODEC_OPUS, 48000, 0, False)
    consumer = fwd.add_consumer(connect(fwd, viewer), 5000, 1, {111: 100}, {}, 0, CODEC_OPUS, 48000, False, False)
    fwd.attach_stream(consumer, 0, stream)
    padded = RtpPacket(payload_type=111, sequence_number=0, timestamp=960, ssrc=1111, payload=b"a" * 300)
    padded.padding_size = 4
    packets = [bytes(padded.serialize()), rtp(1, 960, 1111, 111, b"b" * 306),
               rtp(2, 960, 1111, 111, b"c" * 400)]  # 90 bytes larger: left alone
    for packet in packets:
        producer.sock.sendto(producer.tx.protect(packet), server_addr)
    time.sleep(0.05)
    fwd.drain()
    got = [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(3)]
    assert [p.payload for p in got] == [b"a" * 300, b"b" * 306, b"c" * 400]
    assert [p.padding_size for p in got] == [6, 0, 0]


def vp8(keyframe: bool, picture_id: int | None = None) -> bytes:
    # RFC 7741: descriptor S=1 PID=0 (with X, I and a 15-bit picture id when given), then a VP8
    # payload header whose P bit is 0 on a key frame
    descriptor = bytes([0x10])
    if picture_id is not None:
        descriptor = bytes([0x90, 0x80, 0x80 | (picture_id >> 8), picture_id & 0xFF])
    header = bytes([0x00 if keyframe else 0x01, 0, 0])
    return descriptor + header + b"\x00" * 20


def picture_id_of(payload: bytes) -> int:
    assert payload[0] & 0x80 and payload[1] & 0x80 and payload[2] & 0x80
    return ((payload[2] & 0x7F) << 8) | payload[3]


def test_video_waits_for_key_frame_and_pause_resume_requests_one(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 2222, 0, CODEC_VP8, 90000, 0, True)
    consumer = fwd.add_consumer(connect(fwd, viewer), 7777, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False)
    fwd.attach_stream(consumer, 0, stream)
    seq = 100
    for keyframe in (False, False, True, False):
        producer.sock.sendto(producer.tx.protect(rtp(seq, seq * 3000, 2222, 96, vp8(keyframe))), server_addr)
        seq += 1
    drain_until(fwd, 0.3)
    got = [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(2)]
    assert [p.payload[1] & 1 for p in got] == [0, 1], "forwarding starts at the key frame"
    viewer.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        viewer.sock.recv(2048)
    assert any(("layerschange", consumer, 0, 0) in events for _, events in control)

    fwd.set_consumer_paused(consumer, True, False)
    fwd.set_consumer_paused(consumer, False, False)
    producer.sock.settimeout(1)
    pli = RtcpPacket.parse(producer.rx.rtcp_unprotect(producer.sock.recv(2048)))
    assert isinstance(pli[0], RtcpPsfbPacket) and pli[0].fmt == 1 and pli[0].media_ssrc == 2222


def test_consumer_pli_is_relayed_to_producer(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 3333, 0, CODEC_VP8, 90000, 0, True)
    # paused: attaching a flowing consumer would itself ask for a key frame
    consumer = fwd.add_consumer(connect(fwd, viewer), 8888, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, True)
    fwd.attach_stream(consumer, 0, stream)
    producer.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        producer.sock.recv(2048)
    pli = RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=8888)
    viewer.sock.sendto(viewer.tx.rtcp_protect(bytes(pli)), server_addr)
    drain_until(fwd, 0.2)
    producer.sock.settimeout(1)
    relayed = RtcpPacket.parse(producer.rx.rtcp_unprotect(producer.sock.recv(2048)))
    assert relayed[0].fmt == 1 and relayed[0].media_ssrc == 3333


def test_garbage_is_dropped_and_counted(forwarder):
    fwd, server_addr, control = forwarder
    producer = Peer()
    connect(fwd, producer)
    stranger = Peer()
    for data in (b"\x80\x60" + b"\x00" * 30, b"\xff" * 40, b"\x80" * 5):
        producer.sock.sendto(data, server_addr)
        stranger.sock.sendto(data, server_addr)
    drain_until(fwd, 0.2)
    drops = fwd.counters()["drops"]
    assert drops["unknown_tuple"] >= 2
    assert drops["srtp_rtp"] >= 1
    assert drops["unknown_class"] >= 2


def test_stun_and_dtls_go_up_to_python(forwarder):
    fwd, server_addr, control = forwarder
    peer = Peer()
    peer.sock.sendto(b"\x00\x01" + b"\x00" * 18, server_addr)
    peer.sock.sendto(b"\x16\xfe\xfd" + b"\x00" * 10, server_addr)
    drain_until(fwd, 0.2)
    kinds = [(kind, addr) for packets, _ in control for kind, _, addr in packets]
    assert ("stun", peer.addr) in kinds and ("dtls", peer.addr) in kinds


def test_tables_empty_after_removal(forwarder):
    fwd, _, _ = forwarder
    a, b = Peer(), Peer()
    ta, tb = connect(fwd, a), connect(fwd, b)
    stream = fwd.add_producer_stream(ta, 1, 2, CODEC_VP8, 90000, 0, True)
    consumer = fwd.add_consumer(tb, 3, 1, {96: 96}, {}, 0, CODEC_VP8, 90000, True, True)
    fwd.attach_stream(consumer, 0, stream)
    fwd.remove_consumer(consumer)
    fwd.remove_producer_stream(stream)
    fwd.remove_transport(ta)
    fwd.remove_transport(tb)
    assert set(fwd.table_sizes().values()) == {0}


def simulcast_viewer(fwd: Forwarder):
    """A VP8 producer of three layers (SSRCs 100-102) and a simulcast consumer (9000) of them."""
    producer, viewer = Peer(), Peer()
    tp = connect(fwd, producer)
    streams = [fwd.add_producer_stream(tp, 100 + layer, 0, CODEC_VP8, 90000, layer, True) for layer in range(3)]
    consumer = fwd.add_consumer(connect(fwd, viewer), 9000, 3, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False)
    for layer, stream in enumerate(streams):
        fwd.attach_stream(consumer, layer, stream)
    return producer, viewer, streams, consumer


def test_simulcast_consumer_switches_layers_on_key_frames_with_continuous_numbering(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer, streams, consumer = simulcast_viewer(fwd)
    seq = {100: 1000, 101: 5000, 102: 9000}

    picture = {100: 30, 101: 7000, 102: 32760}  # each encoder counts its own; 102 wraps at 2**15

    def send_frame(ssrc: int, keyframe: bool, ts: int) -> None:
        payload = vp8(keyframe, picture[ssrc])
        producer.sock.sendto(producer.tx.protect(rtp(seq[ssrc], ts, ssrc, 96, payload)), server_addr)
        seq[ssrc] += 1
        picture[ssrc] = (picture[ssrc] + 1) & 0x7FFF

    def send_all_layers(keyframe_on: set[int], ts: int) -> None:
        for ssrc in (100, 101, 102):
            send_frame(ssrc, ssrc in keyframe_on, ts)

    viewer.sock.settimeout(0.5)
    # layer 2 (the preferred, highest) starts on its key frame
    send_all_layers(set(), 3000)
    send_all_layers({102}, 6000)
    send_all_layers(set(), 9000)
    drain_until(fwd, 0.2)
    got = [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(2)]
    assert fwd.consumer_stats(consumer)["currentLayer"] == 2
    # prefer layer 0: layer 2 keeps flowing until layer 0 has a key frame, then only layer 0
    fwd.set_consumer_preferred_layer(consumer, 0)
    send_all_layers(set(), 12000)
    send_all_layers({100}, 15000)
    send_all_layers(set(), 18000)
    drain_until(fwd, 0.2)
    got += [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(3)]
    with pytest.raises(TimeoutError):
        viewer.sock.recv(2048)
    assert fwd.consumer_stats(consumer)["currentLayer"] == 0
    assert {p.ssrc for p in got} == {9000}
    seqs = [p.sequence_number for p in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    stamps = [p.timestamp for p in got]
    assert all(0 < (b - a) & 0xFFFFFFFF < 90000 for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    pictures = [picture_id_of(p.payload) for p in got]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pictures, pictures[1:], strict=False)), pictures
    layer_events = [layer for _, events in control for name, slot, layer, _ in events if slot == consumer]
    assert layer_events == [2, 0]


@pytest.mark.parametrize("rtx", [False, True], ids=["same-ssrc", "rtx"])
def test_nack_from_a_consumer_is_answered_from_the_stream_history(forwarder, rtx):
    from aiortc.rtp import RtcpRtpfbPacket

    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 4444, 0, CODEC_VP8, 90000, 0, True)
    rtx_args = (5556, 102) if rtx else ()
    consumer = fwd.add_consumer(connect(fwd, viewer), 5555, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False,
                                -1, *rtx_args)
    fwd.attach_stream(consumer, 0, stream)
    for index in range(10):
        producer.sock.sendto(producer.tx.protect(rtp(300 + index, index * 3000, 4444, 96, vp8(index == 0))),
                             server_addr)
    drain_until(fwd, 0.2)
    # packets 3 and 7 are "lost on the way": the viewer's SRTP context never sees them
    raw = viewer.receive(10)
    first = {i: RtpPacket.parse(viewer.rx.unprotect(p)) for i, p in enumerate(raw) if i not in (3, 7)}
    seq_of = [(first[0].sequence_number + i) & 0xFFFF for i in range(10)]
    lost = [seq_of[3], seq_of[7], (seq_of[0] - 50) & 0xFFFF]
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=5555, lost=lost)
    viewer.sock.sendto(viewer.tx.rtcp_protect(bytes(nack)), server_addr)
    drain_until(fwd, 0.2)
    resent = [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(2)]
    viewer.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        viewer.sock.recv(2048)  # the one never forwarded is not invented
    for again, index in zip(resent, (3, 7), strict=True):
        assert again.timestamp - first[0].timestamp == index * 3000
        if rtx:
            # RFC 4588 §4: RTX SSRC and payload type, the original sequence number first
            assert (again.ssrc, again.payload_type) == (5556, 102)
            assert again.payload == seq_of[index].to_bytes(2, "big") + vp8(False)
        else:
            assert (again.ssrc, again.payload_type, again.sequence_number) == (5555, 101, seq_of[index])
            assert again.payload == vp8(False)
    if rtx:
        assert resent[1].sequence_number == (resent[0].sequence_number + 1) & 0xFFFF
    stats = fwd.consumer_stats(consumer)
    assert stats["nackCount"] == 1 and stats["retransmittedPackets"] == 2
    assert stats.get("rtxSsrc") == (5556 if rtx else None)


def test_a_sender_resending_what_arrived_is_not_forwarded_again(forwarder):
    """libwebrtc probes by resending recent packets as RTX (key frames' first packets most, being
    large). Those copies repair nothing: a consumer gets each packet once, the key frame is counted
    once, and only an RTX packet that fills a gap goes on."""
    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 4444, 0, CODEC_VP8, 90000, 0, True)
    fwd.set_stream_rtx_ssrc(stream, 4445)
    fwd.set_stream_rtx_payload(stream, 97, 96)
    consumer = fwd.add_consumer(connect(fwd, viewer), 5555, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False)
    fwd.attach_stream(consumer, 0, stream)

    def send(seq: int, keyframe: bool = False, as_rtx: bool = False) -> None:
        media = rtp(seq, seq * 3000, 4444, 96, vp8(keyframe))
        if as_rtx:
            media = rtp(9000 + seq, seq * 3000, 4445, 97, seq.to_bytes(2, "big") + vp8(keyframe))
        producer.sock.sendto(producer.tx.protect(media), server_addr)

    send(100, keyframe=True)
    send(101)
    send(100, keyframe=True, as_rtx=True)  # a probe: the key frame's first packet again
    send(101, as_rtx=True)
    send(103)  # 102 lost on the way ...
    send(102, as_rtx=True)  # ... and repaired
    drain_until(fwd, 0.3)
    got = [RtpPacket.parse(viewer.rx.unprotect(p)) for p in viewer.receive(4)]
    first = got[0].sequence_number
    assert [(p.sequence_number - first) & 0xFFFF for p in got] == [0, 1, 3, 2]
    viewer.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        viewer.sock.recv(2048)
    assert fwd.counters()["drops"]["duplicate"] == 2
    assert fwd.stream_stats(stream)["keyFrames"] == 1


def test_a_removed_consumer_says_bye_for_its_streams(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer = Peer(), Peer()
    stream = fwd.add_producer_stream(connect(fwd, producer), 4444, 0, CODEC_VP8, 90000, 0, True)
    consumer = fwd.add_consumer(connect(fwd, viewer), 5555, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False,
                                -1, 5556, 102)
    fwd.attach_stream(consumer, 0, stream)
    fwd.remove_consumer(consumer)
    packets = RtcpPacket.parse(viewer.rx.rtcp_unprotect(viewer.sock.recv(2048)))
    assert [type(p) for p in packets] == [RtcpRrPacket, RtcpByePacket]
    assert packets[1].sources == [5555, 5556]


def test_a_producer_bye_stops_its_layer_counting_as_flowing(forwarder):
    fwd, server_addr, control = forwarder
    producer, viewer, streams, consumer = simulcast_viewer(fwd)

    def send(ssrcs, seq):
        for ssrc in ssrcs:
            producer.sock.sendto(producer.tx.protect(rtp(seq, seq * 3000, ssrc, 96, vp8(True))), server_addr)
        drain_until(fwd, 0.05)
        fwd.update_layers()

    send((100, 101, 102), 1)
    assert fwd.consumer_stats(consumer)["targetLayer"] == 2
    bye = bytes(RtcpByePacket(sources=[102]))
    producer.sock.sendto(producer.tx.rtcp_protect(bytes(RtcpRrPacket(ssrc=102)) + bye), server_addr)
    send((100, 101), 2)
    assert fwd.consumer_stats(consumer)["targetLayer"] == 1, "at once, not after two idle seconds"
    assert fwd.stream_stats(streams[2])["byeReceived"] == 1
