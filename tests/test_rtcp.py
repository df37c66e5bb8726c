"""RTCP in the fast path: parsers, builders, relay rewrites and receive statistics,
checked against aiortc's serializer and parser and against hostile input."""

import random
import struct

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from fastpath.rtcp import (
    RECV_PACKET_COUNTED,
    RECV_PACKET_JUMP,
    RTCP_BYE,
    RTCP_ERR_CAPACITY,
    RTCP_ERR_FORMAT,
    RTCP_ERR_LENGTH,
    RTCP_ERR_PADDING,
    RTCP_ERR_TRUNCATED,
    RTCP_ERR_TYPE,
    RTCP_ERR_VERSION,
    RTCP_OK,
    RTCP_PSFB,
    RTCP_RR,
    RTCP_RTPFB,
    RTCP_RTT_UNKNOWN,
    RTCP_SDES,
    RTCP_SR,
    TWCC_LARGE_DELTA,
    TWCC_NOT_RECEIVED,
    TWCC_SMALL_DELTA,
)

from fastpath import rtcp

BLOCK_A = {
    "ssrc": 0x11223344,
    "fraction_lost": 12,
    "total_lost": 345,
    "highest_seq": 0x0001FFFE,
    "jitter": 77,
    "lsr": 0xAABBCCDD,
    "dlsr": 0x00010000,
}
BLOCK_B = {
    "ssrc": 0xDEADBEEF,
    "fraction_lost": 255,
    "total_lost": -3,
    "highest_seq": 5,
    "jitter": 0,
    "lsr": 0,
    "dlsr": 0,
}


def receiver_info(block):
    return RtcpReceiverInfo(
        ssrc=block["ssrc"],
        fraction_lost=block["fraction_lost"],
        packets_lost=block["total_lost"],
        highest_sequence=block["highest_seq"],
        jitter=block["jitter"],
        lsr=block["lsr"],
        dlsr=block["dlsr"],
    )


def block_of(info: RtcpReceiverInfo):
    return {
        "ssrc": info.ssrc,
        "fraction_lost": info.fraction_lost,
        "total_lost": info.packets_lost,
        "highest_seq": info.highest_sequence,
        "jitter": info.jitter,
        "lsr": info.lsr,
        "dlsr": info.dlsr,
    }


def parse_one(data):
    packets = rtcp.parse_compound(data)
    assert isinstance(packets, list), packets
    assert len(packets) == 1
    return packets[0]


# -- built by us, parsed by us ------------------------------------------------


def test_sender_report_round_trip():
    data = rtcp.build_compound(
        [("sr", 0x01020304, 0xE1234567, 0x80000000, 90000, 1000, 1200000, [BLOCK_A, BLOCK_B])]
    )
    assert len(data) == 28 + 2 * 24
    sr = parse_one(data)
    assert sr["packet_type"] == RTCP_SR
    assert sr["count"] == 2
    assert sr["length"] == len(data)
    assert sr["sender_ssrc"] == sr["ssrc"] == 0x01020304
    assert (sr["ntp_sec"], sr["ntp_frac"]) == (0xE1234567, 0x80000000)
    assert (sr["rtp_timestamp"], sr["packet_count"], sr["octet_count"]) == (90000, 1000, 1200000)
    assert sr["reports"] == [BLOCK_A, BLOCK_B]


def test_receiver_report_round_trip_with_zero_and_31_blocks():
    assert parse_one(rtcp.build_compound([("rr", 7, [])])) == {
        "packet_type": RTCP_RR,
        "count": 0,
        "offset": 0,
        "length": 8,
        "sender_ssrc": 7,
        "reports": [],
    }
    blocks = [dict(BLOCK_A, ssrc=i, total_lost=-i) for i in range(31)]
    rr = parse_one(rtcp.build_compound([("rr", 7, blocks)], capacity=2000))
    assert rr["reports"] == blocks
    assert rtcp.build_compound([("rr", 7, blocks + [BLOCK_A])], capacity=2000) == RTCP_ERR_CAPACITY


