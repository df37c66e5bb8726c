"""The receive side of congestion control: transport-cc feedback and the REMB estimate for publishers.

Feedback packets are read back with a decoder written here from the draft
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1), not with the
project's own parser, so a symmetric mistake in both would still be caught.
"""

from __future__ import annotations

import struct

import pytest
from fastpath.congestion import ArrivalRecorder, IncomingEstimator

MS = 1_000_000
SECOND = 1_000_000_000
START = 1000 * SECOND


def decode_transport_cc(packet: bytes) -> dict:
    """A transport-cc feedback: header fields and (seq, arrival in us or None) per packet."""
    assert packet[0] >> 6 == 2 and packet[0] & 0x1F == 15 and packet[1] == 205
    length = (struct.unpack_from("!H", packet, 2)[0] + 1) * 4
    assert length == len(packet) and length % 4 == 0
    sender, media, base, count = struct.unpack_from("!IIHH", packet, 4)
    reference = int.from_bytes(packet[16:19], "big", signed=True)
    fb_count = packet[19]
    pos, symbols = 20, []
    while len(symbols) < count:
        (chunk,) = struct.unpack_from("!H", packet, pos)
        pos += 2
        if not chunk & 0x8000:
            symbols += [(chunk >> 13) & 3] * (chunk & 0x1FFF)
        elif not chunk & 0x4000:
            symbols += [(chunk >> (13 - i)) & 1 for i in range(14)]
        else:
            symbols += [(chunk >> (12 - 2 * i)) & 3 for i in range(7)]
    symbols = symbols[:count]
    arrivals, time_us = [], reference * 64_000
    for k, symbol in enumerate(symbols):
        seq = (base + k) & 0xFFFF
        if symbol == 0:
            arrivals.append((seq, None))
            continue
        if symbol == 1:
            delta = packet[pos]
            pos += 1
        else:
            assert symbol == 2
            (delta,) = struct.unpack_from("!h", packet, pos)
            pos += 2
        time_us += delta * 250
        arrivals.append((seq, time_us))
    assert len(packet) - pos < 4, "only padding may follow the deltas"
    return {"sender": sender, "media": media, "base": base, "count": count, "fb_count": fb_count,
            "arrivals": arrivals}


def all_feedback(recorder: ArrivalRecorder, now_ns: int) -> list[dict]:
    out = []
    while (packet := recorder.build_feedback(0xABCD, now_ns)) is not None:
        out.append(decode_transport_cc(packet))
    return out


def test_arrival_times_survive_the_round_trip_across_the_sequence_wrap():
    rec = ArrivalRecorder()
    truth = {}
    for k in range(12):
        seq = (65530 + k) & 0xFFFF
        now = START + k * 1_300_000 + (k % 3) * 70_000
        rec.record(seq, 0x1234, now)
        truth[seq] = now // 1000
    [fb] = all_feedback(rec, START + 20 * MS)
    assert (fb["sender"], fb["media"], fb["base"], fb["count"], fb["fb_count"]) == (0xABCD, 0x1234, 65530, 12, 0)
    for seq, arrival_us in fb["arrivals"]:
        # rounding to 250 us never accumulates: each delta is from the time the receiver rebuilt
        assert abs(arrival_us - truth[seq]) <= 125
    assert rec.build_feedback(0xABCD, START + 30 * MS) is None


def test_missing_numbers_are_reported_lost_and_not_again():
    rec = ArrivalRecorder()
    for seq in range(20):
        if seq not in (5, 6, 7):
            rec.record(seq, 1, START + seq * MS)
    [fb] = all_feedback(rec, START + 30 * MS)
    lost = [seq for seq, arrival in fb["arrivals"] if arrival is None]
    assert lost == [5, 6, 7]
    rec.record(6, 1, START + 40 * MS)   # too late: already reported
    assert rec.late_packets == 1
    rec.record(20, 1, START + 41 * MS)
    [fb] = all_feedback(rec, START + 50 * MS)
    assert fb["base"] == 20 and fb["count"] == 1 and fb["fb_count"] == 1


