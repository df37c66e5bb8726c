# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The estimate stage: a send-side bandwidth estimate per consumer transport.

A simplified Google congestion control (draft-ietf-rmcat-gcc-02) for an SFU: the estimate
starts unlimited and only a sign of congestion sets it, so a consumer starts on the layer it
prefers. Signs of congestion:

- transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01)
  showing a standing queue: the path's queueing delay, rebuilt from our send
  times and the receiver's arrival times, stays above BWE_QUEUE_TARGET_US
  for two feedbacks in a row (a CoDel-like floor, so the spread of one key
  frame's burst over a slow link does not count, only a queue that never
  drains); the estimate drops to 0.85 x the rate the receiver acknowledged;
- loss above 10 % in transport-cc feedback or, without it, in receiver
  reports (RFC 3550 §6.4.1): estimate x (1 - loss / 2), GCC's loss rule;
- a REMB (draft-alvestrand-rmcat-remb-03) below what we send.

Between signs, with loss under 2 %, the estimate grows 8 % a second after a
one-second hold. On a transport that can probe (probe.pyx) that growth stops at
1.5 x the acknowledged rate (GCC §5.5), and a probe cluster is how the estimate
goes further: the packets sent while a probe runs are judged here. The first
feedback during it that shows a queue (floor above BWE_QUEUE_TARGET_US) or
loss fails it, and what it caused is no decrease for a second; a cluster whose
feedback shows neither, and that came near its target, raises the estimate
at once to the rate it was acknowledged at (the lower of its send and
receive rates).
"""


from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from fastpath.rtcp cimport TWCC_NOT_RECEIVED, TwccPacketStatus

cdef enum:
    BWE_QUEUE_TARGET_US = 25000
    BWE_STANDING_FEEDBACKS = 2
    BWE_ACKED_WINDOW_US = 500000
    BWE_MIN_LOSS_SAMPLE = 20
    BWE_HOLD_NS = 1000000000
    BWE_DECREASE_INTERVAL_NS = 300000000
    BWE_MAX_QUEUE_US = 10000000
    # a probe cluster: feedback on its last packet is awaited this long after sending ends
    BWE_PROBE_WAIT_NS = 1000000000
    # a failed probe's queue drains before the usual rules look at it again
    BWE_PROBE_QUIET_NS = 1000000000
    # too few packets or too short a span measure no rate
    BWE_PROBE_MIN_PACKETS = 10
    BWE_PROBE_MIN_SPAN_US = 100000

# GCC's factors (draft-ietf-rmcat-gcc-02 §5.5, §6)
cdef double DELAY_BACKOFF = 0.85
cdef double INCREASE_PER_SECOND = 0.08
cdef double LOSS_HIGH = 0.10
cdef double LOSS_LOW = 0.02
# the queue estimate forgets 1 % a feedback, so clock skew between us and the receiver cannot
# build a standing queue out of nothing over a long call
cdef double QUEUE_DECAY = 0.99
# growth between signs stops at this many times the acknowledged rate, on a transport that probes
cdef double GROWTH_CAP = 1.5
# a probe that measures less than this over the estimate has not shown more room
cdef double PROBE_MIN_GAIN = 1.02
# ...nor one that fell this far short of its target (it did not send what it was to test)
cdef double PROBE_MIN_REACHED = 0.85


cdef inline uint32_t _clamp(double bps) noexcept nogil:
    if bps < BWE_MIN_BPS:
        return BWE_MIN_BPS
    if bps > BWE_MAX_BPS:
        return BWE_MAX_BPS
    return <uint32_t>bps


cdef int bwe_track_sent(BandwidthEstimate* e) noexcept nogil:
    """Start remembering sent packets, for transport-cc feedback; 0, or -1 out of memory."""
    if e.sent == NULL:
        e.sent = <SentRecord*>calloc(BWE_HISTORY, sizeof(SentRecord))
        if e.sent == NULL:
            return -1
    return 0


cdef void bwe_free(BandwidthEstimate* e) noexcept nogil:
    free(e.sent)
    e.sent = NULL


cdef void bwe_on_sent(BandwidthEstimate* e, uint16_t seq, int size, uint64_t now_ns) noexcept nogil:
    """Remember a packet sent with transport-wide sequence number seq."""
    cdef SentRecord* r
    if e.sent == NULL:
        return
    cdef ProbeCluster* c = &e.probe
    r = &e.sent[seq % BWE_HISTORY]
    r.send_us = <uint32_t>(now_ns // 1000)
    r.seq = seq
    r.size = <uint16_t>size if size > 0 else 1
    if c.phase == BWE_PROBE_SENDING:
        if not c.has_first:
            c.has_first = 1
            c.first_seq = seq
            c.first_send_us = r.send_us
        c.last_seq = seq
        c.last_send_us = r.send_us
        c.last_size = r.size
        c.packets += 1
        c.sent_bytes += r.size


cdef void _decrease(BandwidthEstimate* e, double target_bps, uint64_t now_ns) noexcept nogil:
    if target_bps <= 0 or (e.estimate_bps and target_bps >= e.estimate_bps):
        return  # no rate to go by yet, or not a decrease
    if e.decreases and now_ns - e.last_change_ns < BWE_DECREASE_INTERVAL_NS:
        return  # one decrease per round of feedback, not one per report of the same congestion
    e.estimate_bps = _clamp(target_bps)
    e.hold_until_ns = now_ns + BWE_HOLD_NS
    e.last_change_ns = now_ns
    e.decreases += 1


cdef void _increase(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    cdef double seconds, grown, limit
    if e.estimate_bps == 0 or now_ns < e.hold_until_ns:
        return
    seconds = (now_ns - e.last_change_ns) / 1e9
    if seconds > 1.0:
        seconds = 1.0
    grown = e.estimate_bps * (1.0 + INCREASE_PER_SECOND * seconds)
    if e.growth_capped and e.acked_bps > 0:
        # what is not used is not measured: past this, only a probe shows the path takes more
        limit = GROWTH_CAP * e.acked_bps
        if grown > limit:
            grown = limit if limit > e.estimate_bps else e.estimate_bps
    e.estimate_bps = _clamp(grown)
    e.last_change_ns = now_ns


cdef void _apply_loss(BandwidthEstimate* e, double loss, double rate_bps, uint64_t now_ns) noexcept nogil:
    """GCC's loss-based rule (draft-ietf-rmcat-gcc-02 §6)."""
    cdef double base
    if loss > LOSS_HIGH:
        base = e.estimate_bps if e.estimate_bps else rate_bps
        if base > 0:
            _decrease(e, base * (1.0 - 0.5 * loss), now_ns)
    elif loss < LOSS_LOW:
        _increase(e, now_ns)