def test_total_lost_is_clamped_to_24_bit_signed():
    rr = parse_one(rtcp.build_compound([("rr", 1, [dict(BLOCK_A, total_lost=1 << 30)])]))
    assert rr["reports"][0]["total_lost"] == 0x7FFFFF
    rr = parse_one(rtcp.build_compound([("rr", 1, [dict(BLOCK_A, total_lost=-(1 << 30))])]))
    assert rr["reports"][0]["total_lost"] == -0x800000


def test_feedback_round_trips():
    data = rtcp.build_compound(
        [
            ("pli", 1, 2),
            ("fir", 3, 4, 9),
            ("nack", 5, 6, [1, 2, 3, 20, 40, 1000]),
            ("bye", [8, 9]),
            ("remb", 10, 1_500_000, [11, 12]),
        ]
    )
    pli, fir, nack, bye, remb = rtcp.parse_compound(data)
    assert (pli["packet_type"], pli["count"], pli["sender_ssrc"], pli["media_ssrc"]) == (
        RTCP_PSFB,
        1,
        1,
        2,
    )
    assert pli["fci"] == b""
    assert (fir["count"], fir["sender_ssrc"], fir["media_ssrc"], fir["fir"]) == (4, 3, 0, [(4, 9)])
    assert (nack["packet_type"], nack["count"], nack["sender_ssrc"], nack["media_ssrc"]) == (
        RTCP_RTPFB,
        1,
        5,
        6,
    )
    assert nack["lost"] == [1, 2, 3, 20, 40, 1000]
    assert bye["packet_type"] == RTCP_BYE and bye["ssrcs"] == [8, 9]
    assert (remb["sender_ssrc"], remb["media_ssrc"], remb["ssrcs"]) == (10, 0, [11, 12])
    assert remb["bitrate"] == 1_500_000 >> 3 << 3  # 18-bit mantissa, rounded down
    assert [p["offset"] for p in (pli, fir, nack, bye, remb)] == [0, 12, 32, 60, 72]


def test_nack_packing_of_the_reference_list():
    data = rtcp.build_compound([("nack", 1, 2, [1, 2, 3, 20, 40, 1000])])
    # pid 1 with blp bits for 2 and 3; then 20, 40, 1000 each alone
    assert data[12:] == struct.pack("!HHHHHHHH", 1, 0b11, 20, 0, 40, 0, 1000, 0)
    assert parse_one(data)["lost"] == [1, 2, 3, 20, 40, 1000]
    assert RtcpPacket.parse(data)[0].lost == [1, 2, 3, 20, 40, 1000]


def test_nack_packs_across_the_sequence_wrap_and_skips_duplicates():
    seqs = [65530, 65530, 65535, 0, 9, 10, 11]
    data = rtcp.build_compound([("nack", 1, 2, seqs)])
    # 65535, 0, 9 and 10 fit in the BLP of 65530; 11 is 17 after it
    assert data[12:] == struct.pack(
        "!HHHH", 65530, (1 << 4) | (1 << 5) | (1 << 14) | (1 << 15), 11, 0
    )
    assert parse_one(data)["lost"] == [65530, 65535, 0, 9, 10, 11]


def test_nack_of_nothing_and_of_a_full_packet():
    assert rtcp.build_compound([("nack", 1, 2, [])]) == RTCP_ERR_CAPACITY
    seqs = list(range(0, 17 * 200, 17))
    assert rtcp.build_compound([("nack", 1, 2, seqs)], capacity=100) == RTCP_ERR_CAPACITY
    assert parse_one(rtcp.build_compound([("nack", 1, 2, seqs)], capacity=2000))["lost"] == seqs


