"""RTP packets to codec frames for the recorder: VP8, VP9, H264 and Opus, no decoding.

Off the forwarding path (it runs in the recorder's thread), so Python and aiortc's payload
descriptor parsers are fine here. A frame is every packet of one RTP timestamp; it is complete
when the marker bit arrives and no sequence number between its first and last packet is missing.
An incomplete frame is dropped, and the video waits for the next key frame (the caller asks for
one), since a decoder cannot use anything after a hole until then.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.codecs.vpx import VpxPayloadDescriptor

MAX_FRAME_PACKETS = 2048  # a 4K key frame is a few hundred packets; more is garbage


@dataclass
class Frame:
    data: bytes
    timestamp: int  # RTP timestamp (32 bits)
    key: bool
    width: int = 0  # from a key frame's header, when the codec carries it
    height: int = 0


class Depacketizer:
    """Collects one timestamp's packets and yields the frame on its marker bit."""

    video = True

    def __init__(self) -> None:
        self._timestamp: int | None = None
        self._parts: dict[int, bytes] = {}
        self._meta: dict[int, object] = {}
        self._marker_seq: int | None = None
        self.waiting_key = True  # nothing usable until a key frame
        self.dropped = 0
        self._expected: int | None = None  # the sequence number after the last complete frame

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes) -> Frame | None:
        """One RTP packet in; a complete frame out when this packet completes one."""
        if self._timestamp is not None and timestamp != self._timestamp:
            if self._parts:  # the previous frame never got its marker (lost last packet)
                self._drop()
            self._reset()
        if len(self._parts) >= MAX_FRAME_PACKETS:
            self._drop()
            self._reset()
            return None
        self._timestamp = timestamp
        try:
            self._parts[seq], self._meta[seq] = self.parse(payload)
        except (ValueError, IndexError, struct.error):
            self._parts[seq], self._meta[seq] = b"", None  # a hole: the frame will not be used
        if marker:
            self._marker_seq = seq
        if self._marker_seq is None:
            return None
        frame = self._complete()
        if frame is None:
            return None
        self._reset()
        if self.waiting_key and not frame.key:
            self.dropped += 1
            return None
        self.waiting_key = False
        return frame

    def _reset(self) -> None:
        self._timestamp = None
        self._parts = {}
        self._meta = {}
        self._marker_seq = None

    def _drop(self) -> None:
        self.dropped += 1
        self.waiting_key = True

    def _complete(self) -> Frame | None:
        seqs = sorted(self._parts, key=lambda s: (s - self._marker_seq) & 0xFFFF)
        # sequence numbers from the first packet held to the marker, modulo 2^16, with no gap
        first = (self._marker_seq - len(seqs) + 1) & 0xFFFF
        ordered = [(first + i) & 0xFFFF for i in range(len(seqs))]
        if set(ordered) != set(self._parts) or not self.starts_frame(self._meta[first]):
            return None  # not all here yet (reordering) or the start is lost: wait or drop
        if any(self._meta[s] is None for s in ordered):
            self._drop()
            self._reset()
            return None
        if self._expected is not None and first != self._expected:
            self._drop()  # whole frames were lost before this one: only a key frame can follow
        self._expected = (self._marker_seq + 1) & 0xFFFF
        return self.build([self._parts[s] for s in ordered], [self._meta[s] for s in ordered],
                          self._timestamp)

    # per codec

    def parse(self, payload: bytes) -> tuple[bytes, object]:
        raise NotImplementedError

    def starts_frame(self, meta: object) -> bool:
        return meta is not None

    def build(self, parts: list[bytes], metas: list, timestamp: int) -> Frame | None:
        raise NotImplementedError


class Vp8Depacketizer(Depacketizer):
    """RFC 7741: the payload descriptor off each packet; S=1, PID=0 starts a frame (§4.2)."""

    def parse(self, payload: bytes) -> tuple[bytes, object]:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
        return data, descriptor

    def starts_frame(self, meta: object) -> bool:
        return meta is not None and meta.partition_start == 1 and meta.partition_id == 0

    def build(self, parts: list[bytes], metas: list, timestamp: int) -> Frame | None:
        data = b"".join(parts)
        if len(data) < 3:
            return None
        key = not data[0] & 0x01  # the frame tag's P bit (RFC 6386 §9.1): 0 is a key frame
        if key and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
            width, height = struct.unpack_from("<HH", data, 6)
            return Frame(data, timestamp, True, width & 0x3FFF, height & 0x3FFF)
        return Frame(data, timestamp, key)


@dataclass
class Vp9Descriptor:
    start: bool  # B: first packet of a layer frame
    end: bool  # E: last packet of a layer frame
    inter: bool  # P: predicted from an earlier picture
    spatial: int
    sizes: list[tuple[int, int]]  # from the scalability structure (SS), per spatial layer


