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
    # a probe cluster's phases (probe.pyx paces it, bwe.pyx judges it)
    BWE_PROBE_IDLE = 0
    BWE_PROBE_SENDING = 1
    BWE_PROBE_WAITING = 2       # sending ended; feedback on its last packets is still due

# 8 bytes a packet: microseconds wrap every 71 minutes, and only differences are used
cdef struct SentRecord:
    uint32_t send_us
    uint16_t seq
    uint16_t size               # 0: no packet remembered in this slot

# the packets sent while a probe ran (media, probes and repairs alike) and what feedback said of them
cdef struct ProbeCluster:
    int phase
    int result                  # 1 succeeded, -1 failed, 0 none yet (the prober takes it and clears it)
    uint32_t target_bps
    bint has_first
    uint16_t first_seq          # transport-wide numbers sent while it ran: first..last
    uint16_t last_seq
    uint32_t packets
    uint64_t sent_bytes
    uint32_t first_send_us
    uint32_t last_send_us
    uint16_t last_size
    uint32_t acked              # of them, reported received and lost
    uint32_t lost
    uint64_t acked_bytes
    bint has_arrival
    int64_t first_arrival_us
    int64_t last_arrival_us
    uint16_t first_arrival_size
    uint64_t deadline_ns        # no verdict by then: failed
    uint64_t quiet_until_ns     # a queue or loss a failed probe caused is no decrease before this
    uint32_t send_bps           # the last verdict's measured rates, for stats and tests
    uint32_t receive_bps

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
    # this transport can probe: growth between signs stops at 1.5x the acknowledged rate
    # (draft-ietf-rmcat-gcc-02 §5.5), and a probe is how the estimate goes further
    bint growth_capped
    ProbeCluster probe


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
cdef void bwe_probe_begin(BandwidthEstimate* e, uint32_t target_bps, uint64_t now_ns) noexcept nogil
cdef void bwe_probe_end_sending(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil
cdef void bwe_probe_check(BandwidthEstimate* e, uint64_t now_ns) noexcept nogil
cdef bint bwe_may_probe(const BandwidthEstimate* e, uint64_t now_ns) noexcept nogil