def test_remb_bitrates_and_saturation():
    for bitrate in (0, 1, 0x3FFFF, 0x40000, 2_500_000, 10**12, 2**63):
        remb = parse_one(rtcp.build_compound([("remb", 1, bitrate, [5])]))
        expected, _ = unpack_remb_fci(pack_remb_fci(bitrate, [5]))
        assert remb["bitrate"] == expected
        assert bitrate - remb["bitrate"] <= bitrate >> 17
    # exponent 63 with a full mantissa does not fit 64 bits
    fci = b"REMB" + bytes([0, 0xFF, 0xFF, 0xFF])
    packet = bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=fci))
    assert parse_one(packet)["bitrate"] == 2**64 - 1


def test_application_feedback_other_than_remb_is_not_read_as_remb():
    packet = bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=b"ABCD\x00\x00\x00\x00"))
    parsed = parse_one(packet)
    assert "bitrate" not in parsed
    assert parsed["fci"] == b"ABCD\x00\x00\x00\x00"


def test_remb_with_more_ssrcs_than_its_length_is_an_error():
    fci = pack_remb_fci(1000, [1, 2, 3])
    fci = fci[:4] + bytes([4]) + fci[5:]
    assert rtcp.parse_compound(bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=fci))) == (
        RTCP_ERR_LENGTH
    )


def test_bye_round_trip_and_limits():
    assert parse_one(rtcp.build_compound([("bye", [])]))["ssrcs"] == []
    ssrcs = list(range(100, 131))
    assert parse_one(rtcp.build_compound([("bye", ssrcs)]))["ssrcs"] == ssrcs
    assert rtcp.build_compound([("bye", ssrcs + [1])]) == RTCP_ERR_CAPACITY


# -- transport-wide congestion control feedback ----------------------------------


