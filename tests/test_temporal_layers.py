"""Temporal layers through a real Forwarder over loopback: a synthetic VP8 L1T3 stream (RFC 7741
TID and LAYER_SYNC) to consumers that prefer fewer or more frames per second, and the bandwidth
allocator dropping frame rate before resolution."""

from __future__ import annotations

import struct
import time

import pytest
from aiortc.rtp import RtcpPsfbPacket, RtcpRtpfbPacket, RtpPacket, pack_remb_fci
from fastpath.codecs import CODEC_AV1, CODEC_H264, CODEC_VP8, CODEC_VP9
from fastpath.srtp import SrtpSession

from tests import test_forwarder
from tests.test_forwarder import Peer, connect, rtp

forwarder = test_forwarder.forwarder  # a Forwarder on a loopback socket

# the temporal ids of L1T3 (W3C webrtc-svc): 0, 2, 1, 2, ... frames of 33 ms at 30 fps
PATTERN = (0, 2, 1, 2)
FRAME_TICKS = 3000


def vp8_packet(frame: int, index: int, last: bool, keyframe: bool, picture_id: int, tl0: int,
               tid: int, sync: bool, size: int) -> bytes:
    """One packet of a VP8 frame: descriptor with X, S (first packet only), I (15-bit picture id),
    L (TL0PICIDX) and T (TID, Y) (RFC 7741 §4.2), the payload header on the first packet, then a
    body naming the frame and packet."""
    descriptor = bytes([0x80 | (0x10 if index == 0 else 0), 0xE0, 0x80 | (picture_id >> 8),
                        picture_id & 0xFF, tl0 & 0xFF, (tid << 6) | (int(sync) << 5)])
    header = bytes([0x00 if keyframe else 0x01, 0, 0]) if index == 0 else b""
    body = struct.pack("!IHB", frame, index, last)
    return descriptor + header + body + bytes(max(0, size - len(body)))


class Received:
    """A VP8 packet as the viewer got it."""

    def __init__(self, packet: RtpPacket, at: float):
        p = packet.payload
        self.packet, self.at = packet, at
        self.seq, self.marker = packet.sequence_number, packet.marker
        self.start = bool(p[0] & 0x10)
        self.picture_id = ((p[2] & 0x7F) << 8) | p[3]
        self.tl0, self.tid, self.sync = p[4], p[5] >> 6, (p[5] >> 5) & 1
        body = p[6 + (3 if self.start else 0):]
        self.frame, self.index, _ = struct.unpack("!IHB", body[:7])


