"""The estimate stage: GCC's rules on a simulated path, and layer choice through a real Forwarder."""

from __future__ import annotations

import math
import time

import pytest
from aiortc.rtp import RtcpPsfbPacket, RtpPacket, pack_remb_fci
from fastpath.bwe import BandwidthEstimator
from fastpath.codecs import CODEC_VP8
from fastpath.probe import ProbeSchedule
from fastpath.rtcp import build_compound

from tests import test_forwarder
from tests.test_forwarder import Peer, connect, rtp, vp8

forwarder = test_forwarder.forwarder  # the same fixture: a Forwarder on a loopback socket

SECOND = 1_000_000_000
PACKET = 1200


def simulate(est: BandwidthEstimator, send_bps: float, link_bps: float, seconds: float, *,
             start_ns: int = SECOND, burst: int = 1, loss_every: int = 0) -> int:
    """Send PACKET-byte packets at send_bps (in bursts) through a FIFO link of link_bps, and feed
    the estimator transport-cc feedback every 100 ms of what arrived. Returns the end time."""
    interval_ns = burst * PACKET * 8 / send_bps * SECOND
    service_ns = PACKET * 8 / link_bps * SECOND
    link_free, arrivals, seq, t = 0.0, [], 0, start_ns
    end = start_ns + seconds * SECOND
    next_feedback = start_ns + SECOND / 10
    while t < end:
        for _ in range(burst):
            est.on_sent(seq & 0xFFFF, PACKET, int(t))
            arrival = max(t, link_free) + service_ns
            link_free = arrival
            lost = loss_every and seq % loss_every == 0
            arrivals.append((seq & 0xFFFF, None if lost else arrival))
            seq += 1
        t += interval_ns
        while next_feedback <= t:
            arrived = [(s, a) for s, a in arrivals if a is None or a <= next_feedback]
            arrivals = [(s, a) for s, a in arrivals if not (a is None or a <= next_feedback)]
            if arrived:
                feed(est, arrived, int(next_feedback), send_bps)
            next_feedback += SECOND / 10
    return int(t)