def twcc_by_hand():
    """base 100, 5 packets: received small 4, lost, large -8, small 255, small 0."""
    fci = struct.pack("!HH", 100, 5) + (-2 & 0xFFFFFF).to_bytes(3, "big") + bytes([7])
    # two-bit status vector: 01 00 10 01 01 (00 00)
    chunk = 0xC000 | (0b01 << 12) | (0b00 << 10) | (0b10 << 8) | (0b01 << 6) | (0b01 << 4)
    fci += struct.pack("!H", chunk)
    fci += bytes([4]) + struct.pack("!h", -8) + bytes([255, 0])
    fci += b"\x00" * (-len(fci) % 4)
    payload = struct.pack("!LL", 0xAAAA, 0xBBBB) + fci
    return struct.pack("!BBH", 0x80 | 15, 205, len(payload) // 4) + payload


def test_twcc_feedback_parsed_from_hand_built_bytes():
    fb = parse_one(twcc_by_hand())
    assert (fb["count"], fb["sender_ssrc"], fb["media_ssrc"]) == (15, 0xAAAA, 0xBBBB)
    assert (fb["base_seq"], fb["status_count"], fb["reference_time"], fb["fb_count"]) == (
        100,
        5,
        -2,
        7,
    )
    assert fb["packets"] == [
        (100, TWCC_SMALL_DELTA, 4),
        (101, TWCC_NOT_RECEIVED, 0),
        (102, TWCC_LARGE_DELTA, -8),
        (103, TWCC_SMALL_DELTA, 255),
        (104, TWCC_SMALL_DELTA, 0),
    ]


def test_twcc_run_length_and_one_bit_chunks_by_hand():
    # 20 received small (run length), then 14 one-bit symbols 1010..., status count 30
    chunks = struct.pack("!HH", (0b01 << 13) | 20, 0x8000 | 0b10101010101010)
    statuses = [1] * 20 + [1, 0] * 5
    deltas = bytes(range(1, sum(statuses) + 1))
    fci = struct.pack("!HH", 65530, 30) + b"\x00\x00\x01\x00" + chunks + deltas
    fci += b"\x00" * (-len(fci) % 4)
    payload = struct.pack("!LL", 1, 2) + fci
    packet = struct.pack("!BBH", 0x80 | 15, 205, len(payload) // 4) + payload
    fb = parse_one(packet)
    assert [p[0] for p in fb["packets"]] == [(65530 + i) & 0xFFFF for i in range(30)]
    assert [p[1] for p in fb["packets"]] == statuses
    received = [p[2] for p in fb["packets"] if p[1]]
    assert received == list(deltas)


def test_twcc_build_parse_round_trip():
    rng = random.Random(5)
    for _ in range(200):
        count = rng.randint(1, 300)
        packets = []
        for _ in range(count):
            kind = rng.random()
            if kind < 0.2:
                packets.append((TWCC_NOT_RECEIVED, 0))
            elif kind < 0.9:
                packets.append((TWCC_SMALL_DELTA, rng.randint(0, 255)))
            else:
                packets.append((TWCC_LARGE_DELTA, rng.choice([-1, 256, -32768, 32767])))
        if rng.random() < 0.3:  # long runs exercise run-length chunks
            packets = [packets[0]] * count
        base = rng.randint(0, 65535)
        data = rtcp.build_compound([("twcc", 1, 2, base, -5, 9, packets)], capacity=4000)
        assert isinstance(data, bytes) and len(data) % 4 == 0
        fb = parse_one(data)
        assert (fb["base_seq"], fb["status_count"], fb["reference_time"], fb["fb_count"]) == (
            base,
            count,
            -5,
            9,
        )
        assert [(p[1], p[2]) for p in fb["packets"]] == packets
        assert [p[0] for p in fb["packets"]] == [(base + i) & 0xFFFF for i in range(count)]


def test_twcc_delta_out_of_range_cannot_be_built():
    assert rtcp.build_compound([("twcc", 1, 2, 0, 0, 0, [(1, 40000)])]) == RTCP_ERR_CAPACITY
    assert rtcp.build_compound([("twcc", 1, 2, 0, 0, 0, [])]) == RTCP_ERR_CAPACITY


def test_twcc_reserved_symbol_and_missing_deltas_are_errors():
    packet = bytearray(twcc_by_hand())
    packet[20:22] = struct.pack("!H", (0b11 << 13) | 5)
    assert rtcp.parse_compound(bytes(packet)) == RTCP_ERR_FORMAT
    packet = bytearray(twcc_by_hand())
    packet[20:22] = struct.pack("!H", (0b10 << 13) | 5)  # 5 large deltas need 10 bytes
    assert rtcp.parse_compound(bytes(packet)) == RTCP_ERR_TRUNCATED


# -- serialized by aiortc, parsed by us ----------------------------------------------


def aiortc_packets():
    sr = RtcpSrPacket(
        ssrc=1234,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=(3900000000 << 32) | 0x12345678,
            rtp_timestamp=0xFFFFFFF0,
            packet_count=42,
            octet_count=4200,
        ),
        reports=[receiver_info(BLOCK_A), receiver_info(BLOCK_B)],
    )
    rr = RtcpRrPacket(ssrc=5678, reports=[receiver_info(BLOCK_B)])
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1234, items=[(1, b"cname@example")])])
    pli = RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2)
    remb = RtcpPsfbPacket(fmt=15, ssrc=3, media_ssrc=0, fci=pack_remb_fci(750_000, [4, 5]))
    nack = RtcpRtpfbPacket(fmt=1, ssrc=6, media_ssrc=7, lost=[100, 101, 116, 117, 300])
    bye = RtcpByePacket(sources=[8, 9, 10])
    return [sr, rr, sdes, pli, remb, nack, bye]


