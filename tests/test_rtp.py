"""The RTP stage (RFC 3550 section 5.1, RFC 8285) and the rewrite stage, checked against aiortc."""

import ctypes
import mmap
import random

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtpPacket,
    pack_header_extensions,
    unpack_header_extensions,
)
from fastpath.rewrite import (
    SequenceRewriter,
    TimestampRewriter,
    rewrite_py,
    set_abs_send_time_py,
    set_transport_seq_py,
)
from fastpath.rtp import (
    ERROR_NAMES,
    extensions_py,
    find_extension_py,
    is_rtcp_py,
    parse_rtp_py,
    set_fields_py,
)

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"

ERR_SHORT, ERR_VERSION, ERR_CSRC, ERR_EXT_LEN, ERR_PADDING = -1, -2, -3, -4, -5
PROT_NONE = 0


def extensions_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return m


ONE_BYTE_IDS = {MID: 1, AUDIO_LEVEL: 2, ABS_SEND_TIME: 3, TRANSPORT_CC: 5, RID: 10}
TWO_BYTE_IDS = {MID: 1, AUDIO_LEVEL: 22, ABS_SEND_TIME: 3, TRANSPORT_CC: 200, RID: 10}


def make_packet(
    ids=ONE_BYTE_IDS,
    csrc=(),
    padding=0,
    mid="a",
    payload=b"payload!",
    marker=1,
    seq=4321,
    ts=0x89ABCDEF,
    ssrc=0x12345678,
):
    p = RtpPacket(payload_type=111, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc)
    p.csrc = list(csrc)
    p.padding_size = padding
    p.payload = payload
    if ids is not None:
        p.extensions.mid = mid
        p.extensions.audio_level = (True, 42)
        p.extensions.abs_send_time = 0x123456
        p.extensions.transport_sequence_number = 0xBEEF
        p.extensions.rtp_stream_id = "hi"
    return p.serialize(extensions_map(ids) if ids is not None else HeaderExtensionsMap())


VALID_PACKETS = {
    "plain": make_packet(ids=None),
    "csrc": make_packet(ids=None, csrc=(1, 2, 0xFFFFFFFF)),
    "padding": make_packet(ids=None, padding=7),
    "one_byte": make_packet(),
    "one_byte_csrc_padding": make_packet(csrc=(7, 8), padding=3),
    "two_byte_ids": make_packet(ids=TWO_BYTE_IDS),
    "two_byte_long_value": make_packet(mid="m" * 40, csrc=(5,), padding=1),
    "empty_payload": make_packet(payload=b""),
}