def twcc_deltas(arrivals: list[tuple[int, float | None]]) -> tuple[int, list[tuple[int, bool, int]]]:
    """transport-cc's encoding of (seq, arrival ns or None: lost): a 64 ms reference time, and per
    packet whether it arrived and its arrival delta in 250 us from the previous arrival."""
    times = [a for _, a in arrivals if a is not None]
    reference = int(min(times) // 64_000_000) if times else 0
    previous, packets = reference * 64_000_000, []
    for seq, arrival in arrivals:
        if arrival is None:
            packets.append((seq, False, 0))
            continue
        delta = round((arrival - previous) / 250_000)
        previous += delta * 250_000
        packets.append((seq, True, delta))
    return reference, packets


def feed(est: BandwidthEstimator, arrived: list, now_ns: int, sending_bps: float) -> None:
    """One transport-cc feedback for (seq, arrival), straight into the estimator."""
    reference, packets = twcc_deltas(arrived)
    est.on_feedback(packets, reference, now_ns, sending_bps)


def test_a_path_with_room_sets_no_limit():
    est = BandwidthEstimator()
    simulate(est, 1_000_000, 10_000_000, 3)
    assert est.available == 0 and est.decreases == 0
    assert est.acked_bps == pytest.approx(1_000_000, rel=0.1)


def test_a_standing_queue_brings_the_estimate_under_the_link():
    est = BandwidthEstimator()
    simulate(est, 1_000_000, 600_000, 3)
    assert est.decreases >= 1
    assert 300_000 <= est.available <= 600_000


def test_a_key_frame_burst_over_a_slow_link_is_not_congestion():
    # 10 packets back to back twice a second over 1 Mbit/s: each burst queues ~90 ms, then drains
    est = BandwidthEstimator()
    simulate(est, 192_000, 1_000_000, 4, burst=10)
    assert est.available == 0 and est.decreases == 0


def test_transport_cc_loss_above_ten_percent_cuts_the_estimate():
    est = BandwidthEstimator()
    simulate(est, 1_000_000, 10_000_000, 2, loss_every=4)
    # GCC: estimate x (1 - loss / 2), first from the acknowledged rate (75 % of 1 Mbit/s here), then
    # again at most every 300 ms while the loss lasts
    assert 3 <= est.decreases <= 7
    assert 750_000 * 0.875 ** 7 <= est.available <= 750_000 * 0.875


def test_feedback_reporting_only_losses_counts_them():
    """A path that delivers nothing: feedback with every packet lost still cuts the estimate."""
    est = BandwidthEstimator()
    for seq in range(40):
        est.on_sent(seq, PACKET, SECOND + seq * 1_000_000)
    est.on_feedback([(seq, False, 0) for seq in range(40)], 0, 2 * SECOND, 1_000_000)
    assert est.decreases == 1 and est.available == 500_000


def test_loss_rules_hold_then_grow_eight_percent_a_second():
    est = BandwidthEstimator(transport_cc=False)
    est.on_loss(0.0, 1_000_000, SECOND)
    assert est.available == 0, "no loss: nothing to limit"
    est.on_loss(0.2, 1_000_000, 2 * SECOND)
    assert est.available == 900_000
    est.on_loss(0.0, 900_000, 2 * SECOND + SECOND // 2)
    assert est.available == 900_000, "no increase within a second of a decrease"
    est.on_loss(0.0, 900_000, 3 * SECOND + SECOND // 2)
    assert est.available == pytest.approx(900_000 * 1.08, rel=0.001)
    est.on_loss(0.05, 900_000, 4 * SECOND)
    assert est.available == pytest.approx(900_000 * 1.08, rel=0.001), "2-10 % loss: hold"


def test_remb_below_what_we_send_is_a_limit_above_it_lets_the_estimate_grow():
    est = BandwidthEstimator(transport_cc=False)
    est.on_remb(5_000_000, 800_000, SECOND)
    assert est.available == 0
    est.on_remb(300_000, 800_000, 2 * SECOND)
    assert est.available == 300_000
    est.on_remb(2_000_000, 300_000, 4 * SECOND)
    assert est.available == pytest.approx(300_000 * 1.08, rel=0.001)


class Path:
    """A FIFO link of link_bps that keeps its queue and numbering from one run() to the next, with
    transport-cc feedback every 100 ms of what arrived by then."""

    def __init__(self, est: BandwidthEstimator, link_bps: float, start_ns: int = SECOND):
        self.est, self.link_bps = est, link_bps
        self.t, self.seq, self.link_free, self.arrivals = float(start_ns), 0, 0.0, []
        self.next_feedback = start_ns + SECOND / 10

    def run(self, send_bps: float, seconds: float, on_feedback=None) -> None:
        end, interval = self.t + seconds * SECOND, PACKET * 8 / send_bps * SECOND
        while self.t < end:
            self.est.on_sent(self.seq & 0xFFFF, PACKET, int(self.t))
            self.link_free = max(self.t, self.link_free) + PACKET * 8 / self.link_bps * SECOND
            self.arrivals.append((self.seq & 0xFFFF, self.link_free))
            self.seq += 1
            self.t += interval
            while self.next_feedback <= self.t:
                arrived = [(s, a) for s, a in self.arrivals if a <= self.next_feedback]
                self.arrivals = self.arrivals[len(arrived):]
                if arrived:
                    feed(self.est, arrived, int(self.next_feedback), send_bps)
                    if on_feedback is not None:
                        on_feedback()
                self.next_feedback += SECOND / 10

    @property
    def now(self) -> int:
        return int(self.t)


def limited_at(link_bps: float, media_bps: float) -> tuple[BandwidthEstimator, Path]:
    """An estimate that a standing queue limited, then media_bps long enough for the queue to drain
    and the hold to pass: a transport-cc transport's state when a probe may start."""
    est = BandwidthEstimator()
    est.growth_capped = True
    path = Path(est, link_bps)
    path.run(link_bps * 1.6, 1.5)
    assert est.decreases >= 1
    path.run(media_bps, 6)
    assert est.may_probe(path.now)
    return est, path


def test_a_probe_acknowledged_without_a_queue_raises_the_estimate_to_its_rate():
    est, path = limited_at(600_000, 300_000)
    path.link_bps = 5_000_000  # the path recovered
    before, decreases = est.available, est.decreases
    assert before < 700_000
    est.probe_begin(1_000_000, path.now)
    path.run(1_000_000, 0.4)
    est.probe_end_sending(path.now)
    assert est.probe_phase == "waiting"
    path.run(300_000, 0.3)
    assert est.take_probe_result() == 1
    send_bps, receive_bps = est.probe_rates
    assert send_bps == pytest.approx(1_000_000, rel=0.05) and receive_bps == pytest.approx(1_000_000, rel=0.05)
    assert est.available == min(send_bps, receive_bps) and est.decreases == decreases


def test_a_probe_into_a_slow_link_fails_at_its_first_queue_and_changes_nothing():
    est, path = limited_at(600_000, 300_000)
    before, decreases = est.available, est.decreases
    est.probe_begin(2 * before, path.now)
    failed_after = []
    started = path.now
    path.run(2 * before, 0.4, lambda: failed_after.append(path.now - started)
             if est.probe_phase == "idle" and not failed_after else None)
    assert failed_after and failed_after[0] <= 300_000_000, "stopped at the first feedback with a queue"
    assert est.take_probe_result() == -1
    est.probe_end_sending(path.now)  # what the prober does at the probe's end: nothing more to judge
    assert est.take_probe_result() == 0
    # the queue the probe built drains: no decrease for it, no increase from it
    path.run(300_000, 1.0)
    assert est.available == before and est.decreases == decreases


def test_a_probe_that_fell_short_of_its_target_proves_nothing():
    """Its packets were acknowledged without a queue, but it sent well under its target (pacing
    starved, the worker stalled): no increase, a failure like any other."""
    est, path = limited_at(600_000, 300_000)
    path.link_bps = 5_000_000
    before = est.available
    est.probe_begin(2 * before, path.now)
    path.run(1.3 * before, 0.4)
    est.probe_end_sending(path.now)
    path.run(300_000, 0.3)
    assert est.take_probe_result() == -1
    assert est.probe_rates[0] == pytest.approx(1.3 * before, rel=0.05)
    assert est.available == before


def test_growth_on_a_transport_that_probes_stops_at_one_and_a_half_times_the_acknowledged_rate():
    est, path = limited_at(600_000, 400_000)
    path.link_bps = 10_000_000
    start = est.available
    path.run(400_000, 20)  # 8 % a second for 20 s would be 4.7x
    assert est.acked_bps == pytest.approx(400_000, rel=0.1)
    assert est.available <= max(start, 1.5 * 400_000 * 1.05)
    est.growth_capped = False
    grown_from = est.available
    path.run(400_000, 5)
    assert est.available > 1.3 * grown_from, "without probing the estimate creeps on, 8 % a second"


def test_probe_schedule_paces_and_backs_off_two_four_eight_seconds():
    probe = ProbeSchedule()
    assert probe.target(300_000, 700_000) == 600_000, "at most twice the estimate"
    assert probe.target(300_000, 400_000) == pytest.approx(460_000, abs=1), "what is wanted x 1.15"
    t = SECOND
    assert probe.may_start(t)
    probe.start(800_000, 0, t)
    assert probe.end_ns == t + 400_000_000
    # the target's rate accrues, what the transport sends spends it: 5 ms at 800k is 500 bytes
    assert probe.due(0, t + 5_000_000) == 500
    assert probe.due(300, t + 10_000_000) == 700
    # a long pause is not made up at once (40 ms at most)
    assert probe.due(1000, t + SECOND) == 4000 + 700 - 700
    probe.finish(False, t)
    waits = []
    for _ in range(4):
        waits.append((probe.next_ns - t) / SECOND)
        assert not probe.may_start(probe.next_ns - 1)
        t = probe.next_ns
        probe.start(800_000, 0, t)
        probe.finish(False, t)
    assert waits == [2, 4, 8, 8]
    probe.finish(True, t)
    assert probe.may_start(t), "after a success the next probe may start at once"
    probe.start(800_000, 0, t)
    probe.finish(False, t)
    assert probe.next_ns - t == 2 * SECOND, "and the back-off starts over"


# ---- through a Forwarder: a simulcast consumer's layer follows its transport's estimate ----------

LAYERS = ((100, 10, 400), (101, 20, 900), (102, 60, 1200))  # ssrc, packets/s, bytes: ~32k/144k/576k
RTX_PT = 102
RTX_SSRC = 9001


class ViewerRig:
    """A producer and one viewer through the Forwarder: send what is due, drain, read what the viewer
    got, and pick layers every 250 ms. Subclasses send (send_due) and keep (keep) their own way."""

    fwd: object
    server_addr: tuple
    viewer: Peer

    def run(self, seconds: float, on_packet=None, until=None) -> bool:
        """Run for `seconds` or until `until()` holds (checked after each pick; returns whether it did)."""
        end = time.monotonic() + seconds
        next_layers = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            self.send_due(now)
            self.fwd.drain()
            while True:
                try:
                    raw = self.viewer.rx.unprotect(self.viewer.sock.recv(2048))
                except BlockingIOError:
                    break
                self.keep(raw)
                if on_packet is not None:
                    on_packet(raw)
            if now >= next_layers:
                self.fwd.update_layers()
                next_layers = now + 0.25
                if until is not None and until():
                    return True
            time.sleep(0.002)
        return False

    def send_rtcp(self, packet: bytes) -> None:
        self.viewer.sock.sendto(self.viewer.tx.rtcp_protect(packet), self.server_addr)


class SimulcastRig(ViewerRig):
    """A VP8 producer with three layers (key frames twice a second) and one simulcast viewer."""

    def __init__(self, fwd, server_addr, twcc_ext_id: int = 0, producer_sends_transport_seq: bool = True,
                 rtx_ssrc: int = 0):
        self.fwd, self.server_addr = fwd, server_addr
        self.producer_sends_transport_seq = producer_sends_transport_seq
        self.producer, self.viewer = Peer(), Peer()
        self.viewer.sock.setblocking(False)
        tp = connect(fwd, self.producer)
        self.streams = [fwd.add_producer_stream(tp, ssrc, 0, CODEC_VP8, 90000, layer, True)
                        for layer, (ssrc, _, _) in enumerate(LAYERS)]
        ext_map = {5: twcc_ext_id} if twcc_ext_id else {}
        self.transport = connect(fwd, self.viewer)
        self.consumer = fwd.add_consumer(self.transport, 9000, 3, {96: 101}, ext_map, twcc_ext_id,
                                         CODEC_VP8, 90000, True, False, 2, rtx_ssrc, RTX_PT if rtx_ssrc else -1)
        for layer, stream in enumerate(self.streams):
            fwd.attach_stream(self.consumer, layer, stream)
        self.seq = {ssrc: 1 for ssrc, _, _ in LAYERS}
        self.sent = {ssrc: 0 for ssrc, _, _ in LAYERS}
        self.start = time.monotonic()
        self.start_ns = time.monotonic_ns()
        self.received: list[RtpPacket] = []

    def send_due(self, now: float) -> None:
        """Every layer at its pace (key frames twice a second)."""
        for ssrc, pps, size in LAYERS:
            while self.sent[ssrc] < (now - self.start) * pps:
                keyframe = self.sent[ssrc] % (pps // 2) == 0
                payload = vp8(keyframe) + bytes(size - 23)
                packet = rtp(self.seq[ssrc], int((now - self.start) * 90000), ssrc, 96, payload)
                if self.producer_sends_transport_seq:
                    packet = with_transport_seq(packet, self.seq[ssrc])
                self.producer.sock.sendto(self.producer.tx.protect(packet), self.server_addr)
                self.seq[ssrc] += 1
                self.sent[ssrc] += 1

    def keep(self, raw: bytes) -> None:
        self.received.append(RtpPacket.parse(raw))

    def layer(self) -> int:
        return self.fwd.consumer_stats(self.consumer)["currentLayer"]


def with_transport_seq(packet: bytes, seq: int) -> bytes:
    """Add a one-byte-form transport-wide-cc element (id 5) to an RTP packet without extensions."""
    assert not packet[0] & 0x10
    element = bytes([0xBE, 0xDE, 0, 1, (5 << 4) | 1]) + (seq & 0xFFFF).to_bytes(2, "big") + b"\0"
    return bytes([packet[0] | 0x10]) + packet[1:12] + element + packet[12:]


def remb(bitrate: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bitrate, [9000])))


def test_remb_under_the_layer_bitrate_moves_the_consumer_down_a_layer(forwarder):
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr)
    rig.run(1.5)
    assert rig.layer() == 2
    assert fwd.transport_stats(rig.transport)["availableOutgoingBitrate"] is None
    # the receiver can take 300 kbit/s: layer 1 (~150k) fits, layer 2 (~580k) does not
    rig.send_rtcp(remb(300_000))
    rig.run(1.5)
    stats = fwd.transport_stats(rig.transport)
    assert stats["availableOutgoingBitrate"] == 300_000 and stats["bweDecreases"] == 1
    assert rig.layer() == 1
    recent = {p.sequence_number for p in rig.received[-10:]}
    assert len(recent) == 10, "numbering stays continuous across the switch"


def transport_feedback(arrivals: list[tuple[int, int | None]], feedback_count: int) -> bytes:
    """transport-cc feedback for consecutive transport-wide numbers: (seq, arrival ns or None: lost)."""
    reference, packets = twcc_deltas(arrivals)
    statuses = [((1 if 0 <= delta <= 255 else 2) if received else 0, delta) for _, received, delta in packets]
    return build_compound([("twcc", 1, 9000, arrivals[0][0], reference, feedback_count & 0xFF, statuses)])


@pytest.mark.parametrize("lose", [False, True], ids=["all-received", "30%-lost"])
def test_transport_cc_loss_moves_the_consumer_down_and_a_clean_path_keeps_it(forwarder, lose):
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3)
    pending: list[tuple[int, int]] = []
    feedbacks = []

    def report(raw: bytes) -> None:
        # what a receiver does: note each arrival by transport-wide number, report every 100 ms
        now = time.monotonic_ns() - rig.start_ns
        pending.append((extension_value(raw, 3), now))
        if now - pending[0][1] >= 100_000_000:
            pending.sort()
            arrivals = [(seq, None if lose and i % 10 < 3 else arrival)
                        for i, (seq, arrival) in enumerate(pending)]
            rig.send_rtcp(transport_feedback(arrivals, len(feedbacks)))
            feedbacks.append(len(arrivals))
            pending.clear()

    rig.run(1.0, report)
    assert rig.layer() == 2
    rig.run(2.0, report)
    stats = fwd.transport_stats(rig.transport)
    assert len(feedbacks) > 10
    if lose:
        assert stats["bweDecreases"] >= 1 and stats["availableOutgoingBitrate"] is not None
        assert rig.layer() < 2
    else:
        assert stats["bweDecreases"] == 0 and stats["availableOutgoingBitrate"] is None
        assert rig.layer() == 2


