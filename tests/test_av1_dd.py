"""The AV1 dependency descriptor (AV1 RTP specification, appendix A): the fast path's reader on
hand-built descriptors (templates, structures, custom fields, malformed and truncated ones), and
AV1 L1T3 and L3T3_KEY streams through a real Forwarder over loopback choosing layers from it."""

from __future__ import annotations

import random
import struct
import time

from fastpath.av1 import DependencyDescriptorReader
from fastpath.codecs import CODEC_AV1
from fastpath.rtp import extensions_py

from tests import test_forwarder
from tests.av1_dd import L1T3, Structure, descriptor, l3t3_key
from tests.test_forwarder import Peer, connect

forwarder = test_forwarder.forwarder  # a Forwarder on a loopback socket

DD_ERR_TRUNCATED, DD_ERR_INVALID, DD_ERR_NO_STRUCTURE = -1, -2, -3
DD_ID = 8
PATTERN = (0, 2, 1, 2)          # L1T3's temporal ids, 30 pictures a second
L1T3_TEMPLATE = {0: 1, 1: 3, 2: 2, 3: 4}   # picture % 4 -> its template in Chromium's L1T3


# ---- the reader -------------------------------------------------------------------------------

def test_a_key_frame_structure_maps_later_template_ids_to_layers_and_switch_points():
    reader = DependencyDescriptorReader()
    assert reader.read(descriptor(True, False, 0, 1)) == DD_ERR_NO_STRUCTURE
    first = reader.read(descriptor(True, False, 0, 7, structure=L1T3))
    assert first["structure_present"] and (first["spatial_id"], first["temporal_id"]) == (0, 0)
    assert reader.structure["templates"] == [(0, 0), (0, 0), (0, 1), (0, 2), (0, 2)]
    assert reader.structure["decode_targets"] == [(0, 0), (0, 1), (0, 2)]
    assert reader.structure["chains"] == 1 and reader.structure["active_decode_targets"] == 0b111
    # later packets: three bytes, the template id alone names the layer
    frames = [reader.read(descriptor(i == 0, i == 1, template, 8 + template)) for template in range(5)
              for i in range(2)]
    assert [(f["temporal_id"], f["dtis"]) for f in frames[::2]] == [
        (0, [2, 2, 2]), (0, [2, 2, 2]), (1, [0, 1, 2]), (2, [0, 0, 1]), (2, [0, 0, 1])]
    # switch points: a T0 frame for every target; the T1 frame for the T2 target only ("-DS")
    assert [f["switch_mask"] for f in frames[::2]] == [0b111, 0b111, 0b100, 0, 0]
    assert [(f["start_of_frame"], f["end_of_frame"]) for f in frames[:2]] == [(True, False), (False, True)]
    assert frames[5]["frame_number"] == 10
    assert reader.read(descriptor(True, True, 5, 20)) == DD_ERR_INVALID, "no sixth template"


def test_template_ids_are_taken_from_the_structures_offset_and_wrap_at_64():
    reader = DependencyDescriptorReader()
    structure = Structure(templates=L1T3.templates, offset=62, chains=1, protected_by=[0, 0, 0])
    assert reader.read(descriptor(True, True, 62, 0xFFFF, structure=structure))["frame_number"] == 0xFFFF
    assert [reader.read(descriptor(True, True, t, 1))["temporal_id"] for t in (62, 63, 0, 1, 2)] == [0, 0, 1, 2, 2]
    assert reader.read(descriptor(True, True, 3, 1)) == DD_ERR_INVALID
    assert reader.read(descriptor(True, True, 61, 1)) == DD_ERR_INVALID


def test_spatial_layers_decode_targets_and_resolutions():
    reader = DependencyDescriptorReader()
    structure = l3t3_key()
    assert reader.read(descriptor(True, True, 0, 1, structure=structure))["switch_mask"] == 0b111
    s = reader.structure
    assert s["decode_targets"] == [(sid, tid) for sid in range(3) for tid in range(3)]
    assert s["resolutions"] == [(160, 120), (320, 240), (640, 480)] and s["chains"] == 3
    layers = [(reader.read(descriptor(True, True, t, 2))["spatial_id"],
               reader.read(descriptor(True, True, t, 2))["temporal_id"]) for t in range(12)]
    assert layers == [(0, 0), (0, 0), (0, 1), (0, 2), (1, 0), (1, 0), (1, 1), (1, 2),
                      (2, 0), (2, 0), (2, 1), (2, 2)]


