# cython: language_level=3
"""The fan-out stage: a batch's media, consumer by consumer: layer decision, rewrite, protect, queue."""

from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t

from fastpath.codecs cimport PayloadInfo
from fastpath.probe cimport ProbeState
from fastpath.rtcp cimport RtcpItem
from fastpath.rtp cimport RtpHeader
from fastpath.state cimport ConsumerState, ForwarderState, PendingPacket, ProducerStream


cdef class Fanout(ForwarderState):
    cdef void _queue_forward(self, int32_t stream_slot, const unsigned char* data, const RtpHeader* h,
                             const PayloadInfo* info, bint keyframe, uint64_t now) noexcept nogil
    cdef void _fan_out(self, uint64_t now) noexcept nogil
    cdef void _forward_held(self, ConsumerState* c, uint32_t round, uint64_t now) noexcept nogil
    cdef void _forward_to(self, ConsumerState* c, int layer, const PendingPacket* p, uint64_t now) noexcept nogil
    cdef bint _send_copy(self, ConsumerState* c, const unsigned char* data, const RtpHeader* h,
                         const PayloadInfo* info, uint16_t out_seq, uint32_t out_ts, bint as_rtx) noexcept nogil
    cdef int _resend(self, ConsumerState* c, ProducerStream* s, uint16_t out_seq, bint as_rtx) noexcept nogil
    cdef void _retransmit(self, ConsumerState* c, const unsigned char* data, const RtcpItem* item) noexcept nogil
    cdef void _pace_probes(self, uint64_t now) noexcept nogil
    cdef bint _send_padding_probe(self, int32_t t, ConsumerState* c) noexcept nogil
    cdef int _send_probe(self, int32_t t, ProbeState* p) noexcept nogil