def extension_value(raw: bytes, ext_id: int) -> int:
    """The value of a one-byte-form header extension element (RFC 8285 §4.2) of an RTP packet."""
    assert raw[0] & 0x10, "the packet carries extensions"
    offset = 12 + 4 * (raw[0] & 0x0F)
    length = int.from_bytes(raw[offset + 2:offset + 4], "big") * 4
    pos, end = offset + 4, offset + 4 + length
    while pos < end:
        if raw[pos] == 0:
            pos += 1
            continue
        element_id, size = raw[pos] >> 4, (raw[pos] & 0x0F) + 1
        if element_id == ext_id:
            return int.from_bytes(raw[pos + 1:pos + 1 + size], "big")
        pos += 1 + size
    raise AssertionError(f"no extension {ext_id}")


def test_feedback_for_numbers_never_sent_changes_nothing(forwarder):
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3)
    rig.send_rtcp(transport_feedback([(40000 + i, None) for i in range(49)] + [(40049, 10**9)], 0))
    rig.run(0.5)
    stats = fwd.transport_stats(rig.transport)
    assert stats["bweDecreases"] == 0 and stats["availableOutgoingBitrate"] is None
    assert rig.layer() == 2


def test_copies_carry_the_transport_seq_even_when_the_producer_sends_none(forwarder):
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3, producer_sends_transport_seq=False)
    numbers = []
    rig.run(0.6, lambda raw: numbers.append(extension_value(raw, 3)))
    assert len(numbers) > 10
    assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(len(numbers))]


