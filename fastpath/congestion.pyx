# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The receive side of congestion control (see congestion.pxd): arrival logs and incoming estimates.

Nothing here allocates per packet: a transport's arrival log is one array of
TWCC_ARRIVAL_WINDOW arrival times, indexed by extended transport-wide sequence
number, and a feedback is built on the stack.
"""

from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from fastpath.rtcp cimport (
    TWCC_LARGE_DELTA,
    TWCC_NOT_RECEIVED,
    TWCC_SMALL_DELTA,
    RtcpTwcc,
    TwccPacketStatus,
    rtcp_build_twcc,
)

cdef enum:
    WINDOW_MASK = TWCC_ARRIVAL_WINDOW - 1
    # transport-cc §3.1: the reference time counts 64 ms, a delta 250 us
    REFERENCE_TIME_US = 64000
    DELTA_TICK_US = 250


cdef int arrival_log_init(ArrivalLog* log) noexcept nogil:
    """Allocate the log's window (idempotent); -1 without memory."""
    cdef int i
    if log.arrival_us != NULL:
        return 0
    log.arrival_us = <int64_t*>malloc(TWCC_ARRIVAL_WINDOW * sizeof(int64_t))
    if log.arrival_us == NULL:
        return -1
    for i in range(TWCC_ARRIVAL_WINDOW):
        log.arrival_us[i] = -1
    log.started = 0
    return 0


cdef void arrival_log_free(ArrivalLog* log) noexcept nogil:
    free(log.arrival_us)
    log.arrival_us = NULL
    log.started = 0


cdef inline void _forget(ArrivalLog* log, int64_t first, int64_t end) noexcept nogil:
    """Clear the slots of [first, end), at most one window's worth."""
    cdef int64_t k
    if end - first > TWCC_ARRIVAL_WINDOW:
        first = end - TWCC_ARRIVAL_WINDOW
    k = first
    while k < end:
        log.arrival_us[k & WINDOW_MASK] = -1
        k += 1