def test_parse_aiortc_compound_checks_every_field():
    sr, rr, sdes, pli, remb, nack, bye = aiortc_packets()
    data = b"".join(bytes(p) for p in aiortc_packets())
    parsed = rtcp.parse_compound(data)
    assert [p["packet_type"] for p in parsed] == [
        RTCP_SR,
        RTCP_RR,
        RTCP_SDES,
        RTCP_PSFB,
        RTCP_PSFB,
        RTCP_RTPFB,
        RTCP_BYE,
    ]
    offsets = [0]
    for p in aiortc_packets():
        offsets.append(offsets[-1] + len(bytes(p)))
    assert [p["offset"] for p in parsed] == offsets[:-1]
    assert [p["length"] for p in parsed] == [len(bytes(p)) for p in aiortc_packets()]

    p_sr, p_rr, p_sdes, p_pli, p_remb, p_nack, p_bye = parsed
    assert p_sr["ssrc"] == p_sr["sender_ssrc"] == 1234
    assert (p_sr["ntp_sec"] << 32) | p_sr["ntp_frac"] == sr.sender_info.ntp_timestamp
    assert p_sr["rtp_timestamp"] == sr.sender_info.rtp_timestamp
    assert (p_sr["packet_count"], p_sr["octet_count"]) == (42, 4200)
    assert p_sr["reports"] == [block_of(r) for r in sr.reports]
    assert p_rr["sender_ssrc"] == 5678 and p_rr["reports"] == [BLOCK_B]
    assert p_sdes["sender_ssrc"] == 1234 and p_sdes["count"] == 1
    assert (p_pli["count"], p_pli["sender_ssrc"], p_pli["media_ssrc"]) == (1, 1, 2)
    assert (p_remb["count"], p_remb["sender_ssrc"]) == (15, 3)
    assert (p_remb["bitrate"], p_remb["ssrcs"]) == unpack_remb_fci(remb.fci)
    assert (p_nack["sender_ssrc"], p_nack["media_ssrc"]) == (6, 7)
    assert p_nack["lost"] == nack.lost
    assert p_bye["ssrcs"] == [8, 9, 10]


def test_aiortc_fir_is_parsed():
    fci = struct.pack("!LB3x", 0xCAFE, 200) + struct.pack("!LB3x", 0xBEEF, 1)
    fir = parse_one(bytes(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=fci)))
    assert fir["fir"] == [(0xCAFE, 200), (0xBEEF, 1)]


# -- built by us, parsed by aiortc -----------------------------------------------------


def test_aiortc_parses_what_we_build():
    data = rtcp.build_compound(
        [
            ("sr", 99, 0xE0000000, 0x40000000, 123456, 10, 12000, [BLOCK_A]),
            ("rr", 98, [BLOCK_A, BLOCK_B]),
            ("pli", 97, 96),
            ("fir", 95, 94, 17),
            ("nack", 93, 92, [5, 6, 7, 30]),
            ("remb", 91, 3_000_000, [90, 89]),
            ("bye", [88]),
        ]
    )
    sr, rr, pli, fir, nack, remb, bye = RtcpPacket.parse(data)
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == 99
    assert sr.sender_info.ntp_timestamp == (0xE0000000 << 32) | 0x40000000
    assert (sr.sender_info.rtp_timestamp, sr.sender_info.packet_count) == (123456, 10)
    assert sr.sender_info.octet_count == 12000
    assert [block_of(r) for r in sr.reports] == [BLOCK_A]
    assert isinstance(rr, RtcpRrPacket) and rr.ssrc == 98
    assert [block_of(r) for r in rr.reports] == [BLOCK_A, BLOCK_B]
    assert (pli.fmt, pli.ssrc, pli.media_ssrc, pli.fci) == (1, 97, 96, b"")
    assert (fir.fmt, fir.ssrc, fir.media_ssrc) == (4, 95, 0)
    assert fir.fci == struct.pack("!LB3x", 94, 17)
    assert (nack.fmt, nack.ssrc, nack.media_ssrc, nack.lost) == (1, 93, 92, [5, 6, 7, 30])
    assert (remb.fmt, remb.ssrc, remb.media_ssrc) == (15, 91, 0)
    assert unpack_remb_fci(remb.fci) == (3_000_000, [90, 89])
    assert isinstance(bye, RtcpByePacket) and bye.sources == [88]