class L1T3Source:
    """A VP8 encoder's output at 30 fps with three temporal layers, one SSRC.

    Key frames every `keyframe_every` frames; LAYER_SYNC on the TL1 and TL2 frames that refer
    only to TL0 (the two after it), in every `sync_every`-th group of four frames only, so a
    switch up has to wait for one."""

    def __init__(self, peer: Peer, server_addr, ssrc: int, packets: int = 3, size: int = 200,
                 keyframe_every: int = 0, sync_every: int = 1, seq: int = 65000, picture_id: int = 32700):
        self.peer, self.server_addr, self.ssrc = peer, server_addr, ssrc
        self.packets, self.size = packets, size
        self.keyframe_every, self.sync_every = keyframe_every, sync_every
        self.frame, self.seq, self.picture_id, self.tl0 = 0, seq, picture_id, 250

    def tid(self, frame: int) -> int:
        return PATTERN[frame % 4]

    def is_sync(self, frame: int) -> bool:
        return frame % 4 in (1, 2) and (frame // 4) % self.sync_every == self.sync_every - 1

    def send_frame(self) -> None:
        f = self.frame
        tid = self.tid(f)
        if tid == 0 and f:
            self.tl0 = (self.tl0 + 1) & 0xFF
        keyframe = f == 0 or (self.keyframe_every and f % self.keyframe_every == 0)
        for index in range(self.packets):
            last = index == self.packets - 1
            payload = vp8_packet(f, index, last, keyframe, self.picture_id, self.tl0, tid,
                                 self.is_sync(f), self.size)
            packet = rtp(self.seq & 0xFFFF, (f * FRAME_TICKS) & 0xFFFFFFFF, self.ssrc, 96, payload, int(last))
            self.peer.sock.sendto(self.peer.tx.protect(packet), self.server_addr)
            self.seq += 1
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        self.frame += 1


def collect(viewer: Peer, into: list[Received]) -> None:
    while True:
        try:
            raw = viewer.sock.recv(2048)
        except BlockingIOError:
            return
        into.append(Received(RtpPacket.parse(viewer.rx.unprotect(raw)), time.monotonic()))


def frames_per_second(got: list[Received], since: float, until: float) -> float:
    frames = {r.frame for r in got if since <= r.at < until and r.start}
    return len(frames) / (until - since)


def assert_continuous(got: list[Received]) -> None:
    """Sequence numbers without a gap; one picture id per frame, each the previous one's + 1;
    TL0PICIDX one up at each TL0 frame; whole frames, marker on their last packet."""
    seqs = [r.seq for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    frames: dict[int, list[Received]] = {}
    for r in got:
        frames.setdefault(r.frame, []).append(r)
    order = list(frames)
    pictures = [frames[f][0].picture_id for f in order]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pictures, pictures[1:], strict=False)), pictures
    for f in order:
        packets = frames[f]
        assert [p.index for p in packets] == list(range(len(packets))) and packets[0].start
        assert {p.picture_id for p in packets} == {packets[0].picture_id}
        assert [p.marker for p in packets] == [0] * (len(packets) - 1) + [1]
    tl0s = [(frames[f][0].tl0, frames[f][0].tid) for f in order]
    for (a, _), (b, tid) in zip(tl0s, tl0s[1:], strict=False):
        assert (b - a) & 0xFF == (1 if tid == 0 else 0), tl0s


def l1t3_viewer(fwd, server_addr, preferred_temporal: int, **source_args):
    producer, viewer = Peer(), Peer()
    viewer.sock.setblocking(False)
    stream = fwd.add_producer_stream(connect(fwd, producer), 4000, 0, CODEC_VP8, 90000, 0, True)
    consumer = fwd.add_consumer(connect(fwd, viewer), 8000, 1, {96: 101}, {}, 0, CODEC_VP8, 90000, True, False,
                                temporal_layers=3, preferred_temporal=preferred_temporal)
    fwd.attach_stream(consumer, 0, stream)
    return L1T3Source(producer, server_addr, 4000, **source_args), viewer, stream, consumer


def run(fwd, source: L1T3Source, viewer: Peer, got: list, frames: int) -> None:
    """Send `frames` frames at 30 fps, forwarding and receiving as they go."""
    start = time.monotonic()
    sent = 0
    while sent < frames:
        while sent < frames and sent < (time.monotonic() - start) * 30:
            source.send_frame()
            sent += 1
        fwd.drain()
        collect(viewer, got)
        time.sleep(0.003)
    fwd.drain()
    time.sleep(0.01)
    collect(viewer, got)