def parse_vp9_descriptor(payload: bytes) -> tuple[Vp9Descriptor, bytes]:
    """RFC 9628 §4.2: I|P|L|F|B|E|V|Z, then picture id, layer indices, P_DIFFs, and SS (§4.2.1)."""
    first = payload[0]
    has_pid, inter, has_layers, flexible = first & 0x80, bool(first & 0x40), first & 0x20, first & 0x10
    start, end, has_ss = bool(first & 0x08), bool(first & 0x04), first & 0x02
    pos = 1
    if has_pid:
        pos += 2 if payload[pos] & 0x80 else 1
    spatial = 0
    if has_layers:
        spatial = (payload[pos] >> 1) & 0x07
        pos += 1 if flexible else 2  # non-flexible mode carries TL0PICIDX
    if flexible and inter:
        for _ in range(3):  # at most three reference indices, each with an N bit for another
            more = payload[pos] & 0x01
            pos += 1
            if not more:
                break
    sizes: list[tuple[int, int]] = []
    if has_ss:
        count, has_sizes, has_groups = (payload[pos] >> 5) + 1, payload[pos] & 0x10, payload[pos] & 0x08
        pos += 1
        if has_sizes:
            for _ in range(count):
                sizes.append(struct.unpack_from("!HH", payload, pos))
                pos += 4
        if has_groups:
            groups = payload[pos]
            pos += 1
            for _ in range(groups):
                refs = (payload[pos] >> 2) & 0x03
                pos += 1 + refs
    if pos > len(payload):
        raise ValueError("VP9 payload descriptor runs past the packet")
    return Vp9Descriptor(start, end, inter, spatial, sizes), payload[pos:]


def vp9_superframe(layers: list[bytes]) -> bytes:
    """Several spatial layer frames of one picture as one VP9 superframe (VP9 bitstream spec, Annex B):
    the frames back to back, then an index of their sizes framed by a marker byte."""
    if len(layers) == 1:
        return layers[0]
    largest = max(len(layer) for layer in layers)
    size_bytes = 1 if largest < 1 << 8 else 2 if largest < 1 << 16 else 3 if largest < 1 << 24 else 4
    marker = 0xC0 | ((size_bytes - 1) << 3) | (len(layers) - 1)
    index = bytes([marker]) + b"".join(len(layer).to_bytes(size_bytes, "little") for layer in layers)
    return b"".join(layers) + index + bytes([marker])


class Vp9Depacketizer(Depacketizer):
    def parse(self, payload: bytes) -> tuple[bytes, object]:
        descriptor, data = parse_vp9_descriptor(payload)
        return data, descriptor

    def starts_frame(self, meta: object) -> bool:
        return meta is not None and meta.start

    def build(self, parts: list[bytes], metas: list, timestamp: int) -> Frame | None:
        layers, current = [], b""
        for part, meta in zip(parts, metas, strict=True):
            current += part
            if meta.end:
                layers.append(current)
                current = b""
        if current:
            layers.append(current)
        first = metas[0]
        key = not first.inter and first.spatial == 0
        width = height = 0
        sizes = next((m.sizes for m in metas if m.sizes), [])
        if sizes:
            top = max(m.spatial for m in metas)
            width, height = sizes[min(top, len(sizes) - 1)]
        return Frame(vp9_superframe(layers), timestamp, key, width, height)


class H264Depacketizer(Depacketizer):
    """RFC 6184: single NAL units, STAP-A and FU-A to an Annex B access unit (aiortc's parser)."""

    def parse(self, payload: bytes) -> tuple[bytes, object]:
        descriptor, data = H264PayloadDescriptor.parse(payload)
        return data, descriptor

    def starts_frame(self, meta: object) -> bool:
        return meta is not None and meta.first_fragment

    def build(self, parts: list[bytes], metas: list, timestamp: int) -> Frame | None:
        data = b"".join(parts)
        nal_types = {data[i + 4] & 0x1F for i in range(len(data) - 4) if data[i:i + 4] == b"\x00\x00\x00\x01"}
        key = 5 in nal_types and 7 in nal_types  # an IDR with its SPS: decodable from here
        width = height = 0
        if key:
            width, height = h264_sps_size(data)
        return Frame(data, timestamp, key, width, height)


class OpusDepacketizer(Depacketizer):
    """RFC 7587: one Opus packet per RTP packet, every one a 'key frame'."""

    video = False

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes) -> Frame | None:
        return Frame(payload, timestamp, True) if payload else None


class _Bits:
    """An exp-Golomb reader over an RBSP (emulation prevention bytes removed), ITU-T H.264 §9.1."""

    def __init__(self, data: bytes):
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end: the caller gives up
        self.pos += 1
        return (byte >> (7 - ((self.pos - 1) & 7))) & 1

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def h264_sps_size(access_unit: bytes) -> tuple[int, int]:
    """Width and height from the first SPS of an Annex B access unit (H.264 §7.3.2.1.1), 0x0 if unreadable."""
    start = access_unit.find(b"\x00\x00\x00\x01\x67")
    if start < 0:
        start = next((i for i in range(len(access_unit) - 4)
                      if access_unit[i:i + 4] == b"\x00\x00\x00\x01" and access_unit[i + 4] & 0x1F == 7), -1)
    if start < 0:
        return 0, 0
    try:
        return _sps_size(_Bits(access_unit[start + 5:start + 5 + 256]))
    except (IndexError, ValueError):
        return 0, 0


def _sps_size(r: _Bits) -> tuple[int, int]:
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            r.bit()
        r.ue()
        r.ue()
        r.bit()
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.bit():
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()
    r.bit()  # direct_8x8_inference_flag
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 2 if chroma in (1, 2) else 1
        crop_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


DEPACKETIZERS = {
    "video/vp8": Vp8Depacketizer,
    "video/vp9": Vp9Depacketizer,
    "video/h264": H264Depacketizer,
    "audio/opus": OpusDepacketizer,
}