cdef void _probe_fail(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    """The probe showed a queue or loss (or no verdict came): no increase, and what it caused is
    no decrease for a while, since the path did not change, our probe filled it."""
    e.probe.phase = BWE_PROBE_IDLE
    e.probe.result = -1
    e.probe.quiet_until_ns = now_ns + BWE_PROBE_QUIET_NS
    e.standing_queue_feedbacks = 0


cdef void _probe_verdict(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    """Every packet of the cluster is reported, none with a queue: the rate it was acknowledged at
    (the lower of its send and receive rates, each without the packet that opens its span), if
    that is near the probe's target; short of it (pacing starved, a stall) it proves nothing."""
    cdef ProbeCluster* c = &e.probe
    cdef int64_t send_span = <int32_t>(c.last_send_us - c.first_send_us)
    cdef int64_t receive_span = c.last_arrival_us - c.first_arrival_us
    cdef double send_bps, receive_bps, rate
    c.phase = BWE_PROBE_IDLE
    if (c.acked < BWE_PROBE_MIN_PACKETS or c.lost > LOSS_HIGH * (c.acked + c.lost)
            or send_span < BWE_PROBE_MIN_SPAN_US or receive_span < BWE_PROBE_MIN_SPAN_US // 2):
        c.result = -1
        return
    send_bps = (c.sent_bytes - c.last_size) * 8.0 * 1e6 / send_span
    receive_bps = (c.acked_bytes - c.first_arrival_size) * 8.0 * 1e6 / receive_span
    c.send_bps = _clamp(send_bps)
    c.receive_bps = _clamp(receive_bps)
    rate = send_bps if send_bps < receive_bps else receive_bps
    if rate <= PROBE_MIN_GAIN * e.estimate_bps or rate < PROBE_MIN_REACHED * c.target_bps:
        c.result = -1
        return
    e.estimate_bps = _clamp(rate)
    e.last_change_ns = now_ns
    c.result = 1


cdef void bwe_on_feedback(BandwidthEstimate* e, const TwccPacketStatus* packets, int count,
                          int32_t reference_time, double sending_bps, uint64_t now_ns) noexcept nogil:
    """One transport-cc feedback: per packet, lost or its arrival time (64 ms reference + deltas).

    sending_bps stands in for the acknowledged rate until a window of arrivals has measured it.
    """
    cdef int i
    cdef int64_t arrival = <int64_t>reference_time * 64000
    cdef int64_t delay
    cdef int32_t send_delta
    cdef double rate, floor_us = -1.0
    cdef const TwccPacketStatus* p
    cdef SentRecord* r
    cdef ProbeCluster* c = &e.probe
    cdef bint known, in_cluster, probing = c.phase != BWE_PROBE_IDLE and c.has_first
    cdef bint covered = 0
    cdef uint16_t offset, span = <uint16_t>(c.last_seq - c.first_seq)
    cdef int lost_here = 0, received_here = 0
    if e.sent == NULL:
        return
    e.feedbacks += 1
    for i in range(count):
        p = &packets[i]
        r = &e.sent[p.seq % BWE_HISTORY]
        known = r.size and r.seq == p.seq
        in_cluster = 0
        if probing:
            offset = <uint16_t>(p.seq - c.first_seq)
            if offset <= span:
                in_cluster = known
                covered = covered or offset == span
            elif offset < 0x8000:
                covered = 1  # a later packet is reported: the cluster's are, or never will be
        if p.status == TWCC_NOT_RECEIVED:
            if known:
                e.lost += 1
                lost_here += 1
                c.lost += in_cluster
            continue
        arrival += <int64_t>p.delta * 250
        if not known:
            continue
        e.received += 1
        received_here += 1
        if in_cluster:
            c.acked += 1
            c.acked_bytes += r.size
            if not c.has_arrival or arrival < c.first_arrival_us:
                c.first_arrival_us = arrival
                c.first_arrival_size = r.size
            if not c.has_arrival or arrival > c.last_arrival_us:
                c.last_arrival_us = arrival
            c.has_arrival = 1
        if e.acked_bytes == 0:
            e.acked_window_us = arrival
        e.acked_bytes += r.size
        if arrival - e.acked_window_us >= BWE_ACKED_WINDOW_US:
            rate = e.acked_bytes * 8.0 * 1e6 / (arrival - e.acked_window_us)
            e.acked_bps = rate if e.acked_bps == 0 else 0.7 * e.acked_bps + 0.3 * rate
            e.acked_bytes = 0
        send_delta = <int32_t>(r.send_us - e.prev_send_us)
        if e.has_prev and send_delta >= 0:
            # one-way delay variation: arrival spacing minus send spacing (RFC 3550 A.8's D)
            delay = (arrival - e.prev_arrival_us) - send_delta
            e.queue_us += delay
            if e.queue_us < 0:
                e.queue_us = 0
            elif e.queue_us > BWE_MAX_QUEUE_US:
                e.queue_us = BWE_MAX_QUEUE_US
        if floor_us < 0 or e.queue_us < floor_us:
            floor_us = e.queue_us
        e.prev_arrival_us = arrival
        e.prev_send_us = r.send_us
        e.has_prev = 1
        r.size = 0  # reported: a duplicate report changes nothing
    e.queue_us *= QUEUE_DECAY
    if c.phase != BWE_PROBE_IDLE:
        # the first sign of a queue or of loss ends a probe
        if floor_us > BWE_QUEUE_TARGET_US or (lost_here >= 2 and lost_here > LOSS_HIGH * (lost_here + received_here)):
            _probe_fail(e, now_ns)
        elif c.phase == BWE_PROBE_WAITING and covered:
            _probe_verdict(e, now_ns)
    if c.phase != BWE_PROBE_IDLE or now_ns < c.quiet_until_ns:
        # what a probe does to the path is judged above, not by the rules for media
        e.standing_queue_feedbacks = 0
        e.lost = 0
        e.received = 0
        return
    if floor_us >= 0:  # with nothing received there is only loss to go by
        if floor_us > BWE_QUEUE_TARGET_US:
            e.standing_queue_feedbacks += 1
        else:
            e.standing_queue_feedbacks = 0
        if e.standing_queue_feedbacks >= BWE_STANDING_FEEDBACKS:
            e.standing_queue_feedbacks = 0
            _decrease(e, DELAY_BACKOFF * (e.acked_bps if e.acked_bps > 0 else sending_bps), now_ns)
            return
    if e.lost + e.received >= BWE_MIN_LOSS_SAMPLE:
        _apply_loss(e, e.lost / <double>(e.lost + e.received),
                    e.acked_bps if e.acked_bps > 0 else sending_bps, now_ns)
        e.lost = 0
        e.received = 0


cdef void bwe_on_remb(BandwidthEstimate* e, uint64_t bitrate, double sending_bps,
                      uint64_t now_ns) noexcept nogil:
    """The receiver's own estimate. Below what we send, it is congestion; at or above it, it says
    nothing of more: a receive-side estimate follows the incoming rate (up to 1.5x in GCC), so
    as a ceiling it would keep a consumer from ever going back up a layer."""
    e.remb_bps = _clamp(<double>bitrate)
    e.remb_ns = now_ns
    if sending_bps > 0 and bitrate < 0.9 * sending_bps:
        _decrease(e, <double>bitrate, now_ns)
    else:
        _increase(e, now_ns)


cdef void bwe_on_loss(BandwidthEstimate* e, double fraction_lost, double sending_bps,
                      uint64_t now_ns) noexcept nogil:
    """A receiver report's fraction lost, for a transport without transport-cc."""
    _apply_loss(e, fraction_lost, sending_bps, now_ns)


cdef uint64_t bwe_available(const BandwidthEstimate* e) noexcept nogil:
    """The bitrate the path takes now, 0 when nothing limits it."""
    return e.estimate_bps


cdef void bwe_probe_begin(BandwidthEstimate* e, uint32_t target_bps, uint64_t now_ns) noexcept nogil:
    """A probe starts: the numbered packets sent from now on make up its cluster."""
    cdef uint64_t quiet_until = e.probe.quiet_until_ns
    memset(&e.probe, 0, sizeof(ProbeCluster))
    e.probe.phase = BWE_PROBE_SENDING
    e.probe.target_bps = target_bps
    e.probe.quiet_until_ns = quiet_until


cdef void bwe_probe_end_sending(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    """The probe sent what it would: the verdict waits for feedback on its last packet."""
    if e.probe.phase != BWE_PROBE_SENDING:
        return
    if not e.probe.has_first:
        e.probe.phase = BWE_PROBE_IDLE
        e.probe.result = -1
        return
    e.probe.phase = BWE_PROBE_WAITING
    e.probe.deadline_ns = now_ns + BWE_PROBE_WAIT_NS


cdef void bwe_probe_check(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    """A cluster whose feedback never came is a failure (the receiver stopped reporting)."""
    if e.probe.phase == BWE_PROBE_WAITING and now_ns > e.probe.deadline_ns:
        _probe_fail(e, now_ns)


cdef bint bwe_may_probe(const BandwidthEstimate* e, uint64_t now_ns) noexcept nogil:
    """A probe can be judged (transport-cc), the estimate limits, and the hold after a decrease and
    the quiet after a failed probe are over."""
    return (e.sent != NULL and e.estimate_bps != 0 and now_ns >= e.hold_until_ns
            and now_ns >= e.probe.quiet_until_ns and e.probe.phase == BWE_PROBE_IDLE)


# Python wrapper, for tests and tools: the same C functions, with the clock given by the caller

cdef class BandwidthEstimator:
    """One BandwidthEstimate driven from Python; `now_ns` is explicit so rules can be tested in time."""
    cdef BandwidthEstimate e

    def __cinit__(self, bint transport_cc=True):
        if transport_cc and bwe_track_sent(&self.e) < 0:
            raise MemoryError()

    def __dealloc__(self):
        bwe_free(&self.e)

    def on_sent(self, int seq, int size, uint64_t now_ns):
        bwe_on_sent(&self.e, <uint16_t>seq, size, now_ns)

    def on_feedback(self, list packets, int32_t reference_time, uint64_t now_ns, double sending_bps=0):
        """packets: (seq, received, delta in 250 us units from the previous received packet)."""
        cdef int i, n = len(packets)
        cdef TwccPacketStatus* statuses = <TwccPacketStatus*>calloc(n or 1, sizeof(TwccPacketStatus))
        if statuses == NULL:
            raise MemoryError()
        try:
            for i, (seq, received, delta) in enumerate(packets):
                statuses[i].seq = <uint16_t>seq
                statuses[i].status = 1 if received else TWCC_NOT_RECEIVED
                statuses[i].delta = delta
            bwe_on_feedback(&self.e, statuses, n, reference_time, sending_bps, now_ns)
        finally:
            free(statuses)

    def on_remb(self, uint64_t bitrate, double sending_bps, uint64_t now_ns):
        bwe_on_remb(&self.e, bitrate, sending_bps, now_ns)

    def on_loss(self, double fraction_lost, double sending_bps, uint64_t now_ns):
        bwe_on_loss(&self.e, fraction_lost, sending_bps, now_ns)

    @property
    def available(self) -> int:
        """Bits per second the path takes; 0 while nothing limits it."""
        return bwe_available(&self.e)

    @property
    def acked_bps(self) -> float:
        return self.e.acked_bps

    @property
    def queue_ms(self) -> float:
        return self.e.queue_us / 1000.0

    @property
    def decreases(self) -> int:
        return self.e.decreases

    @property
    def growth_capped(self) -> bool:
        return self.e.growth_capped

    @growth_capped.setter
    def growth_capped(self, bint value):
        self.e.growth_capped = value

    def may_probe(self, uint64_t now_ns) -> bool:
        return bwe_may_probe(&self.e, now_ns)

    def probe_begin(self, uint32_t target_bps, uint64_t now_ns):
        bwe_probe_begin(&self.e, target_bps, now_ns)

    def probe_end_sending(self, uint64_t now_ns):
        bwe_probe_end_sending(&self.e, now_ns)

    def probe_check(self, uint64_t now_ns):
        bwe_probe_check(&self.e, now_ns)

    @property
    def probe_phase(self) -> str:
        return ("idle", "sending", "waiting")[self.e.probe.phase]

    def take_probe_result(self) -> int:
        """1 succeeded, -1 failed, 0 no verdict since the last call."""
        result, self.e.probe.result = self.e.probe.result, 0
        return result

    @property
    def probe_rates(self) -> tuple:
        """The last verdict's measured (send, receive) rates of its cluster."""
        return self.e.probe.send_bps, self.e.probe.receive_bps
