# cython: language_level=3
"""The clocks of the packet path: CLOCK_MONOTONIC in nanoseconds, and the offset of kernel stamps."""

from libc.stdint cimport int64_t, uint64_t
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec


cdef inline uint64_t monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


cdef inline int64_t realtime_minus_monotonic_ns() noexcept nogil:
    """Offset that turns a kernel CLOCK_REALTIME stamp (SO_TIMESTAMPNS) into CLOCK_MONOTONIC."""
    cdef timespec rt
    cdef uint64_t before = monotonic_ns(), after
    clock_gettime(CLOCK_REALTIME, &rt)
    after = monotonic_ns()
    return (<int64_t>rt.tv_sec * 1000000000 + rt.tv_nsec) - <int64_t>((before + after) // 2)