def test_builders_fail_cleanly_below_their_size():
    specs = [
        ("sr", 1, 2, 3, 4, 5, 6, [BLOCK_A]),
        ("rr", 1, [BLOCK_A]),
        ("pli", 1, 2),
        ("fir", 1, 2, 3),
        ("nack", 1, 2, [1, 50]),
        ("bye", [1, 2]),
        ("remb", 1, 1000, [2]),
        ("twcc", 1, 2, 3, 4, 5, [(1, 1), (0, 0), (1, 300)]),
    ]
    for spec in specs:
        full = rtcp.build_compound([spec])
        assert isinstance(full, bytes) and len(full) % 4 == 0
        assert rtcp.build_compound([spec], capacity=len(full)) == full
        for capacity in range(len(full)):
            assert rtcp.build_compound([spec], capacity=capacity) == RTCP_ERR_CAPACITY
    compound = rtcp.build_compound(specs, capacity=4000)
    assert rtcp.build_compound(specs, capacity=len(compound)) == compound
    assert rtcp.build_compound(specs, capacity=len(compound) - 1) == RTCP_ERR_CAPACITY


# -- relaying feedback --------------------------------------------------------------------


def test_rewrite_pli_nack_and_fir_for_the_producer():
    data = bytearray(
        rtcp.build_compound(
            [
                ("rr", 1, []),
                ("pli", 1, 2),
                ("nack", 1, 2, [7, 8]),
                ("fir", 1, 2, 5),
                ("remb", 1, 9, [2]),
            ]
        )
    )
    for index in (1, 2, 3):
        assert rtcp.rewrite_media_ssrc(data, index, 0x5E5E, 0xFEED) == RTCP_OK
    assert rtcp.rewrite_media_ssrc(data, 0, 0x5E5E, 0xFEED) == RTCP_ERR_TYPE
    assert rtcp.rewrite_media_ssrc(data, 4, 0x5E5E, 0xFEED) == RTCP_ERR_TYPE
    _, pli, nack, fir, remb = rtcp.parse_compound(bytes(data))
    assert (pli["sender_ssrc"], pli["media_ssrc"]) == (0x5E5E, 0xFEED)
    assert (nack["sender_ssrc"], nack["media_ssrc"], nack["lost"]) == (0x5E5E, 0xFEED, [7, 8])
    assert (fir["sender_ssrc"], fir["media_ssrc"], fir["fir"]) == (0x5E5E, 0, [(0xFEED, 5)])
    assert (remb["sender_ssrc"], remb["ssrcs"]) == (1, [2])


def test_rewrite_fir_with_a_filled_media_ssrc_and_several_entries():
    fci = struct.pack("!LB3x", 3, 1) + struct.pack("!LB3x", 4, 2)
    data = bytearray(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=3, fci=fci).__bytes__())
    assert rtcp.rewrite_media_ssrc(data, 0, 10, 20) == RTCP_OK
    fir = parse_one(bytes(data))
    assert (fir["sender_ssrc"], fir["media_ssrc"], fir["fir"]) == (10, 20, [(20, 1), (20, 2)])


# -- hostile input ---------------------------------------------------------------------------


def valid_samples():
    samples = [b"".join(bytes(p) for p in aiortc_packets()), twcc_by_hand()]
    samples += [bytes(p) for p in aiortc_packets()]
    samples.append(
        rtcp.build_compound(
            [
                ("sr", 1, 2, 3, 4, 5, 6, [BLOCK_A]),
                ("fir", 1, 2, 3),
                ("twcc", 1, 2, 3, 4, 5, [(1, 1), (0, 0), (1, -300)] * 9),
            ]
        )
    )
    return samples


def test_every_truncation_is_an_error_or_a_shorter_compound():
    for data in valid_samples():
        full = rtcp.parse_compound(data)
        assert isinstance(full, list)
        ends = {p["offset"] + p["length"] for p in full}
        for cut in range(len(data)):
            result = rtcp.parse_compound(data[:cut])
            if cut in ends or cut == 0:
                assert result == [p for p in full if p["offset"] + p["length"] <= cut]
            else:
                assert result in (RTCP_ERR_TRUNCATED, RTCP_ERR_LENGTH), (cut, result)