def test_a_consumer_gets_the_temporal_layers_it_prefers_without_gaps(forwarder):
    """Temporal layer 0 (7.5 fps), then 2 (30 fps: the switch waits for a LAYER_SYNC frame),
    then 1 (15 fps: down at once). The outgoing numbering never has a hole."""
    fwd, server_addr, control = forwarder
    source, viewer, stream, consumer = l1t3_viewer(fwd, server_addr, 0, sync_every=4)
    got: list[Received] = []

    run(fwd, source, viewer, got, 48)
    t1 = time.monotonic()
    assert got and got[0].frame == 0, "starts at the key frame"
    assert {r.tid for r in got} == {0}
    assert 6 <= frames_per_second(got, t1 - 1.0, t1) <= 9
    stats = fwd.consumer_stats(consumer)
    assert (stats["currentTemporalLayer"], stats["targetTemporalLayer"]) == (0, 0)

    switch_frame = source.frame
    assert not any(source.is_sync(f) for f in range(switch_frame, switch_frame + 12))
    fwd.set_consumer_preferred_layer(consumer, 0, 2)
    run(fwd, source, viewer, got, 60)
    t2 = time.monotonic()
    upper = [r for r in got if r.frame >= switch_frame and r.tid > 0]
    first_sync = next(f for f in range(switch_frame, source.frame) if source.is_sync(f))
    assert upper[0].frame == first_sync and upper[0].sync, "up only at a LAYER_SYNC frame"
    assert {r.frame for r in got if r.frame >= first_sync} == set(range(first_sync, source.frame))
    assert frames_per_second(got, t2 - 1.0, t2) >= 26
    assert fwd.consumer_stats(consumer)["currentTemporalLayer"] == 2

    down_frame = source.frame
    fwd.set_consumer_preferred_layer(consumer, 0, 1)
    run(fwd, source, viewer, got, 45)
    t3 = time.monotonic()
    after = {r.frame for r in got if r.frame >= down_frame}
    assert after == {f for f in range(down_frame, source.frame) if source.tid(f) <= 1}, "down at once"
    assert 12 <= frames_per_second(got, t3 - 1.0, t3) <= 17
    assert fwd.consumer_stats(consumer)["currentTemporalLayer"] == 1

    assert_continuous(got)
    layer_events = [(s, t) for _, events in control for name, slot, s, t in events
                    if name == "layerschange" and slot == consumer]
    assert layer_events == [(0, 0), (0, 2), (0, 1)]
    assert fwd.stream_stats(stream)["packetCount"] == source.seq - 65000


def test_a_nack_across_skipped_frames_gets_the_packet_it_names(forwarder):
    """The viewer "loses" packets after frames were skipped; each NACKed number maps back through
    the skips to the packet that carried it, and is resent with the same number and picture id."""
    fwd, server_addr, _ = forwarder
    source, viewer, stream, consumer = l1t3_viewer(fwd, server_addr, 0)
    got: list[Received] = []
    for _ in range(24):
        source.send_frame()
    time.sleep(0.05)
    test_forwarder.drain_until(fwd, 0.2)
    # read with a second context: the viewer's own must not have seen the packets it will "lose"
    first_look = Peer.__new__(Peer)
    first_look.sock, first_look.rx = viewer.sock, SrtpSession(viewer.profile, viewer.recv_key, "inbound")
    collect(first_look, got)
    assert [r.frame for r in got if r.start] == list(range(0, 24, 4))
    lost = [got[4], got[10], got[-1]]
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=8000, lost=[r.seq for r in lost] + [got[-1].seq + 1])
    viewer.sock.sendto(viewer.tx.rtcp_protect(bytes(nack)), server_addr)
    test_forwarder.drain_until(fwd, 0.2)
    resent: list[Received] = []
    collect(viewer, resent)
    assert [(r.seq, r.frame, r.index, r.picture_id) for r in resent] == \
        [(r.seq, r.frame, r.index, r.picture_id) for r in lost]
    assert fwd.consumer_stats(consumer)["retransmittedPackets"] == 3


# ---- the allocator: frame rate goes before resolution ---------------------------------------------

# three simulcast layers, each L1T3 at 30 fps: packets per frame and payload bytes give about
# 75 / 130 / 950 kbit/s for all temporal layers; a quarter of that for TL0, half for TL0+TL1
SPATIAL = ((500, 1, 300), (501, 2, 250), (502, 4, 1000))