def test_reordered_and_slow_packets_take_large_deltas():
    rec = ArrivalRecorder()
    rec.record(0, 1, START)
    rec.record(2, 1, START + 1 * MS)
    rec.record(1, 1, START + 2 * MS)     # overtaken by 2: listed in number order, 2's delta is negative
    rec.record(3, 1, START + 300 * MS)   # 298 ms later: more than a small delta's 63.75 ms
    [fb] = all_feedback(rec, START + 301 * MS)
    times = dict(fb["arrivals"])
    assert times[1] - times[2] == pytest.approx(1000, abs=125)
    assert times[3] - times[0] == pytest.approx(300_000, abs=250)


def test_a_delta_beyond_sixteen_bits_starts_a_new_feedback():
    rec = ArrivalRecorder()
    rec.record(0, 1, START)
    rec.record(1, 1, START + 10 * SECOND)   # 40,000 ticks do not fit a 16-bit delta
    first, second = all_feedback(rec, START + 10 * SECOND)
    assert (first["base"], first["count"]) == (0, 1)
    assert (second["base"], second["count"]) == (1, 1)
    assert second["fb_count"] == first["fb_count"] + 1


def test_many_packets_split_into_feedbacks_that_cover_each_number_once():
    rec = ArrivalRecorder()
    for seq in range(1000):
        rec.record(seq, 7, START + seq * 100_000)
    feedbacks = all_feedback(rec, START + SECOND)
    seqs = [seq for fb in feedbacks for seq, _ in fb["arrivals"]]
    assert seqs == list(range(1000))
    assert [fb["fb_count"] for fb in feedbacks] == list(range(len(feedbacks)))
    assert all(arrival is not None for fb in feedbacks for _, arrival in fb["arrivals"])


def test_a_jump_past_the_window_reports_what_it_can():
    rec = ArrivalRecorder()
    rec.record(0, 1, START)
    rec.record(5000, 1, START + MS)
    feedbacks = all_feedback(rec, START + 2 * MS)
    arrivals = [a for fb in feedbacks for a in fb["arrivals"]]
    assert arrivals[-1][0] == 5000 and arrivals[-1][1] is not None
    assert len(arrivals) <= 1024


def test_feedback_is_due_every_hundred_ms_or_after_a_burst():
    rec = ArrivalRecorder()
    assert not rec.due(START)
    rec.record(0, 1, START)
    assert not rec.due(START + 50 * MS)
    assert rec.due(START + 100 * MS)
    all_feedback(rec, START + 100 * MS)
    for seq in range(1, 100):
        rec.record(seq, 1, START + 101 * MS)
        assert not rec.due(START + 101 * MS)
    rec.record(100, 1, START + 101 * MS)
    assert rec.due(START + 101 * MS), "100 packets waiting: report at once"


def test_remb_estimate_follows_rate_and_loss():
    est = IncomingEstimator()
    est.update(0, 0.0, START)
    # 1 Mbit/s arriving, no loss: start at 1.5x what arrives
    assert est.update(125_000, 0.0, START + SECOND) == 1_500_000
    # no loss: +8 % a second, but never past 1.5x the incoming rate
    assert est.update(250_000, 0.0, START + 2 * SECOND) == 1_500_000
    assert est.update(437_500, 0.0, START + 3 * SECOND) == 1_620_000
    # 20 % loss: down to what arrived x (1 - 0.2 / 2)
    assert est.update(562_500, 0.2, START + 4 * SECOND) == 900_000
    # 5 % loss: hold
    assert est.update(675_000, 0.05, START + 5 * SECOND) == 900_000


def test_remb_estimate_respects_the_ceiling_and_the_floor():
    est = IncomingEstimator(max_bps=400_000)
    est.update(0, 0.0, START)
    assert est.update(250_000, 0.0, START + SECOND) == 400_000
    assert est.update(250_000, 0.9, START + 2 * SECOND) == 30_000