def test_custom_dtis_fdiffs_chains_and_the_active_decode_targets():
    reader = DependencyDescriptorReader()
    reader.read(descriptor(True, True, 0, 1, structure=L1T3))
    frame = reader.read(descriptor(True, True, 3, 2, custom_dtis="SSS", custom_fdiffs=[1, 17, 300],
                                   custom_chains=[5]))
    assert frame["temporal_id"] == 2 and frame["dtis"] == [2, 2, 2] and frame["switch_mask"] == 0b111
    assert reader.read(descriptor(True, True, 1, 3, active=0b001, dt_count=3))["temporal_id"] == 0
    assert reader.structure["active_decode_targets"] == 0b001
    # a new structure makes every decode target active again
    reader.read(descriptor(True, True, 0, 4, structure=L1T3))
    assert reader.structure["active_decode_targets"] == 0b111


def test_malformed_and_truncated_descriptors_are_errors_never_a_crash():
    whole = descriptor(True, False, 0, 1, structure=l3t3_key())
    fresh = DependencyDescriptorReader()
    for cut in range(len(whole)):
        assert fresh.read(whole[:cut]) in (DD_ERR_TRUNCATED, DD_ERR_NO_STRUCTURE), cut
    assert fresh.structure is None, "a truncated structure is never kept"
    reader = DependencyDescriptorReader()
    reader.read(descriptor(True, True, 0, 1, structure=L1T3))
    custom = descriptor(True, True, 3, 2, custom_dtis="SSS", custom_fdiffs=[1, 17], custom_chains=[5])
    for cut in range(4, len(custom)):
        assert reader.read(custom[:cut]) == DD_ERR_TRUNCATED, cut
    # a structure of more than 64 templates (next_layer_idc 0 again and again) is invalid
    too_many = bytes([0x80, 0, 1, 0x80 | 0x00, 0x00]) + bytes(40)
    assert reader.read(too_many) in (DD_ERR_INVALID, DD_ERR_TRUNCATED)
    # four spatial steps (next_layer_idc 2) pass AV1's two-bit spatial id
    assert reader.read(bytes([0x80, 0, 1, 0x80, 0x00, 0b10101010, 0x80]) + bytes(8)) == DD_ERR_INVALID
    assert reader.structure["templates"] == [(0, 0), (0, 0), (0, 1), (0, 2), (0, 2)], "kept through errors"
    rng = random.Random(11)
    for _ in range(3000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        result = reader.read(blob)
        assert isinstance(result, dict) or result in (DD_ERR_TRUNCATED, DD_ERR_INVALID, DD_ERR_NO_STRUCTURE)


# ---- AV1 through the Forwarder ------------------------------------------------------------------

def rtp_with_dd(seq: int, ts: int, ssrc: int, marker: bool, dd: bytes, payload: bytes) -> bytes:
    """An RTP packet carrying the descriptor as a two-byte header extension element (RFC 8285 §4.3:
    a key frame's descriptor is longer than a one-byte element's 16 bytes)."""
    element = bytes([DD_ID, len(dd)]) + dd
    element += bytes(-len(element) % 4)
    header = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | 45, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return header + struct.pack("!HH", 0x1000, len(element) // 4) + element + payload


def av1_payload(picture: int, sid: int, tid: int, index: int, key: bool) -> bytes:
    """One of a frame's two packets: the aggregation header (one OBU element, W=1; Y on the first,
    Z on the second; N on a key frame's first), the OBU header with its extension on the first."""
    if index == 0:
        head = bytes([0x50 | (0x08 if key else 0), (6 << 3) | 0x04, (tid << 5) | (sid << 3)])
    else:
        head = bytes([0x90])
    return head + struct.pack("!IBB", picture, sid, index) + bytes(100)


class Av1Source:
    """AV1 at 30 pictures a second, one SSRC, each frame in two packets with its descriptor, the
    template structure on key pictures, the marker on the last packet of each picture."""

    def __init__(self, peer: Peer, server_addr, ssrc: int, structure: Structure, spatial_layers: int,
                 keyframe_every: int = 16):
        self.peer, self.server_addr, self.ssrc = peer, server_addr, ssrc
        self.structure, self.spatial_layers, self.keyframe_every = structure, spatial_layers, keyframe_every
        self.picture, self.seq, self.frame_number = 0, 65500, 65530
        self.sent_dd: dict[tuple[int, int, int], bytes] = {}

    def template(self, picture: int, sid: int) -> int:
        key = picture % self.keyframe_every == 0
        if self.spatial_layers == 1:
            return 0 if key else L1T3_TEMPLATE[picture % 4]
        # l3t3_key(): per spatial layer, its key template then its T0, T1, T2 ones
        return sid * 4 + (0 if key else 1 + PATTERN[picture % 4])

    def send_picture(self) -> None:
        n = self.picture
        key = n % self.keyframe_every == 0
        for sid in range(self.spatial_layers):
            for index in range(2):
                dd = descriptor(index == 0, index == 1, self.template(n, sid), self.frame_number & 0xFFFF,
                                structure=self.structure if key and sid == 0 and index == 0 else None)
                self.sent_dd[(n, sid, index)] = dd
                last = sid == self.spatial_layers - 1 and index == 1
                packet = rtp_with_dd(self.seq, n * 3000, self.ssrc, last, dd,
                                     av1_payload(n, sid, PATTERN[n % 4], index, key and sid == 0 and index == 0))
                self.peer.sock.sendto(self.peer.tx.protect(packet), self.server_addr)
                self.seq += 1
            self.frame_number += 1
        self.picture += 1


class Got:
    def __init__(self, raw: bytes):
        self.seq = struct.unpack("!H", raw[2:4])[0]
        self.marker = bool(raw[1] & 0x80)
        self.dd = dict(extensions_py(raw)).get(DD_ID)
        header_len = 12 + 4 + struct.unpack("!H", raw[14:16])[0] * 4
        payload = raw[header_len:]
        body = payload[3:] if payload[0] & 0x40 else payload[1:]
        self.picture, self.sid, self.index = struct.unpack("!IBB", body[:6])


def av1_viewer(fwd, server_addr, structure, spatial_layers: int, preferred: tuple[int, int],
               ksvc: bool = True):
    producer, viewer = Peer(), Peer()
    viewer.sock.setblocking(False)
    stream = fwd.add_producer_stream(connect(fwd, producer), 7000, 0, CODEC_AV1, 90000, 0, True)
    fwd.set_stream_dependency_descriptor(stream, DD_ID)
    consumer = fwd.add_consumer(connect(fwd, viewer), 7100, 1, {45: 45}, {DD_ID: DD_ID}, 0, CODEC_AV1, 90000,
                                True, False, preferred[0], temporal_layers=3, preferred_temporal=preferred[1],
                                svc_layers=spatial_layers, ksvc=ksvc and spatial_layers > 1)
    fwd.attach_stream(consumer, 0, stream)
    return Av1Source(producer, server_addr, 7000, structure, spatial_layers), viewer, stream, consumer


def send(fwd, source: Av1Source, viewer: Peer, pictures: int) -> list[Got]:
    got = []
    for _ in range(pictures):
        source.send_picture()
        fwd.drain()
        time.sleep(0.002)
        fwd.drain()
        while True:
            try:
                got.append(Got(viewer.rx.unprotect(viewer.sock.recv(2048))))
            except BlockingIOError:
                break
    return got


def layers_by_picture(got: list[Got]) -> dict[int, list[int]]:
    """picture -> its spatial ids forwarded; each frame whole, the marker on the picture's last packet."""
    pictures: dict[int, list[Got]] = {}
    for g in got:
        pictures.setdefault(g.picture, []).append(g)
    out = {}
    for picture, packets in pictures.items():
        sids = sorted({p.sid for p in packets})
        assert [(p.sid, p.index) for p in packets] == [(s, i) for s in sids for i in range(2)], picture
        assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True], (picture, sids)
        out[picture] = sids
    return out


def assert_no_holes(got: list[Got]) -> None:
    seqs = [g.seq for g in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs


def test_av1_l1t3_temporal_layers_from_the_descriptor(forwarder):
    """Temporal layer 0 (a quarter of the pictures), then 2: up at the next frame whose DTI is
    Switch for it (the T1 frame, "-DS"), then 1: down at once. The descriptor arrives unchanged."""
    fwd, server_addr, control = forwarder
    source, viewer, stream, consumer = av1_viewer(fwd, server_addr, L1T3, 1, (0, 0))
    got = send(fwd, source, viewer, 16)
    assert sorted(layers_by_picture(got)) == [0, 4, 8, 12]
    assert all(g.dd == source.sent_dd[(g.picture, g.sid, g.index)] for g in got), "forwarded unchanged"

    fwd.set_consumer_preferred_layer(consumer, 0, 2)
    got += send(fwd, source, viewer, 8)        # pictures 16..23: 16 is a key picture (all targets)
    fwd.set_consumer_preferred_layer(consumer, 0, 1)
    source.keyframe_every = 1000
    got += send(fwd, source, viewer, 9)        # pictures 24..32
    fwd.set_consumer_preferred_layer(consumer, 0, 2)
    got += send(fwd, source, viewer, 6)        # 33..38: up at 34, the T1 frame before the next T0
    pictures = sorted(layers_by_picture(got))
    assert pictures == [0, 4, 8, 12, *range(16, 24), 24, 26, 28, 30, 32, *range(34, 39)], pictures
    assert_no_holes(got)
    assert fwd.consumer_stats(consumer)["currentTemporalLayer"] == 2
    events = [(s, t) for _, evs in control for name, slot, s, t in evs if slot == consumer]
    assert events[0] == (0, 0) and (0, 1) in events and events[-1] == (0, 2)
    stats = fwd.dependency_descriptor_stats(stream)
    assert stats["structures"] == 2 and stats["malformed"] == 0 and stats["unmapped"] == 0
    assert stats["decodeTargets"] == [(0, 0), (0, 1), (0, 2)]


def test_av1_l3t3_key_spatial_layers_from_the_descriptor(forwarder):
    """L3T3_KEY: on key pictures the layers up to the preferred one, between them that one alone;
    the marker on its last packet; a spatial switch waits for a key picture."""
    fwd, server_addr, control = forwarder
    source, viewer, stream, consumer = av1_viewer(fwd, server_addr, l3t3_key(), 3, (1, 2))
    fwd.update_layers()   # the start of the interval layer bitrates are measured over
    got = send(fwd, source, viewer, 20)
    layers = layers_by_picture(got)
    assert layers == {p: ([0, 1] if p % 16 == 0 else [1]) for p in range(20)}
    # each layer's bytes counted where the descriptor puts them, an OBU's continuation included
    # (as sent: per spatial layer, T0 and T1 a quarter of the pictures each, T2 half)
    fwd.update_layers()
    rates = fwd.stream_stats(stream)["layerBitrates"]
    for sid in range(3):
        assert 0.6 < rates[sid][0] / rates[0][0] < 1.6 and 0.6 < rates[sid][2] / (2 * rates[sid][1]) < 1.6, rates

    fwd.set_consumer_preferred_layer(consumer, 2, 0)   # up at the key picture 32, at 7.5 fps
    got += send(fwd, source, viewer, 16)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(20, 36) if p in layers} == \
        {**{p: [1] for p in range(20, 32) if p % 4 == 0}, 32: [0, 1, 2]}
    assert 36 not in layers and 34 not in layers
    fwd.set_consumer_preferred_layer(consumer, 0, 2)   # spatial down at the next key picture (K-SVC),
    got += send(fwd, source, viewer, 20)               # temporal up at once (a T0 frame: all "S")
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(36, 56)} == {**{p: [2] for p in range(36, 48)},
                                                    **{p: [0] for p in range(48, 56)}}
    assert_no_holes(got)
    assert fwd.consumer_stats(consumer)["currentLayer"] == 0
    events = [(s, t) for _, evs in control for name, slot, s, t in evs if slot == consumer]
    assert events[0] == (1, 2) and (2, 0) in events and events[-1] == (0, 2)
    assert all(g.dd == source.sent_dd[(g.picture, g.sid, g.index)] for g in got)