class TemporalSimulcastRig:
    def __init__(self, fwd, server_addr):
        self.fwd = fwd
        self.producer, self.viewer = Peer(), Peer()
        self.viewer.sock.setblocking(False)
        tp = connect(fwd, self.producer)
        self.streams = [fwd.add_producer_stream(tp, ssrc, 0, CODEC_VP8, 90000, layer, True)
                        for layer, (ssrc, _, _) in enumerate(SPATIAL)]
        self.transport = connect(fwd, self.viewer)
        self.consumer = fwd.add_consumer(self.transport, 9100, 3, {96: 101}, {}, 0, CODEC_VP8, 90000, True,
                                         False, temporal_layers=3)
        for layer, stream in enumerate(self.streams):
            fwd.attach_stream(self.consumer, layer, stream)
        self.sources = [L1T3Source(self.producer, server_addr, ssrc, packets, size, keyframe_every=16,
                                   seq=layer * 20000, picture_id=layer * 1000)
                        for layer, (ssrc, packets, size) in enumerate(SPATIAL)]
        self.got: list[Received] = []
        self.ssrc_of: list[int] = []

    def run(self, seconds: float) -> None:
        start = time.monotonic()
        next_layers = start
        sent = 0
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            while sent < (now - start) * 30:
                for source in self.sources:
                    source.send_frame()
                sent += 1
            self.fwd.drain()
            collect(self.viewer, self.got)
            if now >= next_layers:
                self.fwd.update_layers()
                next_layers = now + 0.25
            time.sleep(0.003)

    def remb(self, bitrate: int) -> None:
        packet = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bitrate, [9100]))
        self.viewer.sock.sendto(self.viewer.tx.rtcp_protect(bytes(packet)), self.fwd_addr)

    def layers(self) -> tuple[int, int]:
        stats = self.fwd.consumer_stats(self.consumer)
        return stats["currentLayer"], stats["currentTemporalLayer"]

    def recent_tids(self, seconds: float) -> set[int]:
        since = time.monotonic() - seconds
        return {r.tid for r in self.got if r.at >= since}


def test_a_limited_path_loses_frame_rate_before_resolution(forwarder):
    """REMB (bit/s) and the (spatial, temporal) layers it affords: 600k, layer 2 at 15 fps (~480k)
    rather than layer 1 at 30; 300k, layer 2 at 7.5 fps (~240k); only below that does the viewer
    lose resolution, and then gets layer 1 at the full 30 fps (~130k) again."""
    steps = [(600_000, (2, 1)), (300_000, (2, 0)), (150_000, (1, 2))]
    fwd, server_addr, _ = forwarder
    rig = TemporalSimulcastRig(fwd, server_addr)
    rig.fwd_addr = server_addr
    rig.run(1.5)
    assert rig.layers() == (2, 2)
    bitrates = fwd.stream_stats(rig.streams[2])["layerBitrates"][0]
    assert bitrates[1] == pytest.approx(bitrates[0], rel=0.35)  # TL1 frames as many as TL0's
    assert bitrates[2] == pytest.approx(bitrates[0] + bitrates[1], rel=0.35)
    for remb, expected in steps:
        rig.remb(remb)
        rig.run(1.5)
        assert rig.layers() == expected, (remb, fwd.consumer_stats(rig.consumer))
        assert max(rig.recent_tids(0.5)) == expected[1]
    got = rig.got
    seqs = [r.seq for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), "no holes across all switches"


# ---- VP9 SVC: spatial and temporal layers in one stream ------------------------------------------

def vp9_packet(picture: int, picture_id: int, tid: int, switch_up: bool, sid: int, predicted: bool,
               first: bool, last: bool, index: int) -> bytes:
    """One packet of a VP9 layer frame in flexible mode (RFC 9628 §4.2): I, P, L, F, B and E
    bits, a 15-bit picture id, TID/U/SID/D, one reference diff when inter-picture predicted."""
    flags = 0x80 | (0x40 if predicted else 0) | 0x20 | 0x10 | (0x08 if first else 0) | (0x04 if last else 0)
    descriptor = bytes([flags, 0x80 | (picture_id >> 8), picture_id & 0xFF,
                        (tid << 5) | (int(switch_up) << 4) | (sid << 1) | (1 if sid else 0)])
    if predicted:
        descriptor += bytes([1 << 1])
    return descriptor + struct.pack("!IBH", picture, sid, index) + bytes(120)


class Vp9Received:
    def __init__(self, packet: RtpPacket):
        p = packet.payload
        self.seq, self.marker = packet.sequence_number, packet.marker
        self.begins, self.ends = bool(p[0] & 0x08), bool(p[0] & 0x04)
        self.tid, self.sid = p[3] >> 5, (p[3] >> 1) & 7
        body = p[5 if p[0] & 0x40 else 4:]
        self.picture, sid, self.index = struct.unpack("!IBH", body[:7])
        assert sid == self.sid


