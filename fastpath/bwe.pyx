# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The estimate stage: a send-side bandwidth estimate per consumer transport.

A simplified Google congestion control (draft-ietf-rmcat-gcc-02) for an SFU
that cannot probe: the estimate starts unlimited and only a sign of congestion
sets it, so a consumer starts on the layer it prefers. Signs of congestion:

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
one-second hold; layers go back up as it passes their bitrates, and if the
path cannot take them the next sign brings it down again.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

from fastpath.rtcp cimport TWCC_NOT_RECEIVED, TwccPacketStatus

cdef enum:
    BWE_QUEUE_TARGET_US = 25000
    BWE_STANDING_FEEDBACKS = 2
    BWE_ACKED_WINDOW_US = 500000
    BWE_MIN_LOSS_SAMPLE = 20
    BWE_HOLD_NS = 1000000000
    BWE_DECREASE_INTERVAL_NS = 300000000
    BWE_MAX_QUEUE_US = 10000000

# GCC's factors (draft-ietf-rmcat-gcc-02 §5.5, §6)
cdef double DELAY_BACKOFF = 0.85
cdef double INCREASE_PER_SECOND = 0.08
cdef double LOSS_HIGH = 0.10
cdef double LOSS_LOW = 0.02
# the queue estimate forgets 1 % a feedback, so clock skew between us and the receiver cannot
# build a standing queue out of nothing over a long call
cdef double QUEUE_DECAY = 0.99


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
    r = &e.sent[seq % BWE_HISTORY]
    r.send_us = <uint32_t>(now_ns // 1000)
    r.seq = seq
    r.size = <uint16_t>size if size > 0 else 1


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
    cdef double seconds
    if e.estimate_bps == 0 or now_ns < e.hold_until_ns:
        return
    seconds = (now_ns - e.last_change_ns) / 1e9
    if seconds > 1.0:
        seconds = 1.0
    e.estimate_bps = _clamp(e.estimate_bps * (1.0 + INCREASE_PER_SECOND * seconds))
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
    if e.sent == NULL:
        return
    e.feedbacks += 1
    for i in range(count):
        p = &packets[i]
        r = &e.sent[p.seq % BWE_HISTORY]
        if p.status == TWCC_NOT_RECEIVED:
            if r.size and r.seq == p.seq:
                e.lost += 1
            continue
        arrival += <int64_t>p.delta * 250
        if not (r.size and r.seq == p.seq):
            continue
        e.received += 1
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