cdef void arrival_log_record(ArrivalLog* log, uint16_t seq, uint32_t media_ssrc,
                             uint64_t now_ns) noexcept nogil:
    """Note that transport-wide sequence number `seq` arrived now (the window is allocated with the
    first, so a transport whose sender never numbers its packets costs nothing)."""
    cdef int64_t ext
    if log.arrival_us == NULL and arrival_log_init(log) < 0:
        return
    if not log.started:
        ext = seq
        log.started = 1
        log.base = ext
        log.highest = ext
        log.last_feedback_ns = now_ns
    else:
        # the nearest extended number to the highest so far (the 16-bit field wraps every 65,536)
        ext = log.highest + <int16_t>(<uint16_t>(seq - <uint16_t>log.highest))
    if ext < log.base:
        # already reported as lost; the sender has moved on (libwebrtc does not resend either)
        log.late_packets += 1
        return
    if ext - log.base >= TWCC_ARRIVAL_WINDOW:
        # a jump past the window: the oldest unreported numbers can no longer be described
        _forget(log, log.base, ext - TWCC_ARRIVAL_WINDOW + 1)
        log.base = ext - TWCC_ARRIVAL_WINDOW + 1
    log.arrival_us[ext & WINDOW_MASK] = <int64_t>(now_ns // 1000)
    if ext > log.highest:
        log.highest = ext
    log.media_ssrc = media_ssrc


cdef bint arrival_log_due(const ArrivalLog* log, uint64_t now_ns) noexcept nogil:
    """A feedback is due: one interval since the last, or a burst waiting."""
    if not log.started or log.highest < log.base:
        return 0
    return (now_ns - log.last_feedback_ns >= TWCC_FEEDBACK_INTERVAL_NS
            or log.highest - log.base + 1 >= TWCC_BURST_PACKETS)


cdef inline int32_t _ticks(int64_t delta_us) noexcept nogil:
    """A time difference in 250 us ticks, rounded to the nearest."""
    if delta_us >= 0:
        return <int32_t>((delta_us + DELTA_TICK_US // 2) // DELTA_TICK_US)
    return -<int32_t>((-delta_us + DELTA_TICK_US // 2) // DELTA_TICK_US)


cdef int arrival_log_build_feedback(ArrivalLog* log, unsigned char* dst, int capacity,
                                    uint32_t sender_ssrc, uint64_t now_ns) noexcept nogil:
    """Describe the unreported numbers, oldest first, in one transport-cc feedback (§3.1).

    Returns its length, 0 when nothing waits, or a negative RTCP_ERR_* code. The
    reference time is that of the first received packet, rounded down to 64 ms; each
    received packet's delta is from the previous one in the same feedback, as the
    receiver rebuilt it (so rounding never accumulates). A delta outside 16 bits
    (8 s) ends the feedback before that packet; the next one starts there.
    """
    cdef TwccPacketStatus statuses[TWCC_MAX_PACKETS_PER_FEEDBACK]
    cdef RtcpTwcc header
    cdef int64_t count, i, arrival, reference, previous_us = -1
    cdef int32_t ticks
    cdef int n = 0, length
    if log.arrival_us == NULL or not log.started or log.highest < log.base:
        return 0
    count = log.highest - log.base + 1
    if count > TWCC_MAX_PACKETS_PER_FEEDBACK:
        count = TWCC_MAX_PACKETS_PER_FEEDBACK
    for i in range(count):
        arrival = log.arrival_us[(log.base + i) & WINDOW_MASK]
        if arrival >= 0:
            previous_us = arrival
            break
    if previous_us < 0:
        # nothing of this stretch arrived (a burst of loss longer than one feedback)
        previous_us = <int64_t>(now_ns // 1000)
    reference = previous_us // REFERENCE_TIME_US
    previous_us = reference * REFERENCE_TIME_US
    for i in range(count):
        arrival = log.arrival_us[(log.base + i) & WINDOW_MASK]
        statuses[i].seq = <uint16_t>(log.base + i)
        if arrival < 0:
            statuses[i].status = TWCC_NOT_RECEIVED
            statuses[i].delta = 0
        else:
            ticks = _ticks(arrival - previous_us)
            if ticks < -32768 or ticks > 32767:
                break
            previous_us += <int64_t>ticks * DELTA_TICK_US
            statuses[i].status = TWCC_SMALL_DELTA if 0 <= ticks <= 255 else TWCC_LARGE_DELTA
            statuses[i].delta = ticks
        n += 1
    header.sender_ssrc = sender_ssrc
    header.media_ssrc = log.media_ssrc
    header.base_seq = <uint16_t>log.base
    header.status_count = <uint16_t>n
    header.reference_time = <int32_t>(reference & 0xFFFFFF)
    header.fb_count = log.feedback_count
    length = rtcp_build_twcc(dst, capacity, &header, statuses)
    if length <= 0:
        return length
    _forget(log, log.base, log.base + n)
    log.base += n
    log.feedback_count = <uint8_t>(log.feedback_count + 1)
    log.last_feedback_ns = now_ns
    log.feedbacks_sent += 1
    return length


cdef uint32_t incoming_estimate_update(IncomingEstimate* e, uint64_t rtp_in_bytes,
                                       double fraction_lost, uint64_t now_ns) noexcept nogil:
    """The rate a REMB tells the sender, from what arrived since the last update and its loss.

    GCC's loss rules (draft-ietf-rmcat-gcc-02 §6) with a receive side's bound:
    above 10 % loss the rate falls to incoming * (1 - loss / 2); under 2 % it grows
    8 % a step, but never past 1.5x what arrives (a sender held by its own encoder
    must not be promised a rate nobody has seen the path carry); in between it holds.
    The ceiling (setMaxIncomingBitrate) always applies.
    """
    cdef double seconds, incoming, estimate
    if e.last_update_ns == 0 or now_ns <= e.last_update_ns:
        e.bytes_mark = rtp_in_bytes
        e.last_update_ns = now_ns
        return e.estimate_bps
    seconds = (now_ns - e.last_update_ns) / 1e9
    incoming = (rtp_in_bytes - e.bytes_mark) * 8.0 / seconds
    e.bytes_mark = rtp_in_bytes
    e.last_update_ns = now_ns
    estimate = e.estimate_bps
    if estimate == 0:
        estimate = max(<double>REMB_START_BPS, 1.5 * incoming)
    elif fraction_lost > 0.10:
        estimate = min(estimate, incoming) * (1.0 - 0.5 * fraction_lost)
    elif fraction_lost < 0.02:
        estimate = min(estimate * 1.08, max(1.5 * incoming, <double>REMB_START_BPS))
    if estimate < REMB_MIN_BPS:
        estimate = REMB_MIN_BPS
    if e.max_bps and estimate > e.max_bps:
        estimate = e.max_bps
    e.estimate_bps = <uint32_t>estimate
    return e.estimate_bps


# ---- Python wrappers, for tests ------------------------------------------------------------------

cdef class ArrivalRecorder:
    """One ArrivalLog driven from Python; `now_ns` is explicit so timing can be tested."""
    cdef ArrivalLog log

    def __cinit__(self):
        if arrival_log_init(&self.log) < 0:
            raise MemoryError()

    def __dealloc__(self):
        arrival_log_free(&self.log)

    def record(self, int seq, uint32_t media_ssrc, uint64_t now_ns):
        arrival_log_record(&self.log, <uint16_t>seq, media_ssrc, now_ns)

    def due(self, uint64_t now_ns) -> bool:
        return arrival_log_due(&self.log, now_ns)

    def build_feedback(self, uint32_t sender_ssrc, uint64_t now_ns):
        """The next feedback packet (bytes), or None when nothing waits."""
        cdef unsigned char buf[1500]
        cdef int n = arrival_log_build_feedback(&self.log, buf, sizeof(buf), sender_ssrc, now_ns)
        if n < 0:
            raise ValueError(f"feedback could not be built ({n})")
        return bytes(buf[:n]) if n else None

    @property
    def late_packets(self) -> int:
        return self.log.late_packets


cdef class IncomingEstimator:
    """One IncomingEstimate driven from Python."""
    cdef IncomingEstimate e

    def __cinit__(self, uint32_t max_bps=0):
        self.e.max_bps = max_bps

    def update(self, uint64_t rtp_in_bytes, double fraction_lost, uint64_t now_ns) -> int:
        return incoming_estimate_update(&self.e, rtp_in_bytes, fraction_lost, now_ns)
