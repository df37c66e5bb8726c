# cython: language_level=3
"""The feedback stage: RTCP in from every transport, and the RTCP we send producers and consumers."""

from libc.stdint cimport int32_t, uint16_t, uint64_t

from fastpath.fanout cimport Fanout
from fastpath.state cimport ProducerStream


cdef class Feedback(Fanout):
    cdef void _handle_rtcp(self, int32_t t, unsigned char* data, int length, uint64_t now) noexcept nogil
    cdef void _request_keyframe(self, int32_t stream_slot, uint64_t now, bint force) noexcept nogil
    cdef void _detect_loss(self, ProducerStream* s, uint16_t seq, uint64_t now) noexcept nogil
    cdef void _send_transport_feedback(self, int32_t t, uint64_t now) noexcept nogil
    cdef void _send_due_feedback(self, uint64_t now) noexcept nogil
    cdef void _send_incoming_estimate(self, int32_t t, uint64_t now) noexcept nogil