class Bottleneck:
    """A FIFO link of link_bps after the Forwarder: when each packet would arrive, or None when the
    queue (max_queue_s long) is full and the packet is dropped."""

    def __init__(self, link_bps: float, max_queue_s: float = 0.3):
        self.link_bps, self.max_queue_ns = link_bps, max_queue_s * 1e9
        self.free_at = 0.0

    def arrival(self, size: int, now_ns: int) -> int | None:
        start = max(now_ns, self.free_at)
        if start - now_ns > self.max_queue_ns:
            return None
        self.free_at = start + size * 8 / self.link_bps * 1e9
        return int(self.free_at)


class LinkReceiver:
    """The viewer behind a Bottleneck, as a browser: every packet's arrival through the link noted by
    its transport-wide number, and every 100 ms transport-cc feedback on those that arrived by then
    (in order; a packet the link dropped is reported lost). Use as SimulcastRig.run's on_packet."""

    def __init__(self, rig: SimulcastRig, link_bps: float, ext_id: int = 3):
        self.rig, self.link, self.ext_id = rig, Bottleneck(link_bps), ext_id
        self.waiting: list[tuple[int, int | None]] = []
        self.next_feedback = 0
        self.feedbacks = 0
        self.feedback_at: list[int] = []  # when each feedback was sent, ns from start
        self.rtx_sent: list[int] = []  # when each RTX packet (a probe's) left the server, ns from start

    def __call__(self, raw: bytes) -> None:
        now = time.monotonic_ns() - self.rig.start_ns
        if int.from_bytes(raw[8:12], "big") == RTX_SSRC:
            self.rtx_sent.append(now)
        self.waiting.append((extension_value(raw, self.ext_id), self.link.arrival(len(raw) + 28, now)))
        if now < self.next_feedback:
            return
        self.next_feedback = now + 100_000_000
        count = 0
        while count < len(self.waiting) and (self.waiting[count][1] or 0) <= now:
            count += 1
        if count:
            self.rig.send_rtcp(transport_feedback(self.waiting[:count], self.feedbacks))
            self.feedbacks += 1
            self.feedback_at.append(now)
            del self.waiting[:count]