class SvcSource:
    """VP9 with three spatial and three temporal layers on one SSRC, 30 pictures a second, two
    packets per layer frame, the RTP marker at the end of each picture (of its top layer)."""

    def __init__(self, peer: Peer, server_addr, ssrc: int, keyframe_every: int = 16):
        self.peer, self.server_addr, self.ssrc = peer, server_addr, ssrc
        self.keyframe_every = keyframe_every
        self.picture, self.seq, self.picture_id = 0, 30000, 100

    def tid(self, picture: int) -> int:
        return PATTERN[picture % 4]

    def is_keyframe(self, picture: int) -> bool:
        return picture % self.keyframe_every == 0

    def send_picture(self) -> None:
        n = self.picture
        for sid in range(3):
            for index in range(2):
                last_of_picture = sid == 2 and index == 1
                payload = vp9_packet(n, self.picture_id, self.tid(n), n % 4 in (1, 2), sid,
                                     not self.is_keyframe(n), index == 0, index == 1, index)
                packet = rtp(self.seq & 0xFFFF, n * FRAME_TICKS, self.ssrc, 98, payload, int(last_of_picture))
                self.peer.sock.sendto(self.peer.tx.protect(packet), self.server_addr)
                self.seq += 1
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        self.picture += 1


def svc_viewer(fwd, server_addr, ksvc: bool, preferred: tuple[int, int]):
    producer, viewer = Peer(), Peer()
    viewer.sock.setblocking(False)
    stream = fwd.add_producer_stream(connect(fwd, producer), 6000, 0, CODEC_VP9, 90000, 0, True)
    consumer = fwd.add_consumer(connect(fwd, viewer), 6100, 1, {98: 103}, {}, 0, CODEC_VP9, 90000, True, False,
                                preferred[0], temporal_layers=3, preferred_temporal=preferred[1],
                                svc_layers=3, ksvc=ksvc)
    fwd.attach_stream(consumer, 0, stream)
    return SvcSource(producer, server_addr, 6000), viewer, consumer


def send_pictures(fwd, source: SvcSource, viewer: Peer, count: int) -> list[Vp9Received]:
    got = []
    for _ in range(count):
        source.send_picture()
        fwd.drain()
        time.sleep(0.002)
        fwd.drain()
        got += pending_vp9(viewer)
    return got


def pending_vp9(viewer: Peer) -> list[Vp9Received]:
    out = []
    while True:
        try:
            raw = viewer.sock.recv(2048)
        except BlockingIOError:
            return out
        out.append(Vp9Received(RtpPacket.parse(viewer.rx.unprotect(raw))))


def layers_by_picture(got: list[Vp9Received]) -> dict[int, list[int]]:
    """picture -> the spatial ids forwarded of it; checks each layer frame is whole and that the
    marker is on the last packet of the highest one."""
    pictures: dict[int, list[Vp9Received]] = {}
    for r in got:
        pictures.setdefault(r.picture, []).append(r)
    out = {}
    for picture, packets in pictures.items():
        sids = sorted({p.sid for p in packets})
        assert [(p.sid, p.index) for p in packets] == [(s, i) for s in sids for i in range(2)], picture
        assert [p.marker for p in packets] == [0] * (len(packets) - 1) + [1], (picture, sids)
        out[picture] = sids
    return out


