# cython: language_level=3
"""The clocks of the packet path: CLOCK_MONOTONIC in nanoseconds, and kernel arrival stamps on it."""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

from fastpath.netdefs cimport CMSG_DATA, CMSG_FIRSTHDR, CMSG_NXTHDR, SCM_TIMESTAMPNS, SOL_SOCKET, cmsghdr, msghdr


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


cdef inline int64_t kernel_arrival_ns(msghdr* msg, int64_t rt_offset, int64_t fallback) noexcept nogil:
    """A received datagram's SO_TIMESTAMPNS stamp on the CLOCK_MONOTONIC scale (rt_offset from
    realtime_minus_monotonic_ns()), or fallback when the message carries none."""
    cdef cmsghdr* cmsg = CMSG_FIRSTHDR(msg)
    cdef timespec stamp
    while cmsg != NULL:
        if cmsg.cmsg_level == SOL_SOCKET and cmsg.cmsg_type == SCM_TIMESTAMPNS:
            memcpy(&stamp, CMSG_DATA(cmsg), sizeof(stamp))
            return <int64_t>stamp.tv_sec * 1000000000 + stamp.tv_nsec - rt_offset
        cmsg = CMSG_NXTHDR(msg, cmsg)
    return fallback