def test_a_slow_link_settles_the_consumer_on_the_layer_it_can_take(forwarder):
    """300 kbit/s to the viewer: layer 2 (~600k) builds a standing queue, the estimate drops under
    the link, and the consumer goes to layer 1 (~150k) and stays there."""
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3)
    receiver = LinkReceiver(rig, 300_000)
    rig.run(4.0, receiver)
    stats = fwd.transport_stats(rig.transport)
    # A feedback goes out with the first packet through the link after each 100 ms mark: at layer 1's
    # 20 packets/s that is every 100-150 ms (27-40 in 4 s; 29 seen under a loaded CI run), so what
    # is asserted is that it never stopped: no gap of half a second, and at least 20.
    gaps_ms = [(b - a) / 1e6 for a, b in zip(receiver.feedback_at, receiver.feedback_at[1:], strict=False)]
    assert receiver.feedbacks >= 20 and max(gaps_ms) < 500, ("feedback kept coming", gaps_ms)
    assert stats["bweDecreases"] >= 1
    assert 100_000 <= stats["availableOutgoingBitrate"] <= 300_000
    assert rig.layer() == 1


def test_hostile_feedback_keeps_the_estimate_bounded():
    """Random transport-cc feedback (any numbers, deltas, statuses), REMB and loss values: the
    estimate stays within its bounds and the queue estimate finite; nothing crashes."""
    import random

    rng = random.Random(7)
    est = BandwidthEstimator()
    now = SECOND
    for seq in range(2000):
        est.on_sent(seq & 0xFFFF, rng.randrange(0, 1500), now + seq * 1000)
    for _ in range(3000):
        now += rng.randrange(0, 50_000_000)
        kind = rng.random()
        if kind < 0.8:
            packets = [(rng.randrange(0, 2100) & 0xFFFF, rng.random() < 0.7, rng.randrange(-32768, 32768))
                       for _ in range(rng.randrange(0, 60))]
            est.on_feedback(packets, rng.randrange(-(1 << 23), 1 << 23), now, rng.uniform(0, 1e9))
        elif kind < 0.85:
            est.on_remb(rng.choice([0, 1, rng.randrange(0, 1 << 64)]), rng.uniform(0, 1e9), now)
        elif kind < 0.9:
            # probes judged on the same hostile feedback
            est.growth_capped = rng.random() < 0.5
            step = rng.randrange(4)
            if step == 0:
                est.probe_begin(rng.randrange(0, 1 << 32), now)
            elif step == 1:
                est.probe_end_sending(now)
            elif step == 2:
                est.probe_check(now)
            else:
                est.take_probe_result()
        else:
            est.on_loss(rng.random(), rng.uniform(0, 1e9), now)
        assert est.available == 0 or 30_000 <= est.available <= 200_000_000
        assert 0 <= est.queue_ms <= 10_000


