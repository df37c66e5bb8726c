"""Payload descriptors: key frames, layers and frame starts of VP8, VP9, H264, AV1
(real aiortc encoder output where aiortc has an encoder, hand-built bytes elsewhere)."""

import fractions
import random
import struct

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from fastpath.codecs import (
    CODEC_AV1,
    CODEC_H264,
    CODEC_OPUS,
    CODEC_UNKNOWN,
    CODEC_VP8,
    CODEC_VP9,
    PAYLOAD_ERR_CODEC,
    PAYLOAD_ERR_INVALID,
    PAYLOAD_ERR_TRUNCATED,
    PAYLOAD_OK,
    VP8_KEEP,
)

from fastpath import codecs


def encode_frames(mime_type, count=4):
    """RTP payloads per frame from aiortc's encoder: a forced key frame, then delta frames."""
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType=mime_type, clockRate=90000, payloadType=96)
    )
    rng = random.Random(7)
    frames = []
    for i in range(count):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:  # noise, so that frames span several packets
            plane.update(rng.randbytes(plane.buffer_size))
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=(i == 0))
        frames.append(payloads)
    return encoder, frames


def info(codec, payload):
    result = codecs.parse(codec, payload)
    assert isinstance(result, dict), result
    return result


def test_codec_from_mime():
    assert codecs.codec_from_mime("audio/opus") == CODEC_OPUS
    assert codecs.codec_from_mime("video/VP8") == CODEC_VP8
    assert codecs.codec_from_mime("video/vp9") == CODEC_VP9
    assert codecs.codec_from_mime("video/H264") == CODEC_H264
    assert codecs.codec_from_mime("video/AV1") == CODEC_AV1
    assert codecs.codec_from_mime("video/rtx") == CODEC_UNKNOWN


# -- real encoder output --------------------------------------------------------------------


def test_vp8_key_frame_from_aiortc_encoder():
    encoder, frames = encode_frames("video/VP8")
    assert isinstance(encoder, Vp8Encoder)
    assert all(len(payloads) > 1 for payloads in frames)
    picture_ids = []
    for index, payloads in enumerate(frames):
        first = info(CODEC_VP8, payloads[0])
        assert first["is_keyframe"] == (index == 0)
        assert first["begins_frame"] == 1
        assert first["picture_id_bits"] == 15
        descriptor, _ = VpxPayloadDescriptor.parse(payloads[0])
        assert first["picture_id"] == descriptor.picture_id
        assert first["header_length"] == len(bytes(descriptor))
        picture_ids.append(first["picture_id"])
        for payload in payloads[1:]:
            rest = info(CODEC_VP8, payload)
            assert (rest["is_keyframe"], rest["begins_frame"]) == (0, 0)
            assert rest["picture_id"] == first["picture_id"]
    assert picture_ids == [(picture_ids[0] + i) & 0x7FFF for i in range(len(frames))]


def test_h264_key_frame_from_aiortc_encoder():
    encoder, frames = encode_frames("video/H264")
    assert isinstance(encoder, H264Encoder)
    first = info(CODEC_H264, frames[0][0])
    assert first["is_keyframe"] == 1
    assert first["begins_frame"] == 1
    assert frames[0][0][0] & 0x1F == 24  # STAP-A holding SPS and PPS
    for payloads in frames[1:]:
        assert info(CODEC_H264, payloads[0])["begins_frame"] == 1
        for payload in payloads:
            assert info(CODEC_H264, payload)["is_keyframe"] == 0
        for payload in payloads[1:]:
            assert info(CODEC_H264, payload)["begins_frame"] == 0
    for payloads in frames:
        for payload in payloads:
            assert info(CODEC_H264, payload)["temporal_id"] == -1


# -- VP8 ----------------------------------------------------------------------------------------


