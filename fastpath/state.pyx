# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""State stage: the Forwarder's C state (socket, tables, slots, counters) and the output all stages share.

Per packet: nothing of its own but the output helpers the later stages call, _send_rtcp()
(protect one RTCP packet and queue it for its transport) and _queue_tcp() (frame a protected
packet for a TCP transport). Everything else here runs on the control path: allocation and
growth of the transport, producer-stream and consumer slot arrays, and the checked slot lookups.
"""

from libc.stdint cimport int32_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset

from fastpath.bwe cimport bwe_free
from fastpath.congestion cimport arrival_log_free
from fastpath.netdefs cimport sockaddr
from fastpath.rtcp cimport TwccPacketStatus
from fastpath.srtp cimport SrtpSession
from fastpath.table cimport KeyTable
from fastpath.udp cimport UdpBatchSocket

DROP_REASON_NAMES = (
    "unknown_class", "truncated", "unknown_tuple", "no_srtp", "srtp_rtp", "srtp_rtcp",
    "rtp_malformed", "rtcp_malformed", "unknown_ssrc", "unknown_payload_type", "rewrite",
    "control_queue_full", "rtx_unsupported", "tcp_backlog", "rtx_padding", "red_malformed",
    "duplicate", "dd_malformed",
)


# Copies queued before a flush under load. A room's receive batch makes copies for each destination
# spread over its whole fan-out (stream by stream); a flush that holds more of them groups more of a
# destination's copies into one GSO message per size (udp.pyx). 1,024 is sendmmsg's limit (UIO_MAXIOV).
FORWARDER_TX_SLOTS = 1024


cdef class ForwarderState:
    """Every attribute of the Forwarder, allocated and freed here; the stages above add behaviour only."""

    def __cinit__(self, sock, on_control):
        self.sock = UdpBatchSocket(sock, tx_slots=FORWARDER_TX_SLOTS)
        # transport-cc reports when each packet reached us, not when a busy loop read it
        self.sock.enable_rx_timestamps()
        self.flush_every = self.sock.tx_slots
        self._on_control = on_control
        self._control = []
        self._events = []
        self._refs = {}
        self.tuples = KeyTable()
        self.producer_ssrcs = KeyTable()
        self.consumer_ssrcs = KeyTable()
        self.transport_capacity = 0
        self.stream_capacity = 0
        self.consumer_capacity = 0
        self.transports = NULL
        self.streams = NULL
        self.consumers = NULL
        memset(self.drops, 0, sizeof(self.drops))
        # a receive batch holds at most rx_slots media packets
        self.pending_capacity = self.sock.rx_slots
        self.pending_count = 0
        self.pending = <PendingPacket*>calloc(self.pending_capacity, sizeof(PendingPacket))
        self.twcc_statuses = <TwccPacketStatus*>calloc(TWCC_MAX_STATUSES, sizeof(TwccPacketStatus))
        if self.pending == NULL or self.twcc_statuses == NULL:
            raise MemoryError()
        self._grow(KIND_TRANSPORT)
        self._grow(KIND_STREAM)
        self._grow(KIND_CONSUMER)

    def __dealloc__(self):
        cdef int i
        if self.transports != NULL:
            for i in range(self.transport_capacity):
                free(self.transports[i].tcp_out)
                bwe_free(&self.transports[i].bwe)
                arrival_log_free(&self.transports[i].arrivals)
        if self.streams != NULL:
            for i in range(self.stream_capacity):
                free(self.streams[i].consumers)
                self._free_history(&self.streams[i])
        free(self.pending)
        free(self.twcc_statuses)
        free(self.transports)
        free(self.streams)
        free(self.consumers)

    cdef int _grow(self, int kind) except -1:
        cdef int old, new
        cdef void* p
        if kind == KIND_TRANSPORT:
            old = self.transport_capacity
            new = old * 2 if old else 16
            p = realloc(self.transports, new * sizeof(TransportState))
            if p == NULL:
                raise MemoryError()
            self.transports = <TransportState*>p
            memset(&self.transports[old], 0, (new - old) * sizeof(TransportState))
            self.transport_capacity = new
        elif kind == KIND_STREAM:
            old = self.stream_capacity
            new = old * 2 if old else 16
            p = realloc(self.streams, new * sizeof(ProducerStream))
            if p == NULL:
                raise MemoryError()
            self.streams = <ProducerStream*>p
            memset(&self.streams[old], 0, (new - old) * sizeof(ProducerStream))
            self.stream_capacity = new
        else:
            old = self.consumer_capacity
            new = old * 2 if old else 64
            p = realloc(self.consumers, new * sizeof(ConsumerState))
            if p == NULL:
                raise MemoryError()
            self.consumers = <ConsumerState*>p
            memset(&self.consumers[old], 0, (new - old) * sizeof(ConsumerState))
            self.consumer_capacity = new
        return 0

    cdef TransportState* _transport(self, int slot) except NULL:
        if not 0 <= slot < self.transport_capacity or not self.transports[slot].used:
            raise KeyError(f"no transport {slot}")
        return &self.transports[slot]

    cdef ProducerStream* _stream(self, int slot) except NULL:
        if not 0 <= slot < self.stream_capacity or not self.streams[slot].used:
            raise KeyError(f"no producer stream {slot}")
        return &self.streams[slot]

    cdef ConsumerState* _consumer(self, int slot) except NULL:
        if not 0 <= slot < self.consumer_capacity or not self.consumers[slot].used:
            raise KeyError(f"no consumer {slot}")
        return &self.consumers[slot]

    cdef void _free_history(self, ProducerStream* s) noexcept:
        free(s.history)
        free(s.history_len)
        free(s.history_seq)
        free(s.dd)
        s.dd = NULL
        s.history = NULL
        s.history_len = NULL
        s.history_seq = NULL

    # ---- output every stage shares ------------------------------------------------------

    cdef void _send_rtcp(self, int32_t t, unsigned char* buf, int length) noexcept nogil:
        cdef TransportState* tr = &self.transports[t]
        cdef unsigned char* dst
        if not (tr.has_tuple and tr.has_srtp) or length > self.sock.slot_size - 64:
            return
        dst = self.sock.tx_slot()
        memcpy(dst, buf, length)
        if tr.srtp_out != NULL and (<SrtpSession>tr.srtp_out).protect_rtcp(dst, &length, self.sock.slot_size) != 0:
            self.drops[DROP_SRTP_RTCP] += 1
            return
        if tr.is_tcp:
            if not self._queue_tcp(tr, dst, length):
                return
        elif tr.has_rtcp_tuple:
            self.sock.tx_commit(length, <const sockaddr*>&tr.rtcp_remote, tr.rtcp_remote_len)
        else:
            self.sock.tx_commit(length, <const sockaddr*>&tr.remote, tr.remote_len)
        tr.rtcp_out_packets += 1

    cdef bint _queue_tcp(self, TransportState* tr, const unsigned char* packet, int length) noexcept nogil:
        """Append one RFC 4571 frame (16-bit length, then the packet) to the transport's TCP output."""
        if tr.tcp_out_len + 2 + length > TCP_OUTPUT_BYTES:
            self.drops[DROP_TCP_BACKLOG] += 1
            return 0
        tr.tcp_out[tr.tcp_out_len] = <unsigned char>(length >> 8)
        tr.tcp_out[tr.tcp_out_len + 1] = <unsigned char>length
        memcpy(tr.tcp_out + tr.tcp_out_len + 2, packet, length)
        if tr.tcp_out_len == 0:
            self.tcp_pending += 1
        tr.tcp_out_len += 2 + length
        return 1