# ---- probing: a receiver whose path recovered climbs back; one whose path did not, stays ---------

def layer_2_need(fwd, rig: SimulcastRig) -> float:
    """The estimate at which update_layers() lets the consumer go up to layer 2 (with the margin)."""
    return 1.15 * fwd.stream_stats(rig.streams[2])["bitrate"]


def test_a_recovered_link_is_probed_and_the_consumer_climbs_back_within_seconds(forwarder):
    """300 kbit/s drives the consumer to layer 1, and a probe there fails. The link opens to
    3 Mbit/s right after that failure, the worst moment: a full back-off (2 s) before the next
    probe. Paced probes then raise the estimate (at most 2x each) and the consumer is back on
    layer 2 within ~4 s (measured 3.7-3.9 s; without probing 19 s, next test)."""
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3, rtx_ssrc=RTX_SSRC)
    receiver = LinkReceiver(rig, 300_000)

    def stats() -> dict:
        return fwd.transport_stats(rig.transport)

    assert rig.run(10.0, receiver, until=lambda: stats()["probesFailed"] >= 1)
    slow = stats()
    assert rig.layer() < 2 and slow["probesSucceeded"] == 0 and slow["probesStarted"] == 1
    assert slow["availableOutgoingBitrate"] <= 300_000, "the failed probe raised nothing"
    probes_at_slow_link = len(receiver.rtx_sent)

    receiver.link.link_bps = 3_000_000
    opened = time.monotonic()
    assert rig.run(8.0, receiver, until=lambda: rig.layer() == 2), "back on layer 2"
    climb = time.monotonic() - opened
    print(f"climbed back to layer 2 in {climb:.2f} s")
    assert climb < 5.0
    recovered = stats()
    assert recovered["probesSucceeded"] >= 1
    assert recovered["availableOutgoingBitrate"] >= layer_2_need(fwd, rig)
    assert recovered["probeBytesSent"] > slow["probeBytesSent"]
    # paced, not one burst: the probes' packets left over their 400 ms each, a few at a time
    sent = receiver.rtx_sent[probes_at_slow_link:]
    assert len(sent) >= 16
    assert sent[-1] - sent[0] >= 400_000_000 * (recovered["probesSucceeded"] - 0.5)
    busiest = max(sum(1 for t in sent if start <= t < start + 50_000_000) for start in sent)
    assert busiest <= 0.2 * len(sent), f"{busiest} of {len(sent)} probe packets within 50 ms"