def vp8(
    start=1,
    partition=0,
    picture_id=None,
    long_id=True,
    tl0=None,
    tid=None,
    y=0,
    keyidx=None,
    key=True,
):
    first = (start << 4) | partition
    ext = 0
    tail = b""
    if picture_id is not None:
        ext |= 0x80
        tail += struct.pack("!H", 0x8000 | picture_id) if long_id else bytes([picture_id])
    if tl0 is not None:
        ext |= 0x40
        tail += bytes([tl0])
    if tid is not None or keyidx is not None:
        ext |= (0x20 if tid is not None else 0) | (0x10 if keyidx is not None else 0)
        tail += bytes([((tid or 0) << 6) | (y << 5) | (keyidx or 0)])
    header = bytes([first | 0x80, ext]) + tail if ext else bytes([first])
    return header + bytes([0x00 if key else 0x01, 0x02, 0x03])


def test_vp8_descriptor_fields():
    payload = vp8(picture_id=0x1234, tl0=200, tid=2, y=1, keyidx=5, key=False)
    result = info(CODEC_VP8, payload)
    assert result == {
        "is_keyframe": 0,
        "temporal_id": 2,
        "spatial_id": 0,
        "layer_sync": 1,
        "begins_frame": 1,
        "ends_frame": -1,
        "picture_id": 0x1234,
        "picture_id_bits": 15,
        "tl0picidx": 200,
        "header_length": 6,
        "inter_predicted": 0,
        "switch_mask": 0,
    }
    short = info(CODEC_VP8, vp8(picture_id=0x55, long_id=False))
    assert (short["picture_id"], short["picture_id_bits"], short["header_length"]) == (0x55, 7, 3)
    plain = info(CODEC_VP8, vp8())
    assert (plain["picture_id"], plain["tl0picidx"], plain["temporal_id"]) == (-1, -1, -1)
    assert plain["header_length"] == 1


def test_vp8_key_frame_needs_start_partition_zero_and_p_clear():
    assert info(CODEC_VP8, vp8(picture_id=1))["is_keyframe"] == 1
    assert info(CODEC_VP8, vp8(picture_id=1, key=False))["is_keyframe"] == 0
    assert info(CODEC_VP8, vp8(picture_id=1, start=0))["is_keyframe"] == 0
    later_partition = info(CODEC_VP8, vp8(picture_id=1, partition=1))
    assert (later_partition["is_keyframe"], later_partition["begins_frame"]) == (0, 0)
    # K without T: the key index does not make a temporal id
    assert info(CODEC_VP8, vp8(keyidx=3))["temporal_id"] == -1


def test_vp8_rewrite_picture_id_and_tl0picidx():
    payload = bytearray(vp8(picture_id=0x7FFF, tl0=10, tid=1))
    assert codecs.rewrite_vp8_picture_id(payload, 0x0002, 11) == PAYLOAD_OK
    result = info(CODEC_VP8, bytes(payload))
    assert (result["picture_id"], result["picture_id_bits"], result["tl0picidx"]) == (2, 15, 11)
    assert result["temporal_id"] == 1 and result["is_keyframe"] == 1

    payload = bytearray(vp8(picture_id=0x10, long_id=False, tl0=10))
    assert codecs.rewrite_vp8_picture_id(payload, 0x1FF, VP8_KEEP) == PAYLOAD_OK
    result = info(CODEC_VP8, bytes(payload))
    assert (result["picture_id"], result["picture_id_bits"], result["tl0picidx"]) == (0x7F, 7, 10)

    payload = bytearray(vp8(picture_id=0x300, tl0=10))
    assert codecs.rewrite_vp8_picture_id(payload, VP8_KEEP, 0) == PAYLOAD_OK
    result = info(CODEC_VP8, bytes(payload))
    assert (result["picture_id"], result["tl0picidx"]) == (0x300, 0)

    unchanged = bytearray(vp8())
    assert codecs.rewrite_vp8_picture_id(unchanged, 5, 5) == PAYLOAD_OK
    assert bytes(unchanged) == vp8()
    truncated = bytearray(vp8(picture_id=0x300, tl0=10)[:4])
    assert codecs.rewrite_vp8_picture_id(truncated, 1, 1) == PAYLOAD_ERR_TRUNCATED
    assert codecs.rewrite_vp8_picture_id(bytearray(), 1, 1) == PAYLOAD_ERR_TRUNCATED


