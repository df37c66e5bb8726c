# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Probing: the schedule and pacing of a consumer transport's probes.

A probe is wanted when update_layers() finds a simulcast consumer held below the layer it
prefers by its transport's estimate (layers.pyx). It aims the transport's *total* rate (media,
repairs and probe packets) at what that next layer needs x PROBE_HEADROOM, at most twice the
estimate, for PROBE_DURATION_MS. Pacing is a credit of bytes: the target's rate accrues it, every
byte the transport sends spends it, and what is left is sent as probe packets. It runs after every
receive batch and at each update, so a probe leaves in many small bursts, not one.

bwe.pyx judges the cluster. Success lets the next update probe again at once (the next layer may
need more than twice the estimate); each failure in a row doubles the wait before the next probe,
from PROBE_FIRST_BACKOFF_MS to PROBE_MAX_BACKOFF_MS, so a path that does not recover is probed
rarely and cheaply.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef enum:
    # a pause between two pacing calls longer than this is not made up for at once
    PROBE_MAX_STEP_NS = 40000000
    # media beyond the target (a key frame) delays the probe's packets by at most this much
    PROBE_MAX_DEBT_NS = 100000000

# the target over what the next layer needs, so what the probe measures still affords it
cdef double PROBE_HEADROOM = 1.15
cdef double PROBE_MAX_FACTOR = 2.0


cdef uint32_t probe_target(uint32_t estimate_bps, double wanted_bps) noexcept nogil:
    """The total rate a probe aims at: what is wanted with headroom, at most twice the estimate."""
    cdef double target = wanted_bps * PROBE_HEADROOM
    if target > PROBE_MAX_FACTOR * estimate_bps:
        target = PROBE_MAX_FACTOR * estimate_bps
    if target > 4000000000.0:
        target = 4000000000.0
    return <uint32_t>target if target > 0 else 0


cdef bint probe_may_start(const ProbeState* p, uint64_t now_ns) noexcept nogil:
    return p.target_bps == 0 and now_ns >= p.next_ns


cdef void probe_start(ProbeState* p, uint32_t target_bps, int32_t source, uint64_t sent_bytes,
                      uint64_t now_ns) noexcept nogil:
    p.target_bps = target_bps
    p.start_ns = now_ns
    p.end_ns = now_ns + <uint64_t>PROBE_DURATION_MS * 1000000
    p.paced_ns = now_ns
    p.paced_bytes = sent_bytes
    p.credit = 0.0
    p.source = source
    p.cursor = 0
    p.started += 1


cdef int64_t probe_due(ProbeState* p, uint64_t sent_bytes, uint64_t now_ns) noexcept nogil:
    """Bytes of probe packets to send now, given what the transport has sent in all (sent_bytes)."""
    cdef uint64_t step = now_ns - p.paced_ns if now_ns > p.paced_ns else 0
    cdef double debt_limit = -(p.target_bps / 8.0) * (PROBE_MAX_DEBT_NS / 1e9)
    if step > PROBE_MAX_STEP_NS:
        step = PROBE_MAX_STEP_NS
    p.credit += (p.target_bps / 8.0) * (step / 1e9)
    p.credit -= <double>(sent_bytes - p.paced_bytes)
    if p.credit < debt_limit:
        p.credit = debt_limit
    p.paced_ns = now_ns
    p.paced_bytes = sent_bytes
    return <int64_t>p.credit


cdef void probe_finish(ProbeState* p, bint succeeded, uint64_t now_ns) noexcept nogil:
    """The verdict: after a success the next probe may start at once, after a failure it waits."""
    p.target_bps = 0
    p.source = -1
    if p.backoff_ns < <uint64_t>PROBE_FIRST_BACKOFF_MS * 1000000:
        p.backoff_ns = <uint64_t>PROBE_FIRST_BACKOFF_MS * 1000000
    if succeeded:
        p.succeeded += 1
        p.next_ns = now_ns
        p.backoff_ns = <uint64_t>PROBE_FIRST_BACKOFF_MS * 1000000
    else:
        p.failed += 1
        p.next_ns = now_ns + p.backoff_ns
        p.backoff_ns *= 2
        if p.backoff_ns > <uint64_t>PROBE_MAX_BACKOFF_MS * 1000000:
            p.backoff_ns = <uint64_t>PROBE_MAX_BACKOFF_MS * 1000000


# Python wrapper, for tests: the same C functions, with the clock given by the caller

cdef class ProbeSchedule:
    """One ProbeState driven from Python; `now_ns` is explicit so the schedule can be tested in time."""
    cdef ProbeState p

    def target(self, uint32_t estimate_bps, double wanted_bps) -> int:
        return probe_target(estimate_bps, wanted_bps)

    def may_start(self, uint64_t now_ns) -> bool:
        return probe_may_start(&self.p, now_ns)

    def start(self, uint32_t target_bps, uint64_t sent_bytes, uint64_t now_ns):
        probe_start(&self.p, target_bps, 0, sent_bytes, now_ns)

    def due(self, uint64_t sent_bytes, uint64_t now_ns) -> int:
        return probe_due(&self.p, sent_bytes, now_ns)

    def finish(self, bint succeeded, uint64_t now_ns):
        probe_finish(&self.p, succeeded, now_ns)

    @property
    def next_ns(self) -> int:
        return self.p.next_ns

    @property
    def end_ns(self) -> int:
        return self.p.end_ns
