# cython: language_level=3
"""The estimate stage: how many bits per second a consumer transport's path can take.

Fed by what the receiver tells us: transport-wide congestion control feedback
(draft-holmer-rmcat-transport-wide-cc-extensions-01), REMB
(draft-alvestrand-rmcat-remb-03) or, failing both, the loss in its receiver
reports (RFC 3550 §6.4.1). The Forwarder reads the estimate when it picks
simulcast layers.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t

from fastpath.rtcp cimport TwccPacketStatus

cdef enum:
    # sent packets remembered for transport-cc feedback: two seconds at 500 packets/s
    BWE_HISTORY = 1024
    BWE_MIN_BPS = 30000
    BWE_MAX_BPS = 200000000

# 8 bytes a packet: microseconds wrap every 71 minutes, and only differences are used
cdef struct SentRecord:
    uint32_t send_us
    uint16_t seq
    uint16_t size               # 0: no packet remembered in this slot

cdef struct BandwidthEstimate:
    SentRecord* sent            # by transport-wide sequence number; NULL until transport-cc is used
    uint32_t estimate_bps       # 0: no sign of congestion yet, nothing to limit
    uint32_t remb_bps           # the receiver's own estimate (REMB), 0: none; for stats
    uint64_t remb_ns
    double acked_bps            # what the receiver reported receiving (transport-cc), smoothed
    uint64_t acked_bytes        # ...over the current window of arrival times
    int64_t acked_window_us
    double queue_us             # delay built up on the path since it was last empty
    int64_t prev_arrival_us
    uint32_t prev_send_us
    bint has_prev
    int standing_queue_feedbacks  # consecutive feedbacks whose queue never drained
    uint32_t lost               # packets reported lost / received since the last loss decision
    uint32_t received
    uint64_t hold_until_ns      # no increase before this, after a decrease
    uint64_t last_change_ns
    uint64_t feedbacks
    uint64_t decreases


cdef int bwe_track_sent(BandwidthEstimate* e) noexcept nogil
cdef void bwe_free(BandwidthEstimate* e) noexcept nogil
cdef void bwe_on_sent(BandwidthEstimate* e, uint16_t seq, int size, uint64_t now_ns) noexcept nogil
cdef void bwe_on_feedback(BandwidthEstimate* e, const TwccPacketStatus* packets, int count,
                          int32_t reference_time, double sending_bps, uint64_t now_ns) noexcept nogil
cdef void bwe_on_remb(BandwidthEstimate* e, uint64_t bitrate, double sending_bps,
                      uint64_t now_ns) noexcept nogil
cdef void bwe_on_loss(BandwidthEstimate* e, double fraction_lost, double sending_bps,
                      uint64_t now_ns) noexcept nogil
cdef uint64_t bwe_available(const BandwidthEstimate* e) noexcept nogil