def test_vp8_rewrite_of_aiortc_output_keeps_the_descriptor_readable():
    _, frames = encode_frames("video/VP8", count=2)
    for new_id, payloads in enumerate(frames, start=100):
        for payload in payloads:
            data = bytearray(payload)
            assert codecs.rewrite_vp8_picture_id(data, new_id, VP8_KEEP) == PAYLOAD_OK
            descriptor, rest = VpxPayloadDescriptor.parse(bytes(data))
            assert descriptor.picture_id == new_id
            assert rest == VpxPayloadDescriptor.parse(payload)[1]


# -- VP9 ----------------------------------------------------------------------------------------


def vp9(
    i=True,
    p=False,
    layer=None,
    flexible=False,
    b=True,
    e=False,
    ss=None,
    picture_id=0x1ABC,
    tl0=9,
    p_diffs=(),
):
    """layer: (tid, u, sid, d) or None."""
    flags = (
        (0x80 if i else 0)
        | (0x40 if p else 0)
        | (0x20 if layer else 0)
        | (0x10 if flexible else 0)
        | (0x08 if b else 0)
        | (0x04 if e else 0)
        | (0x02 if ss is not None else 0)
    )
    data = bytes([flags])
    if i:
        data += struct.pack("!H", 0x8000 | picture_id)
    if layer:
        tid, u, sid, d = layer
        data += bytes([(tid << 5) | (u << 4) | (sid << 1) | d])
        if not flexible:
            data += bytes([tl0])
    if flexible and p:
        for n, diff in enumerate(p_diffs):
            data += bytes([(diff << 1) | (1 if n < len(p_diffs) - 1 else 0)])
    if ss is not None:
        data += ss
    return data + b"\x82\x49\x83"


def scalability_structure(layers=3, resolutions=True, groups=((0, 1, (1,)), (1, 1, (1, 2)))):
    data = bytes([((layers - 1) << 5) | (0x10 if resolutions else 0) | (0x08 if groups else 0)])
    if resolutions:
        for n in range(layers):
            data += struct.pack("!HH", 320 << n, 180 << n)
    if groups:
        data += bytes([len(groups)])
        for tid, u, diffs in groups:
            data += bytes([(tid << 5) | (u << 4) | (len(diffs) << 2)]) + bytes(diffs)
    return data


def test_vp9_non_flexible_layer_indices():
    payload = vp9(layer=(2, 1, 1, 1), p=True, e=True)
    result = info(CODEC_VP9, payload)
    assert result == {
        "is_keyframe": 0,
        "temporal_id": 2,
        "spatial_id": 1,
        "layer_sync": 1,
        "begins_frame": 1,
        "ends_frame": 1,
        "picture_id": 0x1ABC,
        "picture_id_bits": 15,
        "tl0picidx": 9,
        "header_length": 5,
        "inter_predicted": 1,
        "switch_mask": 0,
    }


def test_vp9_flexible_mode_with_reference_diffs():
    result = info(CODEC_VP9, vp9(layer=(1, 0, 0, 0), flexible=True, p=True, p_diffs=(1, 2, 3)))
    assert (result["temporal_id"], result["tl0picidx"], result["header_length"]) == (1, -1, 7)
    assert result["is_keyframe"] == 0
    four = vp9(layer=(1, 0, 0, 0), flexible=True, p=True, p_diffs=(1, 2, 3, 4))
    assert codecs.parse(CODEC_VP9, four) == PAYLOAD_ERR_INVALID


def test_vp9_key_frame_rules():
    ss = scalability_structure()
    key = info(CODEC_VP9, vp9(layer=(0, 0, 0, 0), ss=ss))
    assert key["is_keyframe"] == 1
    assert key["header_length"] == 5 + len(ss)
    assert info(CODEC_VP9, vp9(layer=(0, 0, 0, 0)))["is_keyframe"] == 1
    assert info(CODEC_VP9, vp9())["is_keyframe"] == 1  # no layer indices: spatial layer 0
    assert info(CODEC_VP9, vp9(layer=(0, 0, 1, 1)))["is_keyframe"] == 0  # upper spatial layer
    assert info(CODEC_VP9, vp9(layer=(0, 0, 0, 0), p=True))["is_keyframe"] == 0
    assert info(CODEC_VP9, vp9(layer=(0, 0, 0, 0), b=False))["is_keyframe"] == 0
    no_res = scalability_structure(layers=1, resolutions=False, groups=())
    assert info(CODEC_VP9, vp9(i=False, ss=no_res))["header_length"] == 2


