# cython: language_level=3
"""The feedback stage: RTCP in from every transport, and the RTCP we send producers and consumers."""

from libc.stdint cimport int32_t, uint16_t, uint64_t

from fastpath.fanout cimport Fanout
from fastpath.rtcp cimport RtcpReportBlock
from fastpath.state cimport ProducerStream


cdef class Feedback(Fanout):
    cdef void _handle_rtcp(self, int32_t t, unsigned char* data, int length, uint64_t now) noexcept nogil
    cdef void _request_keyframe(self, int32_t stream_slot, uint64_t now, bint force) noexcept nogil
    cdef void _detect_loss(self, ProducerStream* s, uint16_t seq, uint64_t now) noexcept nogil
    cdef void _send_transport_feedback(self, int32_t t, uint64_t now) noexcept nogil
    cdef void _send_due_feedback(self, uint64_t now) noexcept nogil
    cdef void _send_incoming_estimate(self, int32_t t, uint64_t now) noexcept nogil
    # send_reports' sort of streams and consumers by transport, made at part 0 of each round
    cdef int* report_stream_start
    cdef int* report_stream_order
    cdef int* report_consumer_start
    cdef int* report_consumer_order
    cdef int report_transports
    cdef int report_parts
    cdef bint _group_reports(self) noexcept nogil
    cdef int32_t _report_owner(self, int which, int i) noexcept nogil
    cdef int _add_rr(self, int32_t t, unsigned char* compound, int used, const RtcpReportBlock* blocks,
                     int count) noexcept nogil
    cdef int _make_room(self, int32_t t, unsigned char* compound, int used, int length) noexcept nogil
    cdef void _report_transport(self, int32_t t, const int* streams, int stream_count,
                                const int* consumers, int consumer_count) noexcept nogil
