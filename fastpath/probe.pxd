# cython: language_level=3
"""Probing: when a consumer transport's estimate holds a consumer below the layer it prefers, raise
the transport's total rate for a while to what that layer needs, to learn whether the path takes it.

This module holds the schedule and the pacing of one transport's probes; the fan-out stage sends
the packets (RTX retransmissions of recent packets), the layer stage decides when a probe is
wanted, and the estimate stage (bwe.pyx) judges the packets sent while it ran.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t

cdef enum:
    # how long a probe sends
    PROBE_DURATION_MS = 400
    # the wait after a failed probe: doubled by each failure in a row, from the first to the last
    PROBE_FIRST_BACKOFF_MS = 2000
    PROBE_MAX_BACKOFF_MS = 8000
    # a probe resends from the newest this many packets of its consumer's stream, then again
    PROBE_RESEND_DEPTH = 32
    # without RTX: padding-only packets on the SSRC mediasoup-client signals for them (its
    # "probator" receiver, as mediasoup's RtpProbationGenerator), RTP padding at its largest
    PROBATOR_SSRC = 1234
    PROBE_PADDING_BYTES = 255


cdef struct ProbeState:
    uint32_t target_bps         # the transport's total rate while a probe runs; 0: none runs
    uint64_t start_ns
    uint64_t end_ns             # its sending stops
    uint64_t paced_ns           # when it was last paced...
    uint64_t paced_bytes        # ...and the transport's bytes sent by then
    double credit               # bytes the target allows that nothing has used yet
    int32_t source              # the consumer whose recent packets it resends (as RTX)
    uint16_t cursor             # how far back from the newest packet the next resend is
    uint64_t next_ns            # no probe starts before this
    uint64_t backoff_ns         # the wait after the next failure
    uint32_t want_bps           # update_layers' scratch: the rate a consumer's next layer needs...
    int32_t want_source         # ...and a consumer to probe with (RTX, or padding on the probator), -1 none
    uint64_t started
    uint64_t succeeded
    uint64_t failed
    uint64_t packets
    uint64_t bytes


cdef uint32_t probe_target(uint32_t estimate_bps, double wanted_bps) noexcept nogil
cdef bint probe_may_start(const ProbeState* p, uint64_t now_ns) noexcept nogil
cdef void probe_start(ProbeState* p, uint32_t target_bps, int32_t source, uint64_t sent_bytes,
                      uint64_t now_ns) noexcept nogil
cdef int64_t probe_due(ProbeState* p, uint64_t sent_bytes, uint64_t now_ns) noexcept nogil
cdef void probe_finish(ProbeState* p, bint succeeded, uint64_t now_ns) noexcept nogil