def test_vp9_scalability_structure_truncations():
    payload = vp9(layer=(0, 0, 0, 0), ss=scalability_structure())
    header_length = info(CODEC_VP9, payload)["header_length"]
    for cut in range(header_length):
        assert codecs.parse(CODEC_VP9, payload[:cut]) == PAYLOAD_ERR_TRUNCATED, cut


# -- H264 ----------------------------------------------------------------------------------------


SPS = bytes([0x67, 0x42, 0xC0, 0x1E])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00])  # first_mb_in_slice = 0
SLICE = bytes([0x41, 0x9A, 0x02])
SLICE_LATER = bytes([0x41, 0x24, 0x02])  # first_mb_in_slice != 0


def stap_a(*nalus):
    return bytes([0x78]) + b"".join(struct.pack("!H", len(n)) + n for n in nalus)


def fu_a(nal, start, end=False, body=b"\x11\x22"):
    indicator = (nal[0] & 0xE0) | 28
    header = (0x80 if start else 0) | (0x40 if end else 0) | (nal[0] & 0x1F)
    return bytes([indicator, header]) + (nal[1:] if start else body)


@pytest.mark.parametrize(
    "payload,key,begins",
    [
        (SPS, 1, 1),
        (PPS, 0, 1),
        (IDR, 1, 1),
        (SLICE, 0, 1),
        (SLICE_LATER, 0, 0),
        (stap_a(SPS, PPS, IDR), 1, 1),
        (stap_a(SPS, PPS), 1, 1),
        (stap_a(PPS, SLICE), 0, 1),
        (fu_a(IDR, start=True), 1, 1),
        (fu_a(IDR, start=False), 0, 0),
        (fu_a(IDR, start=False, end=True), 0, 0),
        (fu_a(SLICE, start=True), 0, 1),
        (fu_a(SLICE_LATER, start=True), 0, 0),
    ],
)
def test_h264_packetization_modes(payload, key, begins):
    result = info(CODEC_H264, payload)
    assert (result["is_keyframe"], result["begins_frame"]) == (key, begins)
    assert (result["temporal_id"], result["spatial_id"], result["ends_frame"]) == (-1, 0, -1)


def test_h264_stap_a_bounds():
    payload = stap_a(SPS, PPS, IDR)
    assert codecs.parse(CODEC_H264, payload[:-1]) == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_H264, payload + b"\x00") == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_H264, bytes([0x78])) == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_H264, bytes([0x78, 0, 0])) == PAYLOAD_ERR_INVALID
    assert codecs.parse(CODEC_H264, bytes([0x7C])) == PAYLOAD_ERR_TRUNCATED  # FU-A without header


# -- AV1 -----------------------------------------------------------------------------------------


