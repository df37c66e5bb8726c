# cython: language_level=3
"""The receive side of congestion control: what a publisher is told its path to us carries.

Two forms, whichever the producer's transport negotiated:
- transport-cc (draft-holmer-rmcat-transport-wide-cc-extensions-01): the arrival
  time of every transport-wide sequence number goes back to the sender, which
  runs its own estimator (Chrome's GoogCC) on it;
- REMB (draft-alvestrand-rmcat-remb-03): we estimate the rate ourselves, from the
  incoming rate and loss, and send the number (aiortc and other REMB senders).
A per-transport ceiling (mediasoup's setMaxIncomingBitrate) goes out as REMB in
both cases: libwebrtc caps its transport-cc estimate at a received REMB.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    # arrival times kept per transport, by sequence number (a power of two): 8 KiB, and
    # a feedback goes out long before a window's worth of packets is waiting
    TWCC_ARRIVAL_WINDOW = 1024
    # libwebrtc's receive side reports every 100 ms by default (50..250 ms by rate)
    TWCC_FEEDBACK_INTERVAL_NS = 100000000
    # ...and we report at once when this many packets wait, so a burst is acknowledged quickly
    TWCC_BURST_PACKETS = 100
    # packets one feedback describes: with large deltas about 1 KiB, inside one datagram
    TWCC_MAX_PACKETS_PER_FEEDBACK = 400
    REMB_INTERVAL_NS = 1000000000
    REMB_MIN_BPS = 30000
    REMB_START_BPS = 300000


# The arrival log of one transport: which transport-wide sequence numbers arrived and when.
cdef struct ArrivalLog:
    int64_t* arrival_us         # TWCC_ARRIVAL_WINDOW slots by extended sequence number; -1: not received
    bint started
    int64_t base                # first extended sequence number not yet reported
    int64_t highest             # highest extended sequence number received
    uint8_t feedback_count      # the 8-bit "fb pkt. count" of the next feedback
    uint64_t last_feedback_ns
    uint32_t media_ssrc         # SSRC of the last packet, named in the feedback's media SSRC field
    uint64_t feedbacks_sent
    uint64_t late_packets       # arrived after their number had been reported (as lost)


# The REMB-side estimate of one transport, updated once a second from rate and loss.
cdef struct IncomingEstimate:
    uint32_t estimate_bps       # 0: not estimated yet
    uint32_t max_bps            # setMaxIncomingBitrate; 0: no ceiling
    uint64_t bytes_mark         # rtp_in_bytes at the last update
    uint64_t last_update_ns
    uint64_t rembs_sent


cdef int arrival_log_init(ArrivalLog* log) noexcept nogil
cdef void arrival_log_free(ArrivalLog* log) noexcept nogil
cdef void arrival_log_record(ArrivalLog* log, uint16_t seq, uint32_t media_ssrc,
                             uint64_t now_ns) noexcept nogil
cdef bint arrival_log_due(const ArrivalLog* log, uint64_t now_ns) noexcept nogil
cdef int arrival_log_build_feedback(ArrivalLog* log, unsigned char* dst, int capacity,
                                    uint32_t sender_ssrc, uint64_t now_ns) noexcept nogil

cdef uint32_t incoming_estimate_update(IncomingEstimate* e, uint64_t rtp_in_bytes,
                                       double fraction_lost, uint64_t now_ns) noexcept nogil