def test_malformed_descriptors_are_dropped_and_counted(forwarder):
    """A packet whose descriptor cannot be read is dropped and counted; the stream goes on."""
    fwd, server_addr, _ = forwarder
    source, viewer, stream, consumer = av1_viewer(fwd, server_addr, L1T3, 1, (0, 2))
    got = send(fwd, source, viewer, 4)
    bad = [descriptor(True, True, 0, 1, structure=L1T3)[:9], bytes([0x80, 0]), descriptor(True, True, 40, 3)]
    for dd in bad:
        packet = rtp_with_dd(source.seq, source.picture * 3000, 7000, True, dd, av1_payload(99, 0, 0, 0, False))
        source.peer.sock.sendto(source.peer.tx.protect(packet), server_addr)
        source.seq += 1
    got += send(fwd, source, viewer, 4)
    assert fwd.counters()["drops"]["dd_malformed"] == 3
    assert fwd.dependency_descriptor_stats(stream)["malformed"] == 3
    assert 99 not in layers_by_picture(got) and sorted(layers_by_picture(got)) == list(range(8))


def test_an_av1_stream_without_the_descriptor_is_forwarded_whole(forwarder):
    """Without the descriptor an AV1 packet that continues an OBU names no layer: nothing is thinned."""
    fwd, server_addr, _ = forwarder
    source, viewer, stream, consumer = av1_viewer(fwd, server_addr, L1T3, 1, (0, 0))
    fwd.set_stream_dependency_descriptor(stream, 0)
    got = send(fwd, source, viewer, 8)
    assert sorted(layers_by_picture(got)) == list(range(8))
    assert fwd.dependency_descriptor_stats(stream) is None