def test_a_viewer_without_rtx_is_probed_with_padding_on_the_probator_ssrc(forwarder):
    """The recovery above for a viewer without RTX: the probes are padding-only packets on SSRC 1234,
    payload type 127 (mediasoup-client signals them for probation), each with the next transport-wide number, so
    the viewer's feedback acknowledges them and the consumer climbs back to layer 2 within seconds."""
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3)
    fwd.set_transport_probator(rig.transport, 127)  # mediasoup-client's probator
    receiver = LinkReceiver(rig, 300_000)
    padding: list[bytes] = []

    def on_packet(raw: bytes) -> None:
        receiver(raw)
        if int.from_bytes(raw[8:12], "big") == 1234:
            padding.append(raw)

    def stats() -> dict:
        return fwd.transport_stats(rig.transport)

    assert rig.run(10.0, on_packet, until=lambda: stats()["probesFailed"] >= 1)
    assert rig.layer() < 2 and stats()["probesSucceeded"] == 0
    receiver.link.link_bps = 3_000_000
    opened = time.monotonic()
    assert rig.run(8.0, on_packet, until=lambda: rig.layer() == 2), "back on layer 2"
    climb = time.monotonic() - opened
    print(f"climbed back to layer 2 in {climb:.2f} s with {len(padding)} padding probe packets")
    # measured 3.3-3.8 s, once 6.4 s on a loaded machine: five times the packets of RTX probes
    # (255 bytes of padding each) through this test's per-packet link emulation; 19 s without probing
    assert climb < 8.0 and stats()["probesSucceeded"] >= 1
    assert len(padding) >= 16 and stats()["probeBytesSent"] >= sum(len(p) for p in padding)
    parsed = [RtpPacket.parse(p) for p in padding]
    assert all(raw[0] & 0x20 and raw[-1] == 255 for raw in padding), "padding only, 255 bytes of it"
    assert all(p.payload_type == 127 and p.payload == b"" for p in parsed)
    seqs = [p.sequence_number for p in parsed]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "numbered on their own SSRC"
    numbers = [extension_value(raw, 3) for raw in padding]
    assert len(set(numbers)) == len(numbers), "each its own transport-wide number"


def test_without_probing_the_same_recovery_waits_for_eight_percent_a_second(forwarder):
    """The run above with probing off (Forwarder.set_probing(False)): 5 s after the link opened the
    consumer is still on layer 1, the estimate growing 8 % a second, layer 2 still seconds away
    (the whole climb measured 19 s)."""
    fwd, server_addr, _ = forwarder
    fwd.set_probing(False)
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3, rtx_ssrc=RTX_SSRC)
    receiver = LinkReceiver(rig, 300_000)
    rig.run(3.5, receiver)
    assert rig.layer() < 2
    receiver.link.link_bps = 3_000_000
    opened_estimate = fwd.transport_stats(rig.transport)["availableOutgoingBitrate"]
    rig.run(5.0, receiver)
    stats = fwd.transport_stats(rig.transport)
    assert stats["probesStarted"] == 0 and receiver.rtx_sent == []
    assert rig.layer() < 2
    estimate = stats["availableOutgoingBitrate"]
    assert estimate <= opened_estimate * 1.08 ** 5.5
    still_to_go = math.log(layer_2_need(fwd, rig) / estimate) / math.log(1.08)
    print(f"estimate {estimate} 5 s after the link opened: layer 2 is {still_to_go:.1f} s further")
    assert still_to_go > 3


def test_a_link_that_stays_slow_fails_its_probes_and_backs_off(forwarder):
    """300 kbit/s for 14 s: every probe fails at its first queue and raises nothing, the waits
    between probes double (2 s, 4 s, then 8 s), and the consumer never goes back to layer 2 (no
    oscillation): between probes the estimate grows only up to 1.5x what was acknowledged (GCC's
    bound, as libwebrtc's), far under what layer 2 needs."""
    fwd, server_addr, _ = forwarder
    rig = SimulcastRig(fwd, server_addr, twcc_ext_id=3, rtx_ssrc=RTX_SSRC)
    receiver = LinkReceiver(rig, 300_000)
    starts: list[float] = []
    at_start: list[int] = []  # the estimate when each probe started...
    at_failure: list[int] = []  # ...and when it had failed
    layers: list[int] = []
    estimates: list[int] = []
    begin = time.monotonic()

    def sample() -> bool:  # after each update_layers(), which starts probes
        stats = fwd.transport_stats(rig.transport)
        if stats["probesStarted"] > len(starts):
            starts.append(time.monotonic() - begin)
            at_start.append(stats["availableOutgoingBitrate"])
        if stats["probesFailed"] > len(at_failure):
            at_failure.append(stats["availableOutgoingBitrate"])
        if not layers or layers[-1] != rig.layer():
            layers.append(rig.layer())
        if starts:  # from the first probe on (the estimate settles under the link before it)
            estimates.append(stats["availableOutgoingBitrate"])
        return False

    rig.run(14.0, receiver, until=sample)
    end = time.monotonic() - begin
    stats = fwd.transport_stats(rig.transport)
    print(f"probes started at {[round(t, 2) for t in starts]} s, estimates {at_start} -> {at_failure}, "
          f"layers {layers}")
    assert stats["probesSucceeded"] == 0 and stats["probesFailed"] >= 2
    assert all(after <= before for before, after in zip(at_start, at_failure, strict=False)), \
        "a failed probe raises nothing"
    assert estimates and max(estimates) <= 1.5 * 300_000 < layer_2_need(fwd, rig)
    assert 2 <= len(starts) <= 3
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 2.0
    if len(gaps) > 1:
        assert gaps[1] >= 4.0
    assert end - starts[-1] >= 3.5, "the next wait is longer still"
    assert layers[0] == 2 and 2 not in layers[1:], "down once, never back up"
    # [2, 1] here when quiet; a scheduling hiccup of the rig under a loaded CI run once read as
    # queueing on the simulated link and took the consumer to layer 0 and back ([2, 1, 0, 1]):
    # one such dip is allowed, a see-saw is not
    assert len(layers) <= 4
    assert stats["probeBytesSent"] <= 20_000 * stats["probesStarted"], "a failed probe is cheap"