def aiortc_extensions(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """The profile and (id, value) elements aiortc reads from a packet's extension block."""
    cc = data[0] & 0x0F
    if not data[0] & 0x10:
        return 0, []
    pos = 12 + 4 * cc
    profile = int.from_bytes(data[pos : pos + 2], "big")
    length = 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
    return profile, unpack_header_extensions(profile, data[pos + 4 : pos + 4 + length])


class GuardedBuffer:
    """Bytes placed right before an inaccessible page, so any read past them faults."""

    def __init__(self):
        self.page = mmap.PAGESIZE
        self.map = mmap.mmap(-1, 2 * self.page)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if libc.mprotect(address + self.page, self.page, PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
        self.view = memoryview(self.map)

    def place(self, data: bytes) -> memoryview:
        start = self.page - len(data)
        self.map[start : self.page] = data
        return self.view[start : self.page]


@pytest.fixture(scope="module")
def guarded():
    return GuardedBuffer()


@pytest.mark.parametrize("name", sorted(VALID_PACKETS))
def test_parse_matches_aiortc(name):
    data = VALID_PACKETS[name]
    ref = RtpPacket.parse(data)
    h = parse_rtp_py(data)
    assert isinstance(h, dict), ERROR_NAMES.get(h)
    assert h["marker"] == ref.marker
    assert h["payload_type"] == ref.payload_type
    assert h["sequence_number"] == ref.sequence_number
    assert h["timestamp"] == ref.timestamp
    assert h["ssrc"] == ref.ssrc
    assert h["csrc_count"] == len(ref.csrc)
    assert h["padding_len"] == ref.padding_size
    assert h["has_padding"] == (ref.padding_size > 0)
    assert data[h["header_len"] : h["header_len"] + h["payload_len"]] == ref.payload
    assert h["header_len"] + h["payload_len"] + h["padding_len"] == len(data)
    profile, elements = aiortc_extensions(data)
    assert h["ext_profile"] == profile
    assert extensions_py(data) == elements
    for ext_id, value in elements:
        assert find_extension_py(data, ext_id) == value
    assert find_extension_py(data, 13) is None


def test_two_byte_form_is_used_and_parsed():
    assert parse_rtp_py(VALID_PACKETS["two_byte_ids"])["ext_profile"] == 0x1000
    assert parse_rtp_py(VALID_PACKETS["two_byte_long_value"])["ext_profile"] == 0x1000
    assert find_extension_py(VALID_PACKETS["two_byte_long_value"], 1) == b"m" * 40
    assert find_extension_py(VALID_PACKETS["two_byte_ids"], 200) == b"\xbe\xef"


def with_extension_block(profile: int, block: bytes, payload: bytes = b"xyz") -> bytes:
    assert len(block) % 4 == 0
    header = bytes([0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    return (
        header + profile.to_bytes(2, "big") + (len(block) // 4).to_bytes(2, "big") + block + payload
    )


def test_one_byte_padding_between_elements_and_stop_id():
    # id 1 len 2, two padding bytes, id 2 len 1, then id 15 ends the block before id 3
    block = bytes([0x11, 0xAA, 0xBB, 0, 0, 0x20, 0xCC, 0xF0, 0x30, 0xDD, 0, 0])
    data = with_extension_block(0xBEDE, block)
    assert extensions_py(data) == [(1, b"\xaa\xbb"), (2, b"\xcc")]
    assert find_extension_py(data, 3) is None
    assert data[parse_rtp_py(data)["header_len"] :] == b"xyz"


def test_two_byte_padding_and_empty_values():
    block = bytes([0, 0, 7, 0, 0, 200, 3, 1, 2, 3, 0, 0])
    data = with_extension_block(0x1005, block)
    assert extensions_py(data) == [(7, b""), (200, b"\x01\x02\x03")]
    assert find_extension_py(data, 7) == b""


def test_element_overrunning_the_block_ends_it():
    block = bytes([0x10, 0xAA, 0x2F, 0xBB])  # id 2 claims 16 bytes
    data = with_extension_block(0xBEDE, block)
    assert extensions_py(data) == [(1, b"\xaa")]
    assert find_extension_py(data, 2) is None


def test_other_profiles_have_no_elements():
    data = with_extension_block(0xABCD, bytes([0x10, 0xAA, 0, 0]))
    assert parse_rtp_py(data)["ext_profile"] == 0xABCD
    assert extensions_py(data) == []
    assert data[parse_rtp_py(data)["header_len"] :] == b"xyz"


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", ERR_SHORT),
        (bytes(11), ERR_SHORT),
        (bytes([0x40]) + bytes(11), ERR_VERSION),
        (bytes([0x82]) + bytes(15), ERR_CSRC),
        (bytes([0x90]) + bytes(13), ERR_EXT_LEN),
        (bytes([0x90]) + bytes(13) + b"\x00\x01" + bytes(3), ERR_EXT_LEN),
        (bytes([0xA0]) + bytes(11), ERR_PADDING),
        (bytes([0xA0]) + bytes(12), ERR_PADDING),
        (bytes([0xA0]) + bytes(11) + b"\x02", ERR_PADDING),
    ],
)
def test_error_codes(data, code):
    assert parse_rtp_py(data) == code
    assert code in ERROR_NAMES


@pytest.mark.parametrize("name", sorted(VALID_PACKETS))
def test_every_truncation_is_safe(name, guarded):
    data = VALID_PACKETS[name]
    full = parse_rtp_py(data)
    for length in range(len(data)):
        prefix = guarded.place(data[:length])
        h = parse_rtp_py(prefix)
        if length < full["header_len"]:
            # the header itself is cut: always an error
            assert isinstance(h, int) and h < 0, length
            assert h in ERROR_NAMES
        elif isinstance(h, dict):
            # a cut payload is still a packet, as long as its parts fit
            assert h["header_len"] + h["payload_len"] + h["padding_len"] == length
            assert h["payload_len"] >= 0
            extensions_py(prefix)
    assert parse_rtp_py(guarded.place(data)) == full


def test_random_bytes_do_not_crash(guarded):
    rng = random.Random(8285)
    parsed = 0
    for _ in range(10_000):
        length = rng.randrange(0, 120)
        data = bytearray(rng.randbytes(length))
        if length and rng.random() < 0.7:
            data[0] = 0x80 | (data[0] & 0x3F)  # version 2, so the parser gets further
        view = guarded.place(bytes(data))
        h = parse_rtp_py(view)
        if isinstance(h, int):
            assert h in ERROR_NAMES
            continue
        parsed += 1
        assert h["header_len"] + h["payload_len"] + h["padding_len"] == length
        extensions_py(view)
        find_extension_py(view, rng.randrange(256))
        ext_map = {i: rng.randrange(256) for i in range(1, 256)}
        packet, _ = rewrite_py(view, 1, 2, 3, 4, ext_map)
        assert isinstance(parse_rtp_py(packet), dict)
    assert parsed > 1000


def test_is_rtcp_by_packet_type():
    assert is_rtcp_py(bytes([0x80, 200, 0, 6]))
    assert is_rtcp_py(bytes([0x81, 223, 0, 1]))
    assert not is_rtcp_py(bytes([0x80, 191, 0, 1]))
    assert not is_rtcp_py(bytes([0x80, 224, 0, 1]))
    assert not is_rtcp_py(VALID_PACKETS["one_byte"])
    assert not is_rtcp_py(b"\x80")


def test_setters_in_place():
    data = bytearray(VALID_PACKETS["one_byte"])
    set_fields_py(data, ssrc=0xCAFEBABE, sequence_number=65535, timestamp=7, payload_type=96)
    p = RtpPacket.parse(bytes(data))
    assert (p.ssrc, p.sequence_number, p.timestamp, p.payload_type, p.marker) == (
        0xCAFEBABE,
        65535,
        7,
        96,
        1,
    )
    set_fields_py(data, marker=False)
    p = RtpPacket.parse(bytes(data))
    assert (p.marker, p.payload_type) == (0, 96)


def check_rewrite(data, ext_map, ssrc=0xA1B2C3D4, pt=100, seq=65535, ts=0xFFFFFFF0):
    packet, described = rewrite_py(data, ssrc, pt, seq, ts, ext_map)
    src = RtpPacket.parse(data)
    out = RtpPacket.parse(packet)
    assert (out.ssrc, out.payload_type, out.sequence_number, out.timestamp) == (ssrc, pt, seq, ts)
    assert out.marker == src.marker
    assert out.csrc == src.csrc
    assert out.payload == src.payload
    assert out.padding_size == src.padding_size
    assert packet[len(packet) - src.padding_size :] == data[len(data) - src.padding_size :]
    assert described == parse_rtp_py(packet)
    _, before = aiortc_extensions(data)
    _, after = aiortc_extensions(packet)
    assert after == [(ext_map[i], v) for i, v in before if ext_map.get(i)]
    return packet


@pytest.mark.parametrize("name", sorted(VALID_PACKETS))
def test_rewrite_identity_map_keeps_elements(name):
    check_rewrite(VALID_PACKETS[name], {i: i for i in range(1, 256)})


def test_rewrite_maps_and_drops_one_byte_ids():
    data = make_packet(csrc=(11, 12), padding=5)
    # producer: mid 1, audio level 2, abs-send-time 3, twcc 5, rid 10 -> consumer ids, level dropped
    packet = check_rewrite(data, {1: 4, 3: 9, 5: 12, 10: 14})
    assert parse_rtp_py(packet)["ext_profile"] == 0xBEDE
    out = RtpPacket.parse(packet, extensions_map({MID: 4, ABS_SEND_TIME: 9, TRANSPORT_CC: 12}))
    assert out.extensions.mid == "a"
    assert out.extensions.abs_send_time == 0x123456
    assert out.extensions.transport_sequence_number == 0xBEEF
    assert out.extensions.audio_level is None
    assert find_extension_py(packet, 2) is None
    assert find_extension_py(packet, 14) == b"hi"


def test_rewrite_to_high_ids_uses_two_byte_form():
    packet = check_rewrite(make_packet(), {1: 1, 3: 15, 5: 240})
    assert parse_rtp_py(packet)["ext_profile"] == 0x1000
    out = RtpPacket.parse(packet, extensions_map({MID: 1, ABS_SEND_TIME: 15, TRANSPORT_CC: 240}))
    assert out.extensions.abs_send_time == 0x123456
    assert out.extensions.transport_sequence_number == 0xBEEF


def test_rewrite_long_value_keeps_two_byte_form():
    packet = check_rewrite(VALID_PACKETS["two_byte_long_value"], {1: 2, 3: 3})
    assert parse_rtp_py(packet)["ext_profile"] == 0x1000
    assert find_extension_py(packet, 2) == b"m" * 40


def test_rewrite_two_byte_source_to_one_byte():
    packet = check_rewrite(VALID_PACKETS["two_byte_ids"], {1: 1, 22: 2, 200: 5})
    assert parse_rtp_py(packet)["ext_profile"] == 0xBEDE
    assert find_extension_py(packet, 5) == b"\xbe\xef"


def test_rewrite_empty_value_needs_two_byte_form():
    data = with_extension_block(0x1000, bytes([7, 0, 8, 1, 0x55, 0, 0, 0]))
    packet = check_rewrite(data, {7: 3, 8: 4})
    assert parse_rtp_py(packet)["ext_profile"] == 0x1000
    assert extensions_py(packet) == [(3, b""), (4, b"\x55")]


def test_rewrite_dropping_every_element_removes_the_block():
    data = make_packet(csrc=(9,), padding=2)
    packet = check_rewrite(data, {})
    h = parse_rtp_py(packet)
    assert not h["has_extension"] and packet[0] & 0x10 == 0
    assert h["header_len"] == 12 + 4
    assert len(packet) == 16 + len(b"payload!") + 2


def test_rewrite_padding_of_the_block():
    _, elements = aiortc_extensions(make_packet())
    for keep in range(1, len(elements) + 1):
        ext_map = {i: i for i, _ in elements[:keep]}
        packet = check_rewrite(make_packet(), ext_map)
        assert parse_rtp_py(packet)["ext_len"] % 4 == 0


@pytest.mark.parametrize("name", sorted(VALID_PACKETS))
@pytest.mark.parametrize("ensure_id", [7, 14, 100])
def test_rewrite_adds_a_transport_seq_element_where_the_packet_has_none(name, ensure_id):
    """A consumer's transport numbers its own packets; one from a producer that sends no
    transport-wide-cc element (aiortc, ffmpeg) gets a zeroed one, in either header form."""
    data = VALID_PACKETS[name]
    keep = {1: 1}  # the MID element, where there is one (and transport-cc, at 5 or 200, dropped)
    packet, described = rewrite_py(data, 1, 2, 3, 4, keep, ensure_ext_id=ensure_id)
    assert described == parse_rtp_py(packet)
    assert RtpPacket.parse(packet).payload == RtpPacket.parse(data).payload
    _, before = aiortc_extensions(data)
    _, after = aiortc_extensions(packet)
    assert after == [(1, v) for i, v in before if i == 1] + [(ensure_id, b"\0\0")]
    # and an element the producer sends under the consumer's ID is not doubled
    transport_cc = (TWO_BYTE_IDS if name == "two_byte_ids" else ONE_BYTE_IDS)[TRANSPORT_CC]
    if any(i == transport_cc for i, _ in before):
        packet, _ = rewrite_py(data, 1, 2, 3, 4, {transport_cc: ensure_id}, ensure_ext_id=ensure_id)
        assert aiortc_extensions(packet)[1] == [(ensure_id, (0xBEEF).to_bytes(2, "big"))]


def test_rewrite_respects_capacity():
    data = make_packet()
    packet, _ = rewrite_py(data, 1, 2, 3, 4, {1: 1}, capacity=2048)
    rewrite_py(data, 1, 2, 3, 4, {1: 1}, capacity=len(packet))
    with pytest.raises(ValueError, match="capacity"):
        rewrite_py(data, 1, 2, 3, 4, {1: 1}, capacity=len(packet) - 1)


@pytest.mark.parametrize("ids", [ONE_BYTE_IDS, TWO_BYTE_IDS])
def test_set_abs_send_time_and_transport_seq(ids):
    data = make_packet(ids=ids)
    abs_id, twcc_id = ids[ABS_SEND_TIME], ids[TRANSPORT_CC]
    data = set_abs_send_time_py(data, abs_id, 0xABCDEF)
    data = set_transport_seq_py(data, twcc_id, 0x0102)
    out = RtpPacket.parse(data, extensions_map(ids))
    assert out.extensions.abs_send_time == 0xABCDEF
    assert out.extensions.transport_sequence_number == 0x0102
    assert out.extensions.mid == "a"
    assert set_abs_send_time_py(data, 13, 1) is None
    # a 2-byte transport sequence number does not fit the 3-byte abs-send-time element
    assert set_transport_seq_py(data, abs_id, 1) is None


def test_extensions_in_a_rewritten_copy():
    packet, _ = rewrite_py(make_packet(), 1, 96, 2, 3, {3: 7, 5: 8})
    packet = set_transport_seq_py(set_abs_send_time_py(packet, 7, 0x010203), 8, 77)
    out = RtpPacket.parse(packet, extensions_map({ABS_SEND_TIME: 7, TRANSPORT_CC: 8}))
    assert (out.extensions.abs_send_time, out.extensions.transport_sequence_number) == (
        0x010203,
        77,
    )


def test_pack_header_extensions_agrees_on_form():
    # aiortc's own rule for the form (ids <= 14, lengths 1..16) is the one rewrite_rtp follows
    for elements in ([(1, b"x")], [(15, b"x")], [(1, b"x" * 17)], [(1, b"")]):
        profile, value = pack_header_extensions(elements)
        data = with_extension_block(profile, value)
        packet, _ = rewrite_py(data, 1, 2, 3, 4, {elements[0][0]: elements[0][0]})
        assert parse_rtp_py(packet)["ext_profile"] == profile


def test_seq_rewriter_continuity_across_wraparound():
    r = SequenceRewriter(first_out=65534)
    assert [r.out(s) for s in (1000, 1001, 1002, 1003)] == [65534, 65535, 0, 1]
    r = SequenceRewriter(first_out=100)
    assert [r.out(s) for s in (65534, 65535, 0, 1)] == [100, 101, 102, 103]
    assert r.last_out == 103


def test_seq_rewriter_reordering_and_duplicates():
    r = SequenceRewriter(first_out=10)
    assert r.out(500) == 10
    assert r.out(502) == 12
    assert r.out(501) == 11
    assert r.out(502) == 12
    assert r.last_out == 12


def test_seq_rewriter_sync_continues_and_drops_older():
    r = SequenceRewriter(first_out=65530)
    for s in range(7000, 7010):
        r.out(s)
    assert r.last_out == 65530 + 9 - 65536
    r.sync(40000)  # a layer switch: another stream's numbers
    assert r.out(40000) == 4
    assert r.out(39999) == -1
    assert r.out(39000) == -1
    assert r.out(40002) == 6
    assert r.out(40001) == 5
    r.sync(65535)
    assert [r.out(s) for s in (65535, 0, 1)] == [7, 8, 9]
    assert r.out(65534) == -1


def test_seq_rewriter_drops_packets_too_far_behind():
    r = SequenceRewriter()
    for s in range(0, 0x3000):
        r.out(s)
    assert r.out(0x3000 - 0x2000) == 0x1000
    assert r.out(0x3000 - 0x2000 - 2) == -1
    # input numbers wrap many times without losing the order
    for s in range(0x3000, 0x3000 + 3 * 65536, 7):
        assert r.out(s & 0xFFFF) == s & 0xFFFF


def test_seq_rewriter_drop_leaves_no_hole():
    """A skipped input (a temporal layer above the consumer's) shifts the later ones down; a lost
    input keeps its number, so the receiver still sees and NACKs the loss."""
    r = SequenceRewriter(first_out=65534)
    assert r.out(100) == 65534
    r.drop(101)
    r.drop(102)
    assert r.out(103) == 65535
    # 104 lost on the way in: its number stays reserved
    r.drop(105)
    assert r.out(106) == 1
    assert r.last_out == 1
    # late arrivals keep the number they would have had on time; a skipped one stays skipped
    assert r.out(104) == 0
    assert r.out(103) == 65535
    assert r.out(102) == -1
    r.drop(104)  # a late drop cannot shift what was numbered already: it stays a hole
    assert r.out(107) == 2


def test_seq_rewriter_input_of_inverts_out_across_drops():
    r = SequenceRewriter(first_out=10)
    forwarded, dropped = {}, 0
    for seq in range(65500, 65500 + 90):  # fewer drops than the log holds (64)
        seq &= 0xFFFF
        if seq % 4 in (1, 3) or seq % 7 == 0:
            r.drop(seq)
            dropped += 1
        elif seq % 11 != 0:  # lost on the way in: its number is a hole
            forwarded[r.out(seq)] = seq
    assert dropped < 64
    for out, seq in forwarded.items():
        assert r.input_of(out) == seq
    holes = set(range(10, r.last_out + 1)) - set(forwarded)
    assert holes and all(r.input_of(out) % 11 == 0 for out in holes)
    assert r.input_of(r.last_out + 1) == -1
    r.sync(3000)
    assert r.input_of(r.last_out) == -1, "nothing forwarded since the sync"


def test_seq_rewriter_forgets_inputs_older_than_its_drop_log():
    r = SequenceRewriter()
    for seq in range(0, 200, 2):
        r.out(seq)
        r.drop(seq + 1)
    # 100 drops, a log of 64: inputs before the oldest logged drop can no longer be numbered
    assert r.out(2) == -1 and r.input_of(1) == -1
    assert r.out(198) == 99 and r.input_of(99) == 198
    assert r.out(100) == 50 and r.input_of(50) == 100


def test_timestamp_rewriter():
    r = TimestampRewriter(first_out=1000)
    assert r.out(90_000) == 1000
    assert r.out(93_000) == 4000
    assert r.out(91_500) == 2500  # reordered: older timestamp, same offset
    assert r.last_out == 4000
    r.sync(5_000_000, 3000)
    assert r.out(5_000_000) == 7000
    assert r.out(5_003_000) == 10_000
    r.sync(0xFFFFFF00, 0x200)
    assert r.out(0xFFFFFF00) == 10_000 + 0x200
    assert r.out(0x00000100) == 10_000 + 0x200 + 0x200
    r = TimestampRewriter(first_out=0xFFFFFFFF)
    assert [r.out(t) for t in (10, 11, 12)] == [0xFFFFFFFF, 0, 1]