def test_every_byte_corruption_is_survived():
    rng = random.Random(1)
    for data in valid_samples():
        for i in range(len(data)):
            for value in (0x00, 0xFF, data[i] ^ 0x80, data[i] ^ 0x01, rng.randrange(256)):
                corrupted = bytearray(data)
                corrupted[i] = value
                result = rtcp.parse_compound(bytes(corrupted))
                assert isinstance(result, list) or result < 0


def test_header_corruptions_have_their_codes():
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
    assert rtcp.parse_compound(b"\x40" + pli[1:]) == RTCP_ERR_VERSION
    assert rtcp.parse_compound(pli[:2] + b"\x00\x03" + pli[4:]) == RTCP_ERR_LENGTH
    assert rtcp.parse_compound(pli[:2] + b"\x00\x01" + pli[4:8]) == RTCP_ERR_LENGTH  # 8 < 12
    padded = bytes([pli[0] | 0x20]) + pli[1:3] + b"\x03" + pli[4:] + b"\x00\x00\x00\x00"
    assert rtcp.parse_compound(padded) == RTCP_ERR_PADDING
    padded = padded[:-1] + b"\x04"
    assert rtcp.parse_compound(padded)[0]["media_ssrc"] == 2
    assert rtcp.parse_compound(pli + b"\x80") == RTCP_ERR_TRUNCATED
    sr = rtcp.build_compound([("sr", 1, 2, 3, 4, 5, 6, [BLOCK_A])])
    assert rtcp.parse_compound(bytes([0x82]) + sr[1:]) == RTCP_ERR_LENGTH  # 2 blocks claimed
    assert rtcp.parse_compound(b"") == []


def test_random_inputs_never_crash():
    rng = random.Random(2024)
    samples = valid_samples()
    for i in range(10_000):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 120))
        else:
            # a valid-looking header over random content reaches the type parsers
            body = rng.randbytes(4 * rng.randint(0, 40))
            header = struct.pack(
                "!BBH",
                0x80 | rng.choice([0, 0x20]) | rng.randint(0, 31),
                rng.choice([200, 201, 202, 203, 204, 205, 206, 207, rng.randint(0, 255)]),
                len(body) // 4,
            )
            data = header + body
            if i % 4 == 0:
                data = rng.choice(samples) + data
        result = rtcp.parse_compound(data)
        assert isinstance(result, list) or result < 0


# -- clocks, round trips and receive statistics -------------------------------------------------


def test_ntp_conversions():
    assert rtcp.ntp_timestamp(0, 0) == 2208988800 << 32
    assert rtcp.ntp_timestamp(1, 500_000_000) == ((2208988801 << 32) | 0x80000000)
    assert rtcp.compact_ntp(0x1122334455667788) == 0x33445566
    import time

    now = rtcp.ntp_timestamp()
    assert abs((now >> 32) - (int(time.time()) + 2208988800) % 2**32) <= 1


def test_round_trip_time_from_lsr_and_dlsr():
    # SR sent at 10.0 s, held 0.25 s by the peer, report back at 10.5 s: RTT 0.25 s
    lsr = 10 << 16
    dlsr = 1 << 14
    assert rtcp.round_trip_time((10 << 16) + (1 << 15), lsr, dlsr) == 1 << 14
    assert rtcp.round_trip_time(12345, 0, 0) == RTCP_RTT_UNKNOWN
    assert rtcp.round_trip_time(lsr + 10, lsr, 20) == 0  # peer clock skew
    assert rtcp.round_trip_time(5, 0xFFFFFFF0, 1) == 20  # compact NTP wraps


def feed(stats, seqs, ts_step=3000, transit=1000):
    for seq in seqs:
        assert stats.update(seq, seq * ts_step, seq * ts_step + transit) == RECV_PACKET_COUNTED


