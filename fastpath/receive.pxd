# cython: language_level=3
"""The receive stage: the socket's receive batches, demultiplexed, and each media packet recorded."""

from libc.stdint cimport int32_t, uint64_t

from fastpath.feedback cimport Feedback
from fastpath.netdefs cimport sockaddr
from fastpath.rtp cimport RtpHeader
from fastpath.state cimport ProducerStream


cdef class Receiver(Feedback):
    cdef void _unknown_tuple(self, unsigned char* data, int length, const sockaddr* addr) noexcept
    cdef void _handle_rtp(self, int32_t t, unsigned char* data, int length, uint64_t now,
                          uint64_t arrival) noexcept
    cdef bint _unwrap_rtx(self, ProducerStream* s, unsigned char* data, int* length, RtpHeader* h) noexcept nogil
    cdef void _collect_events(self) noexcept