def test_a_nack_gets_the_av1_packet_it_names_across_skipped_frames(forwarder):
    """The viewer "loses" packets of temporal layer 0 after T1 and T2 frames were skipped; each NACKed
    number maps back to the packet that carried it (read from history with its descriptor, which the
    stream's state is not changed by) and comes again with the same number, marker and descriptor."""
    from aiortc.rtp import RtcpRtpfbPacket
    from fastpath.srtp import SrtpSession

    fwd, server_addr, _ = forwarder
    source, viewer, stream, consumer = av1_viewer(fwd, server_addr, L1T3, 1, (0, 0))
    first_look = Peer.__new__(Peer)
    first_look.sock, first_look.rx = viewer.sock, SrtpSession(viewer.profile, viewer.recv_key, "inbound")
    got = send(fwd, source, viewer=first_look, pictures=16)
    assert sorted(layers_by_picture(got)) == [0, 4, 8, 12]
    lost = [got[1], got[4], got[-1]]
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=7100, lost=[g.seq for g in lost])
    viewer.sock.sendto(viewer.tx.rtcp_protect(bytes(nack)), server_addr)
    test_forwarder.drain_until(fwd, 0.2)
    resent = []
    while True:
        try:
            resent.append(Got(viewer.rx.unprotect(viewer.sock.recv(2048))))
        except BlockingIOError:
            break
    assert [(g.seq, g.picture, g.index, g.marker, g.dd) for g in resent] == \
        [(g.seq, g.picture, g.index, g.marker, g.dd) for g in lost]
    assert fwd.consumer_stats(consumer)["retransmittedPackets"] == 3
    assert fwd.dependency_descriptor_stats(stream)["mapped"] == 32, "resends read, never count"


def test_av1_full_svc_goes_down_a_spatial_layer_at_the_next_picture(forwarder):
    """L3T3 (not _KEY): every picture's upper layers refer to the lower ones, so the layers up to the
    preferred one are forwarded in every picture; going down needs no key frame, going up does."""
    fwd, server_addr, _ = forwarder
    # the L3T3_KEY templates serve: what differs is what the consumer is told of the prediction
    source, viewer, stream, full = av1_viewer(fwd, server_addr, l3t3_key(), 3, (2, 2), ksvc=False)
    got = send(fwd, source, viewer, 6)
    assert layers_by_picture(got) == {p: [0, 1, 2] for p in range(6)}
    fwd.set_consumer_preferred_layer(full, 1, 2)
    got += send(fwd, source, viewer, 6)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(6, 12)} == {p: [0, 1] for p in range(6, 12)}
    fwd.set_consumer_preferred_layer(full, 2, 2)      # up waits for the key picture at 16
    got += send(fwd, source, viewer, 6)
    layers = layers_by_picture(got)
    assert {p: layers[p] for p in range(12, 18)} == {**{p: [0, 1] for p in range(12, 16)},
                                                    16: [0, 1, 2], 17: [0, 1, 2]}
    assert_no_holes(got)