def test_vp9_full_svc_forwards_the_spatial_and_temporal_layers_preferred(forwarder):
    """L3T3: spatial layers up to the preferred one, the marker moved to its end of each picture;
    up waits for a key frame, down happens at the next picture; no hole in the numbering."""
    fwd, server_addr, control = forwarder
    source, viewer, consumer = svc_viewer(fwd, server_addr, False, (1, 2))
    got = send_pictures(fwd, source, viewer, 20)
    assert {p: s for p, s in layers_by_picture(got).items()} == {p: [0, 1] for p in range(20)}

    fwd.set_consumer_preferred_layer(consumer, 2, 0)  # up waits for the key frame at picture 32
    got += send_pictures(fwd, source, viewer, 20)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(20, 40) if p in layers} == \
        {**{p: [0, 1] for p in range(20, 32) if p % 4 == 0}, **{p: [0, 1, 2] for p in range(32, 40, 4)}}
    assert fwd.consumer_stats(consumer)["currentLayer"] == 2

    fwd.set_consumer_preferred_layer(consumer, 0, 2)  # down at once; up in time at a switching point
    got += send_pictures(fwd, source, viewer, 12)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(40, 52) if p in layers} == \
        {40: [0], **{p: [0] for p in range(41, 52)}}
    seqs = [r.seq for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    events = [(s, t) for _, evs in control for name, slot, s, t in evs if slot == consumer]
    assert events[0] == (1, 2) and events[-1] == (0, 2) and (2, 0) in events


def test_vp9_k_svc_forwards_only_the_current_spatial_layer_between_key_frames(forwarder):
    """L3T3_KEY: upper layers predict from lower ones only on key pictures, so off them only the
    current spatial layer is forwarded, and any spatial switch waits for a key picture."""
    fwd, server_addr, _ = forwarder
    source, viewer, consumer = svc_viewer(fwd, server_addr, True, (1, 2))
    got = send_pictures(fwd, source, viewer, 20)
    layers = layers_by_picture(got)
    assert layers == {p: ([0, 1] if source.is_keyframe(p) else [1]) for p in range(20)}

    fwd.set_consumer_preferred_layer(consumer, 0, 2)
    got += send_pictures(fwd, source, viewer, 16)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(20, 36)} == {**{p: [1] for p in range(20, 32)}, 32: [0],
                                                    **{p: [0] for p in range(33, 36)}}
    seqs = [r.seq for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_AV1, CODEC_VP8, CODEC_VP9])
def test_layers_within_a_stream_are_chosen_only_where_every_packet_names_them(forwarder, codec):
    """VP8 packets carry their temporal id, VP9 packets their temporal and spatial ids, AV1 packets
    both in their dependency descriptor (tests/test_av1_dd.py). H264 names no layers: its streams
    are forwarded whole."""
    fwd, _, _ = forwarder
    transport = connect(fwd, Peer())
    consumer = fwd.add_consumer(transport, 6200, 1, {98: 98}, {}, 0, codec, 90000, True, False, 0,
                                temporal_layers=3, preferred_temporal=0, svc_layers=3)
    stats = fwd.consumer_stats(consumer)
    expected = {CODEC_VP8: (1, 3), CODEC_VP9: (3, 3), CODEC_AV1: (3, 3)}.get(codec, (1, 1))
    assert (stats["spatialLayers"], stats["temporalLayers"]) == expected


def test_an_svc_consumer_on_a_limited_path_loses_frame_rate_before_resolution(forwarder):
    """VP9 L3T3 (full SVC) at ~72 kbit/s per spatial layer: REMB 150k affords all three spatial
    layers at 15 fps (~110k) rather than two at 30 (~145k); 80k, three at 7.5 fps; 40k, two at 7.5."""
    fwd, server_addr, _ = forwarder
    source, viewer, consumer = svc_viewer(fwd, server_addr, False, (2, 2))
    got: list[Vp9Received] = []
    start = time.monotonic()
    next_layers, sent = start, 0

    def run(seconds: float) -> None:
        nonlocal next_layers, sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            while sent < (now - start) * 30:
                source.send_picture()
                sent += 1
            fwd.drain()
            got.extend(pending_vp9(viewer))
            if now >= next_layers:
                fwd.update_layers()
                next_layers = now + 0.25
            time.sleep(0.003)

    def layers() -> tuple[int, int]:
        stats = fwd.consumer_stats(consumer)
        return stats["currentLayer"], stats["currentTemporalLayer"]

    run(1.5)
    assert layers() == (2, 2)
    for remb, expected in ((150_000, (2, 1)), (80_000, (2, 0)), (40_000, (1, 0))):
        packet = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(remb, [6100]))
        viewer.sock.sendto(viewer.tx.rtcp_protect(bytes(packet)), server_addr)
        run(1.5)
        assert layers() == expected, (remb, fwd.consumer_stats(consumer))
    recent = [r for r in got[-30:]]
    assert {r.sid for r in recent} == {0, 1} and {r.tid for r in recent} == {0}
    seqs = [r.seq for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