def leb128(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def obu(obu_type, body=b"\x00\x01\x02", tid=None, sid=None):
    header = (obu_type << 3) | (0x04 if tid is not None else 0) | 0x02
    ext = bytes([(tid << 5) | (sid << 3)]) if tid is not None else b""
    return bytes([header]) + ext + leb128(len(body)) + body


def av1(*elements, z=0, y=0, w=None, n=0):
    """Aggregation header plus elements; w=None means every element length-prefixed (W=0)."""
    count = 0 if w is None else w
    data = bytes([(z << 7) | (y << 6) | (count << 4) | (n << 3)])
    for index, element in enumerate(elements):
        last = w is not None and index == len(elements) - 1
        data += element if last else leb128(len(element)) + element
    return data


def test_av1_new_coded_video_sequence_is_a_key_frame():
    payload = av1(obu(1, b"\x00" * 10), obu(6, b"\x10" * 200), w=2, n=1)
    result = info(CODEC_AV1, payload)
    assert (result["is_keyframe"], result["begins_frame"]) == (1, 1)
    assert (result["temporal_id"], result["spatial_id"]) == (-1, 0)


def test_av1_layer_ids_from_the_obu_extension():
    result = info(CODEC_AV1, av1(obu(6, tid=2, sid=1)))
    assert (result["is_keyframe"], result["temporal_id"], result["spatial_id"]) == (0, 2, 1)
    assert result["begins_frame"] == 1
    # a continued first element is skipped; the second element's ids count
    result = info(CODEC_AV1, av1(b"\x55\x66", obu(4, tid=1, sid=2), z=1, w=2))
    assert (result["temporal_id"], result["spatial_id"], result["begins_frame"]) == (1, 2, 0)
    result = info(CODEC_AV1, av1(b"\x55\x66\x77", z=1, y=1, w=1))
    assert (result["temporal_id"], result["begins_frame"], result["is_keyframe"]) == (-1, 0, 0)


def test_av1_malformed_elements():
    assert codecs.parse(CODEC_AV1, bytes([0x00])) == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_AV1, bytes([0x00, 0x05, 0x30])) == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_AV1, bytes([0x00]) + b"\xff" * 9) == PAYLOAD_ERR_INVALID
    assert codecs.parse(CODEC_AV1, av1(bytes([0x80 | 0x30, 0]), w=1)) == PAYLOAD_ERR_INVALID
    assert codecs.parse(CODEC_AV1, av1(b"\x30\x00", w=3)) == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_AV1, av1(b"\x30\x00", z=1, n=1, w=1)) == PAYLOAD_ERR_INVALID


# -- all codecs ---------------------------------------------------------------------------------


def test_opus_and_unknown_codecs():
    result = info(CODEC_OPUS, b"\xfc\xff\xfe")
    assert (result["is_keyframe"], result["begins_frame"], result["temporal_id"]) == (1, 1, -1)
    assert codecs.parse(CODEC_OPUS, b"") == PAYLOAD_ERR_TRUNCATED
    assert codecs.parse(CODEC_UNKNOWN, b"\x00") == PAYLOAD_ERR_CODEC
    assert codecs.parse(99, b"\x00") == PAYLOAD_ERR_CODEC


def samples():
    _, vp8_frames = encode_frames("video/VP8", count=2)
    _, h264_frames = encode_frames("video/H264", count=2)
    yield from ((CODEC_VP8, p) for frame in vp8_frames for p in frame[:3])
    yield from ((CODEC_H264, p) for frame in h264_frames for p in frame[:3])
    yield CODEC_VP8, vp8(picture_id=0x1234, tl0=200, tid=2, y=1, keyidx=5)
    yield CODEC_VP9, vp9(layer=(0, 0, 0, 0), ss=scalability_structure())
    yield CODEC_VP9, vp9(layer=(1, 0, 0, 0), flexible=True, p=True, p_diffs=(1, 2, 3))
    yield CODEC_H264, stap_a(SPS, PPS, IDR)
    yield CODEC_AV1, av1(obu(1, b"\x00" * 10), obu(6, b"\x10" * 20, tid=1, sid=1), w=2, n=1)
    yield CODEC_AV1, av1(obu(1), obu(6))


def test_every_truncation_is_safe():
    for codec, payload in samples():
        assert isinstance(codecs.parse(codec, payload), dict)
        for cut in range(len(payload)):
            result = codecs.parse(codec, payload[:cut])
            assert isinstance(result, dict) or result < 0
            data = bytearray(payload[:cut])
            assert codecs.rewrite_vp8_picture_id(data, 77, 7) in (PAYLOAD_OK, PAYLOAD_ERR_TRUNCATED)


def test_random_payloads_never_crash():
    rng = random.Random(99)
    for codec in (CODEC_VP8, CODEC_VP9, CODEC_H264, CODEC_AV1, CODEC_OPUS):
        for _ in range(10_000):
            payload = rng.randbytes(rng.randint(0, 40))
            result = codecs.parse(codec, payload)
            assert isinstance(result, dict) or result < 0
            if isinstance(result, dict):
                assert 0 <= result["header_length"] <= len(payload)
        data = bytearray(rng.randbytes(rng.randint(0, 12)))
        assert codecs.rewrite_vp8_picture_id(data, 1, 1) in (PAYLOAD_OK, PAYLOAD_ERR_TRUNCATED)