def test_receive_stats_with_loss_reordering_and_wrap():
    stats = rtcp.ReceiveStats(0x1234)
    # 65532, 2 and 9 lost; 65534 and 65535 swapped; the wrap between them and 0
    feed(stats, [65530, 65531, 65533, 65535, 65534, 0, 1, 3, 4, 5, 6, 7, 8, 10])
    block = stats.report_block()
    assert block["ssrc"] == 0x1234
    assert block["highest_seq"] == 65536 + 10
    assert block["total_lost"] == 3  # expected 17, received 14
    assert block["fraction_lost"] == (3 << 8) // 17
    assert block["jitter"] == 0

    # 15 lost; 17 late; 2 arrives very late and makes up for one earlier loss
    feed(stats, [11, 12, 13, 14, 16, 18, 17, 19, 20, 2])
    block = stats.report_block()
    assert block["highest_seq"] == 65536 + 20
    assert block["total_lost"] == 3  # 65532, 9, 15
    assert block["fraction_lost"] == 0  # 10 expected, 10 received in this interval

    feed(stats, [21, 25])
    block = stats.report_block()
    assert (block["total_lost"], block["fraction_lost"]) == (6, (3 << 8) // 5)

    assert stats.report_block()["fraction_lost"] == 0  # nothing new


def test_receive_stats_duplicates_make_loss_negative():
    stats = rtcp.ReceiveStats(1)
    feed(stats, [100, 101, 101, 102, 102])
    assert stats.report_block()["total_lost"] == -2


def test_receive_stats_resync_after_a_source_restart():
    stats = rtcp.ReceiveStats(1)
    feed(stats, [100, 101, 102])
    assert stats.update(30000, 0, 0) == RECV_PACKET_JUMP
    assert stats.received == 3
    assert stats.update(30001, 3000, 3000) == RECV_PACKET_COUNTED
    feed(stats, [30002, 30004])
    block = stats.report_block()
    assert block["highest_seq"] == 30004
    assert block["total_lost"] == 1  # 30003; counting restarted at 30001
    # one stray packet far away does not restart
    assert stats.update(5000, 0, 0) == RECV_PACKET_JUMP
    assert stats.update(30005, 30005 * 3000, 30005 * 3000 + 1000) == RECV_PACKET_COUNTED
    assert stats.report_block()["highest_seq"] == 30005


def test_receive_stats_jitter_follows_rfc3550_a8():
    stats = rtcp.ReceiveStats(1)
    # transit alternates between 1000 and 1400 clock units: |D| = 400 each time
    for seq in range(2000):
        stats.update(seq, seq * 3000, seq * 3000 + 1000 + (400 if seq % 2 else 0))
    assert abs(stats.report_block()["jitter"] - 400) <= 1
    # a timestamp jump is not jitter
    stats.update(2000, 2000 * 3000 + 10_000_000, 2000 * 3000 + 1000)
    assert abs(stats.report_block()["jitter"] - 400) <= 1


def test_receive_stats_lsr_and_dlsr():
    stats = rtcp.ReceiveStats(1)
    feed(stats, [1])
    assert (stats.report_block()["lsr"], stats.report_block()["dlsr"]) == (0, 0)
    stats.on_sender_report(0x00050000, 0x00100000)
    block = stats.report_block(now_compact=0x00108000)
    assert (block["lsr"], block["dlsr"]) == (0x00050000, 0x8000)


@pytest.mark.parametrize("count", [0, 1, 31])
def test_report_block_from_stats_round_trips_through_aiortc(count):
    blocks = []
    for i in range(count):
        stats = rtcp.ReceiveStats(i)
        feed(stats, [1, 2, 4, 5])
        blocks.append(stats.report_block())
    rr = RtcpPacket.parse(rtcp.build_compound([("rr", 42, blocks)], capacity=1000))[0]
    assert [block_of(r) for r in rr.reports] == blocks