class TemporalRig(ViewerRig):
    """One VP8 L1T3 stream at 30 fps (TL0 7.5, TL0+1 15, all 30 fps: ~180/360/720 kbit/s) to a
    viewer with RTX and transport-cc, picking layers every 250 ms."""

    def __init__(self, fwd, server_addr):
        from tests.test_temporal_layers import L1T3Source

        self.fwd = fwd
        self.producer, self.viewer = Peer(), Peer()
        self.viewer.sock.setblocking(False)
        stream = fwd.add_producer_stream(connect(fwd, self.producer), 4000, 0, CODEC_VP8, 90000, 0, True)
        self.transport = connect(fwd, self.viewer)
        self.consumer = fwd.add_consumer(self.transport, 8000, 1, {96: 101}, {}, 3, CODEC_VP8, 90000, True,
                                         False, rtx_ssrc=RTX_SSRC, rtx_payload_type=RTX_PT, temporal_layers=3)
        fwd.attach_stream(self.consumer, 0, stream)
        self.source = L1T3Source(self.producer, server_addr, 4000, packets=3, size=1000, sync_every=1)
        self.server_addr = server_addr
        self.start = time.monotonic()
        self.start_ns = time.monotonic_ns()
        self.media: dict[int, bytes] = {}  # what the viewer got, by sequence number: its payload
        self.resent: list[tuple[int, bytes]] = []  # RTX: (original sequence number, payload)

    def send_due(self, now: float) -> None:
        while self.source.frame < (now - self.start) * 30:
            self.source.send_frame()

    def keep(self, raw: bytes) -> None:
        packet = RtpPacket.parse(raw)
        if packet.ssrc == RTX_SSRC:
            self.resent.append((int.from_bytes(packet.payload[:2], "big"), packet.payload[2:]))
        else:
            self.media[packet.sequence_number] = packet.payload

    def temporal(self) -> int:
        return self.fwd.consumer_stats(self.consumer)["currentTemporalLayer"]


def test_a_recovered_link_brings_back_the_frame_rate_and_probes_resend_what_was_sent(forwarder):
    """Temporal layers: 300 kbit/s holds an L1T3 consumer at 7.5 fps, and when the link opens to
    3 Mbit/s probes bring it back to 30 fps within seconds. Every probe packet resends a packet
    the viewer got, under the number it got it (skipped frames leave no holes in the numbering,
    and a probe never names a skipped packet nor shifts one)."""
    fwd, server_addr, _ = forwarder
    rig = TemporalRig(fwd, server_addr)
    receiver = LinkReceiver(rig, 300_000)

    def stats() -> dict:
        return fwd.transport_stats(rig.transport)

    assert rig.run(12.0, receiver, until=lambda: stats()["probesFailed"] >= 1)
    assert rig.temporal() == 0 and stats()["probesSucceeded"] == 0
    receiver.link.link_bps = 3_000_000
    opened = time.monotonic()
    assert rig.run(8.0, receiver, until=lambda: rig.temporal() == 2), "back to 30 fps"
    climb = time.monotonic() - opened
    print(f"back to 30 fps in {climb:.2f} s")
    assert climb < 5.0 and stats()["probesSucceeded"] >= 1
    seqs = sorted(rig.media)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no holes"
    assert len(rig.resent) >= 16
    for osn, payload in rig.resent:
        assert rig.media.get(osn) == payload, f"probe packet for {osn} is not what was sent as {osn}"
