# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Route stage: drain the worker's socket, find each packet's stream, and fan it out to consumers.

One Forwarder per worker process. Per received media packet it runs, without
creating a Python object: demux by remote tuple, SRTP unprotect, RTP parse,
producer lookup by SSRC, then for every consumer of that stream the layer
decision, rewrite, SRTP protect and queueing into the socket's send batch.
STUN, DTLS and the first packet of an unknown SSRC go up to Python, bounded
per drain, since they are rare and belong to the control plane; a packet from
an unknown address while a comedia transport waits goes up at once, mid-batch.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove, memset

from fastpath.bwe cimport (
    bwe_available,
    bwe_free,
    bwe_on_feedback,
    bwe_on_loss,
    bwe_on_remb,
    bwe_on_sent,
    bwe_track_sent,
)
from fastpath.clock cimport monotonic_ns
from fastpath.codecs cimport CODEC_VP8, VP8_KEEP, PayloadInfo, parse_payload, vp8_rewrite_picture_id
from fastpath.demux cimport (
    PACKET_DTLS,
    PACKET_RTP,
    PACKET_STUN,
    PacketClass,
    address_key,
    classify_first_byte,
)
from fastpath.netdefs cimport sockaddr, sockaddr_storage, socklen_t
from fastpath.rewrite cimport (
    RewriteParams,
    rewrite_rtp_to,
    seq_rewrite_init,
    seq_rewrite_out,
    seq_rewrite_sync,
    set_transport_seq,
    ts_rewrite_init,
    ts_rewrite_out,
    ts_rewrite_sync,
)
from fastpath.rtcp cimport (
    RTCP_BYE,
    RTCP_PSFB,
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RR,
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RTCP_RTPFB_TWCC,
    RTCP_SR,
    RtcpFeedback,
    RtcpItem,
    RtcpRemb,
    RtcpReportBlock,
    RtcpSenderInfo,
    RtcpTwcc,
    TwccPacketStatus,
    ntp_compact,
    ntp_now,
    recv_stats_init,
    recv_stats_on_sr,
    recv_stats_report_block,
    recv_stats_update,
    rtcp_build_bye,
    rtcp_build_pli,
    rtcp_build_nack,
    rtcp_build_rr,
    rtcp_build_sr,
    rtcp_next,
    rtcp_parse_bye,
    rtcp_parse_feedback,
    rtcp_parse_nack,
    rtcp_parse_remb,
    rtcp_parse_report_blocks,
    rtcp_parse_sr,
    rtcp_parse_twcc,
    rtcp_twcc_decode,
)
from fastpath.rtp cimport (
    RtpHeader,
    find_extension,
    is_rtcp,
    parse_rtp,
    read_u16,
    set_payload_type,
    set_sequence_number,
    set_ssrc,
    write_u16,
)
from fastpath.srtp cimport SrtpSession
from fastpath.table cimport KeyTable, TableKey
from fastpath.udp cimport MSG_TRUNC, UdpBatchSocket, sockaddr_from_tuple, sockaddr_to_tuple

DROP_REASON_NAMES = (
    "unknown_class", "truncated", "unknown_tuple", "no_srtp", "srtp_rtp", "srtp_rtcp",
    "rtp_malformed", "rtcp_malformed", "unknown_ssrc", "unknown_payload_type", "rewrite",
    "control_queue_full", "rtx_unsupported", "tcp_backlog", "rtx_padding",
)

cdef enum:
    KIND_TRANSPORT = 0
    KIND_STREAM = 1
    KIND_CONSUMER = 2
    # a drain hands the loop back after this many batches, so a flood cannot stall it
    MAX_BATCHES_PER_DRAIN = 64
    # ...or after this long, so control work (signaling, DTLS) is never starved under overload
    MAX_DRAIN_NS = 5000000
    # a lightly loaded batch flushes every this many copies: the first consumer's copy does not
    # wait for every other copy to be protected
    LIGHT_LOAD_BATCH = 4
    LIGHT_LOAD_FLUSH = 32
    RTCP_SCRATCH = 1500
    ACTIVE_LAYER_NS = 2000000000
    # packets of one transport-cc feedback looked at; Chrome reports well under 200 at a time
    TWCC_MAX_STATUSES = 1024
    MAX_REPORT_BLOCKS = 31


# going up a layer needs this much more room than the layer's bitrate, so a layer that only just
# fits is not taken and left again at every update
cdef double UPGRADE_MARGIN = 1.15


cdef inline uint32_t clock_units(uint64_t ns, uint32_t clock_rate) noexcept nogil:
    # microseconds first: ns * 90000 would overflow 64 bits after a few days of uptime
    return <uint32_t>((ns // 1000) * clock_rate // 1000000)


cdef inline void picture_id_sync(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    """On a switch, map the new layer's VP8 picture id and TL0PICIDX to continue ours (RFC 7741 §4.2)."""
    if info.picture_id < 0:
        return
    if c.pid_started:
        c.pid_offset = <int32_t>((c.last_picture_id + 1 - info.picture_id) & 0x7FFF)
        c.tl0_offset = (c.last_tl0picidx + 1 - info.tl0picidx) & 0xFF if info.tl0picidx >= 0 else 0
    else:
        c.pid_offset = 0
        c.tl0_offset = 0
        c.pid_started = 1


cdef inline int32_t picture_id_out(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    cdef int32_t mask = 0x7F if info.picture_id_bits == 7 else 0x7FFF
    c.last_picture_id = (info.picture_id + c.pid_offset) & mask
    return c.last_picture_id


cdef inline int tl0picidx_out(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    if info.tl0picidx < 0:
        return VP8_KEEP
    c.last_tl0picidx = (info.tl0picidx + c.tl0_offset) & 0xFF
    return c.last_tl0picidx


cdef inline double smoothed_bitrate(double previous, uint64_t total_bytes, uint64_t* mark,
                                    double seconds) noexcept nogil:
    """The bitrate since the mark (moved to total_bytes), averaged with the previous one."""
    cdef double rate = (total_bytes - mark[0]) * 8.0 / seconds if seconds > 0 else previous
    mark[0] = total_bytes
    return rate if previous == 0 else 0.5 * (previous + rate)


cdef inline void ssrc_key(TableKey* key, uint32_t ssrc, int32_t transport) noexcept nogil:
    key.a = ssrc
    key.b = <uint64_t>transport
    key.c = 0


cdef class Forwarder:
    """The packet path of one worker: owns the batch socket, the lookup tables and all stream state."""

    def __cinit__(self, sock, on_control):
        self.sock = UdpBatchSocket(sock)
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

    # ---- the packet path -------------------------------------------------------------

    def drain(self):
        """Read the socket until it is empty (or a bounded number of batches), forwarding media."""
        cdef int n, i, batches = 0, length
        cdef unsigned char* data
        cdef PacketClass kind
        cdef TableKey key
        cdef int32_t t
        cdef uint64_t now
        cdef uint64_t started = monotonic_ns()
        cdef UdpBatchSocket sock = self.sock
        self.unknown_ssrc_budget = MAX_UNKNOWN_SSRC_PER_DRAIN
        while batches < MAX_BATCHES_PER_DRAIN:
            n = sock.recv_batch()
            if n <= 0:
                break
            batches += 1
            now = monotonic_ns()
            self.flush_every = LIGHT_LOAD_FLUSH if n <= LIGHT_LOAD_BATCH else sock.tx_slots
            for i in range(n):
                if sock.rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                    self.drops[DROP_TRUNCATED] += 1
                    continue
                data = sock.rx_data(i)
                length = sock.rx_len(i)
                kind = classify_first_byte(data[0]) if length > 0 else <PacketClass>0
                if kind == PACKET_RTP:
                    if address_key(sock.rx_addr(i), &key) < 0:
                        self.drops[DROP_UNKNOWN_TUPLE] += 1
                        continue
                    t = self.tuples.lookup(&key)
                    if t < 0:
                        self._unknown_tuple(data, length, sock.rx_addr(i))
                    elif is_rtcp(data, length):
                        self._handle_rtcp(t, data, length, now)
                    else:
                        self._handle_rtp(t, data, length, now)
                elif kind == PACKET_STUN or kind == PACKET_DTLS:
                    if len(self._control) < MAX_CONTROL_PER_DRAIN:
                        self._control.append((
                            "stun" if kind == PACKET_STUN else "dtls",
                            PyBytes_FromStringAndSize(<char*>data, length),
                            sockaddr_to_tuple(sock.rx_addr(i)),
                        ))
                    else:
                        self.drops[DROP_CONTROL_QUEUE_FULL] += 1
                else:
                    self.drops[DROP_UNKNOWN_CLASS] += 1
            # interleave: what this batch produced leaves before the next batch is read
            self._fan_out(now)
            sock.flush()
            if n < sock.rx_slots or monotonic_ns() - started > MAX_DRAIN_NS:
                break
        self._collect_events()
        if self.tcp_pending:
            self._events.append(("tcp-output", -1, 0))
        if self._control or self._events:
            control, events = self._control, self._events
            self._control, self._events = [], []
            self._on_control(control, events)
        return batches

    cdef void _unknown_tuple(self, unsigned char* data, int length, const sockaddr* addr) noexcept:
        # A plain transport in comedia mode learns its remote from the first packet; Python decides,
        # and at once rather than after the drain: the transport it picks claims the tuple in
        # self.tuples and takes this packet through inject(), so the packets right behind it, in this
        # batch and the drain's later ones, are found there as its media. Queued until the end of the
        # drain, they would all have met a transport no longer waiting (or the budget) and been lost.
        # The budget bounds the Python calls a flood from unknown addresses costs; the rest is dropped.
        if self.comedia_waiting > 0 and self.unknown_ssrc_budget > 0:
            self.unknown_ssrc_budget -= 1
            self._on_control([("rtp-tuple", PyBytes_FromStringAndSize(<char*>data, length),
                               sockaddr_to_tuple(addr))], [])
        else:
            self.drops[DROP_UNKNOWN_TUPLE] += 1

    cdef void _handle_rtp(self, int32_t t, unsigned char* data, int length, uint64_t now) noexcept:
        cdef TransportState* tr = &self.transports[t]
        cdef RtpHeader h
        cdef TableKey key
        cdef int32_t slot
        cdef ProducerStream* s
        cdef PayloadInfo info
        cdef bint keyframe = 0
        cdef int level_offset = 0
        if not tr.has_srtp:
            self.drops[DROP_NO_SRTP] += 1
            return
        if tr.srtp_in != NULL and (<SrtpSession>tr.srtp_in).unprotect_rtp(data, &length, self.sock.slot_size) != 0:
            self.drops[DROP_SRTP_RTP] += 1
            tr.srtp_failures += 1
            return
        if parse_rtp(data, length, &h) < 0:
            self.drops[DROP_RTP_MALFORMED] += 1
            return
        tr.rtp_in_packets += 1
        tr.rtp_in_bytes += length
        tr.last_in_ns = now
        ssrc_key(&key, h.ssrc, t)
        slot = self.producer_ssrcs.lookup(&key)
        if slot < 0:
            key.c = 1  # RTX SSRCs are registered with c = 1
            slot = self.producer_ssrcs.lookup(&key)
            if slot >= 0:
                if not self._unwrap_rtx(&self.streams[slot], data, &length, &h):
                    return
            elif self.unknown_ssrc_budget > 0 and len(self._control) < MAX_CONTROL_PER_DRAIN:
                # the first packets of a new SSRC go up so Python can match it by MID/RID
                self.unknown_ssrc_budget -= 1
                self._control.append(("rtp", PyBytes_FromStringAndSize(<char*>data, length), t))
                return
            else:
                self.drops[DROP_UNKNOWN_SSRC] += 1
                return
        s = &self.streams[slot]
        if s.nack_enabled:
            self._detect_loss(s, h.sequence_number, now)
        recv_stats_update(&s.stats, h.sequence_number, h.timestamp, clock_units(now, s.clock_rate))
        s.packets += 1
        s.bytes += length
        s.last_packet_ns = now
        if s.history != NULL and length <= HISTORY_PACKET_BYTES:
            memcpy(s.history + <size_t>(h.sequence_number % HISTORY_PACKETS) * HISTORY_PACKET_BYTES, data, length)
            s.history_len[h.sequence_number % HISTORY_PACKETS] = <uint16_t>length
            s.history_seq[h.sequence_number % HISTORY_PACKETS] = h.sequence_number
        info.picture_id = -1
        if s.is_video and parse_payload(s.codec, data + h.header_len, h.payload_len, &info) >= 0:
            keyframe = info.is_keyframe > 0
            if keyframe:
                s.keyframes += 1
        elif s.audio_level_ext_id and find_extension(data, &h, s.audio_level_ext_id, &level_offset) >= 1:
            # RFC 6464 §3: the low 7 bits are the level in -dBov (127: silence)
            s.level_sum += data[level_offset] & 0x7F
            s.level_count += 1
        if not s.paused:
            self._queue_forward(slot, data, &h, &info, keyframe, now)

    cdef bint _unwrap_rtx(self, ProducerStream* s, unsigned char* data, int* length, RtpHeader* h) noexcept nogil:
        """Turn an RTX packet (RFC 4588 §4) back into the original: SSRC, payload type, OSN as sequence number."""
        cdef uint16_t osn
        if s.rtx_payload_type == 0 or h.payload_type != s.rtx_payload_type:
            self.drops[DROP_RTX_UNSUPPORTED] += 1
            return 0
        if h.payload_len < 2:
            # padding-only RTX is bandwidth probing, nothing to forward
            self.drops[DROP_RTX_PADDING] += 1
            return 0
        osn = read_u16(data + h.header_len)
        memmove(data + h.header_len, data + h.header_len + 2, length[0] - h.header_len - 2)
        length[0] -= 2
        set_ssrc(data, s.ssrc)
        set_sequence_number(data, osn)
        set_payload_type(data, s.media_payload_type)
        if parse_rtp(data, length[0], h) < 0:
            self.drops[DROP_RTP_MALFORMED] += 1
            return 0
        s.rtx_received += 1
        return 1

    cdef void _detect_loss(self, ProducerStream* s, uint16_t seq, uint64_t now) noexcept nogil:
        """Ask the producer at once for packets a jump in sequence numbers skipped (RFC 4585 §6.2.1)."""
        cdef uint16_t gap, k
        cdef uint16_t lost[MAX_NACKED_PER_PACKET]
        cdef unsigned char buf[RTCP_SCRATCH]
        cdef int n
        if not s.stats.started:
            return
        gap = <uint16_t>(seq - s.stats.max_seq)
        if gap < 2 or gap > MAX_NACKED_PER_PACKET:
            return
        for k in range(1, gap):
            lost[k - 1] = <uint16_t>(s.stats.max_seq + k)
        n = rtcp_build_nack(buf, RTCP_SCRATCH, self.transports[s.transport].rtcp_ssrc, s.ssrc, lost, gap - 1)
        if n > 0:
            s.nacks_sent += 1
            self._send_rtcp(s.transport, buf, n)

    cdef void _queue_forward(self, int32_t stream_slot, const unsigned char* data, const RtpHeader* h,
                             const PayloadInfo* info, bint keyframe, uint64_t now) noexcept nogil:
        """Hold a packet for _fan_out(); a full queue is fanned out first."""
        cdef PendingPacket* p
        if self.streams[stream_slot].consumer_count == 0:
            return
        if self.pending_count == self.pending_capacity:
            self._fan_out(now)
        p = &self.pending[self.pending_count]
        p.stream = stream_slot
        p.data = data
        p.h = h[0]
        p.info = info[0]
        p.keyframe = keyframe
        self.pending_count += 1

    cdef void _fan_out(self, uint64_t now) noexcept nogil:
        """Forward the held packets consumer by consumer: each consumer's copies of a batch are
        consecutive in the send queue, so UDP GSO sends them as one message (one route lookup,
        one pass through the stack) instead of one datagram each. A consumer sees the packets of
        all its layers in the order they arrived, so its layer switches, numbering and key frame
        waits are as if each packet were forwarded on its own."""
        cdef int first, i, k, layer, count = self.pending_count
        cdef int32_t stream, held
        cdef ProducerStream* s
        cdef ConsumerState* c
        self.fan_out_round += 1
        for first in range(count):
            stream = self.pending[first].stream
            if stream < 0:
                continue
            s = &self.streams[stream]
            for k in range(s.consumer_count):
                c = &self.consumers[s.consumers[k]]
                if c.fan_out_round == self.fan_out_round:
                    continue  # already served through another of its layers
                c.fan_out_round = self.fan_out_round
                if c.paused or c.producer_paused:
                    continue
                for i in range(first, count):
                    held = self.pending[i].stream
                    if held < 0:
                        continue  # fanned out already, to every consumer of its stream
                    for layer in range(c.layer_count):
                        if c.streams[layer] == held:
                            self._forward_to(c, self.streams[held].spatial_layer, &self.pending[i], now)
                            break
            for i in range(first, count):
                if self.pending[i].stream == stream:
                    self.pending[i].stream = -1
        self.pending_count = 0

    cdef void _forward_to(self, ConsumerState* c, int layer, const PendingPacket* p, uint64_t now) noexcept nogil:
        """The layer decision, rewrite and send of one packet for one consumer."""
        cdef int out_seq
        cdef uint8_t pt
        cdef uint32_t gap
        if layer != c.current_layer:
            if layer != c.target_layer or (c.is_video and not p.keyframe):
                return
            if not (self.transports[c.transport].has_tuple and self.transports[c.transport].has_srtp):
                # a key frame the receiver cannot get yet must not start the stream
                return
            # switch on a key frame of the target layer; numbering stays continuous
            gap = clock_units(now - c.last_out_ns, c.clock_rate) if c.last_out_ns else 0
            if gap == 0:
                gap = 1
            seq_rewrite_sync(&c.seq, p.h.sequence_number)
            ts_rewrite_sync(&c.ts, p.h.timestamp, gap)
            picture_id_sync(c, &p.info)
            c.current_layer = layer
            c.layers_changed = 1
            self.events_pending = 1
        out_seq = seq_rewrite_out(&c.seq, p.h.sequence_number)
        if out_seq < 0:
            return
        pt = c.pt_map[p.h.payload_type & 0x7F]
        if pt == 0xFF:
            self.drops[DROP_UNKNOWN_PT] += 1
            return
        c.params.payload_type = pt
        if self._send_copy(c, p.data, &p.h, &p.info, <uint16_t>out_seq, ts_rewrite_out(&c.ts, p.h.timestamp), 0):
            c.last_out_ns = now
            c.last_out_ts = c.params.timestamp

    cdef bint _send_copy(self, ConsumerState* c, const unsigned char* data, const RtpHeader* h,
                         const PayloadInfo* info, uint16_t out_seq, uint32_t out_ts, bint as_rtx) noexcept nogil:
        """Rewrite one packet for a consumer, protect it with its transport's context, queue it.

        as_rtx: send it as a retransmission on the consumer's RTX stream (RFC 4588 §4): RTX
        SSRC, payload type and sequence number, the original sequence number first in the payload.
        """
        cdef TransportState* ct = &self.transports[c.transport]
        cdef int slot_size = self.sock.slot_size
        cdef unsigned char* dst
        cdef RtpHeader out
        cdef int n
        cdef uint16_t twcc_seq = 0
        if not (ct.has_tuple and ct.has_srtp):
            return 0
        c.params.sequence_number = out_seq
        c.params.timestamp = out_ts
        if as_rtx:
            c.params.ssrc = c.rtx_ssrc
            c.params.payload_type = c.rtx_payload_type
            c.params.sequence_number = c.rtx_seq
        dst = self.sock.tx_slot()
        # room for the SRTP trailer, and for the two bytes of an RTX payload header
        n = rewrite_rtp_to(data, h, dst, slot_size - 66, &c.params, &out)
        c.params.ssrc = c.ssrc
        if n < 0:
            self.drops[DROP_REWRITE] += 1
            return 0
        if c.twcc_ext_id:
            twcc_seq = ct.twcc_seq
            set_transport_seq(dst, &out, c.twcc_ext_id, twcc_seq)
            ct.twcc_seq += 1
        if c.pid_started and info.picture_id >= 0 and c.codec == CODEC_VP8:
            vp8_rewrite_picture_id(dst + out.header_len, out.payload_len,
                                   picture_id_out(c, info), tl0picidx_out(c, info))
        if as_rtx:
            memmove(dst + out.header_len + 2, dst + out.header_len, n - out.header_len)
            write_u16(dst + out.header_len, out_seq)
            n += 2
            c.rtx_seq += 1
        if ct.srtp_out != NULL and (<SrtpSession>ct.srtp_out).protect_rtp(dst, &n, slot_size) != 0:
            self.drops[DROP_SRTP_RTP] += 1
            return 0
        if c.twcc_ext_id:
            bwe_on_sent(&ct.bwe, twcc_seq, n, monotonic_ns())
        if ct.is_tcp:
            if not self._queue_tcp(ct, dst, n):
                return 0
        else:
            self.sock.tx_commit(n, <const sockaddr*>&ct.remote, ct.remote_len)
            if self.sock.tx_count >= self.flush_every:
                self.sock.flush()
        ct.rtp_out_packets += 1
        ct.rtp_out_bytes += n
        c.packets += 1
        c.bytes += n
        self.forwarded_packets += 1
        self.forwarded_bytes += n
        return 1

    cdef void _retransmit(self, ConsumerState* c, const unsigned char* data, const RtcpItem* item) noexcept nogil:
        """Answer a generic NACK (RFC 4585 §6.2.1) from the stream's history, with the original numbering.

        An output sequence number maps back to the input one through the consumer's current
        offset; packets sent before the last layer switch or resume are not resent.
        """
        cdef uint16_t lost[MAX_NACKED_PER_PACKET]
        cdef int count, k, stream, slot
        cdef uint16_t in_seq
        cdef ProducerStream* s
        cdef RtpHeader h
        cdef PayloadInfo info
        cdef unsigned char* stored
        cdef int32_t last_picture_id
        cdef int last_tl0picidx
        if c.current_layer < 0 or c.streams[c.current_layer] < 0:
            return
        stream = c.streams[c.current_layer]
        s = &self.streams[stream]
        if s.history == NULL:
            return
        count = rtcp_parse_nack(data, item, lost, MAX_NACKED_PER_PACKET)
        for k in range(count if count > 0 else 0):
            in_seq = <uint16_t>(lost[k] - c.seq.offset)
            # only what was forwarded since the last sync: [floor_in, max_in]
            if <uint16_t>(in_seq - c.seq.floor_in) > <uint16_t>(c.seq.max_in - c.seq.floor_in):
                continue
            slot = in_seq % HISTORY_PACKETS
            if s.history_len[slot] == 0 or s.history_seq[slot] != in_seq:
                continue
            stored = s.history + <size_t>slot * HISTORY_PACKET_BYTES
            if parse_rtp(stored, s.history_len[slot], &h) < 0:
                continue
            c.params.payload_type = c.pt_map[h.payload_type & 0x7F]
            if c.params.payload_type == 0xFF:
                continue
            info.picture_id = -1
            parse_payload(s.codec, stored + h.header_len, h.payload_len, &info)
            # a resend rewrites its picture id like the original but must not move the running one
            last_picture_id, last_tl0picidx = c.last_picture_id, c.last_tl0picidx
            if self._send_copy(c, stored, &h, &info, lost[k], <uint32_t>(h.timestamp + c.ts.offset),
                               c.rtx_ssrc != 0):
                c.retransmitted += 1
            c.last_picture_id, c.last_tl0picidx = last_picture_id, last_tl0picidx

    cdef void _handle_rtcp(self, int32_t t, unsigned char* data, int length, uint64_t now) noexcept nogil:
        cdef TransportState* tr = &self.transports[t]
        cdef RtcpItem item
        cdef RtcpSenderInfo sr
        cdef RtcpFeedback fb
        cdef RtcpReportBlock blocks[MAX_REPORT_BLOCKS]
        cdef TableKey key
        cdef int offset = 0, count, b
        cdef int32_t slot
        cdef ConsumerState* c
        cdef int layer
        cdef RtcpTwcc twcc
        cdef RtcpRemb remb
        cdef uint32_t bye_ssrcs[MAX_REPORT_BLOCKS]
        if not tr.has_srtp:
            self.drops[DROP_NO_SRTP] += 1
            return
        if tr.srtp_in != NULL and (<SrtpSession>tr.srtp_in).unprotect_rtcp(data, &length, self.sock.slot_size) != 0:
            self.drops[DROP_SRTP_RTCP] += 1
            tr.srtp_failures += 1
            return
        tr.rtcp_in_packets += 1
        tr.last_in_ns = now
        while True:
            offset = rtcp_next(data, length, offset, &item)
            if offset == 0:
                return
            if offset < 0:
                self.drops[DROP_RTCP_MALFORMED] += 1
                return
            if item.packet_type == RTCP_SR and rtcp_parse_sr(data, &item, &sr) >= 0:
                ssrc_key(&key, sr.ssrc, t)
                slot = self.producer_ssrcs.lookup(&key)
                if slot >= 0:
                    recv_stats_on_sr(&self.streams[slot].stats,
                                     ntp_compact((<uint64_t>sr.ntp_sec << 32) | sr.ntp_frac),
                                     ntp_compact(ntp_now()))
                    self.streams[slot].sr_ntp_compact = ntp_compact((<uint64_t>sr.ntp_sec << 32) | sr.ntp_frac)
                    self.streams[slot].sr_rtp_timestamp = sr.rtp_timestamp
            if item.packet_type == RTCP_SR or item.packet_type == RTCP_RR:
                count = rtcp_parse_report_blocks(data, &item, blocks, MAX_REPORT_BLOCKS)
                for b in range(count if count > 0 else 0):
                    ssrc_key(&key, blocks[b].ssrc, t)
                    slot = self.consumer_ssrcs.lookup(&key)
                    if slot >= 0:
                        c = &self.consumers[slot]
                        c.fraction_lost = blocks[b].fraction_lost
                        c.jitter = blocks[b].jitter
                        c.total_lost = blocks[b].total_lost
                        if tr.bwe.sent == NULL:
                            # no transport-cc on this transport: its receiver reports are what we have
                            bwe_on_loss(&tr.bwe, blocks[b].fraction_lost / 256.0, tr.out_bitrate_bps, now)
            elif item.packet_type == RTCP_BYE:
                count = rtcp_parse_bye(data, &item, bye_ssrcs, MAX_REPORT_BLOCKS)
                for b in range(count if count > 0 else 0):
                    ssrc_key(&key, bye_ssrcs[b], t)
                    slot = self.producer_ssrcs.lookup(&key)
                    if slot >= 0:
                        # the sender left this stream (RFC 3550 §6.3.7): no longer a layer to pick,
                        # without waiting ACTIVE_LAYER_NS for its packets to stop
                        self.streams[slot].last_packet_ns = 0
                        self.streams[slot].bye_received += 1
            elif item.packet_type == RTCP_RTPFB and item.count == RTCP_RTPFB_TWCC:
                if rtcp_parse_twcc(data, &item, &twcc) >= 0:
                    count = rtcp_twcc_decode(data, &item, self.twcc_statuses, TWCC_MAX_STATUSES)
                    if count > 0:
                        bwe_on_feedback(&tr.bwe, self.twcc_statuses, count, twcc.reference_time,
                                        tr.out_bitrate_bps, now)
            elif item.packet_type == RTCP_PSFB and item.count == RTCP_PSFB_APP:
                if rtcp_parse_remb(data, &item, &remb, NULL, 0) >= 0:
                    bwe_on_remb(&tr.bwe, remb.bitrate, tr.out_bitrate_bps, now)
            elif item.packet_type == RTCP_PSFB or item.packet_type == RTCP_RTPFB:
                if rtcp_parse_feedback(data, &item, &fb) < 0:
                    continue
                ssrc_key(&key, fb.media_ssrc, t)
                slot = self.consumer_ssrcs.lookup(&key)
                if slot < 0:
                    continue
                c = &self.consumers[slot]
                if item.packet_type == RTCP_PSFB and (item.count == RTCP_PSFB_PLI or item.count == RTCP_PSFB_FIR):
                    if item.count == RTCP_PSFB_PLI:
                        c.pli_received += 1
                    else:
                        c.fir_received += 1
                    layer = c.current_layer if c.current_layer >= 0 else c.target_layer
                    if 0 <= layer < c.layer_count and c.streams[layer] >= 0:
                        self._request_keyframe(c.streams[layer], now, 0)
                elif item.packet_type == RTCP_RTPFB and item.count == RTCP_RTPFB_NACK:
                    c.nack_received += 1
                    self._retransmit(c, data, &item)

    cdef void _request_keyframe(self, int32_t stream_slot, uint64_t now, bint force) noexcept nogil:
        """Send a PLI (RFC 4585 §6.3.1) to the producer, at most one per stream per 500 ms."""
        cdef ProducerStream* s = &self.streams[stream_slot]
        cdef unsigned char buf[64]
        cdef int n
        if not s.used or not s.is_video:
            return
        if not force and s.last_keyframe_request_ns and now - s.last_keyframe_request_ns < KEYFRAME_REQUEST_INTERVAL_NS:
            return
        s.last_keyframe_request_ns = now
        n = rtcp_build_pli(buf, sizeof(buf), self.transports[s.transport].rtcp_ssrc, s.ssrc)
        if n > 0:
            s.pli_sent += 1
            self._send_rtcp(s.transport, buf, n)

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

    cdef void _collect_events(self) noexcept:
        cdef int i
        # layer switches are rare: scan the consumers only when one happened
        if not self.events_pending:
            return
        self.events_pending = 0
        for i in range(self.consumer_capacity):
            if self.consumers[i].used and self.consumers[i].layers_changed:
                self.consumers[i].layers_changed = 0
                self._events.append(("layerschange", i, self.consumers[i].current_layer))

    # ---- control: transports -------------------------------------------------------------

    def add_transport(self, uint32_t rtcp_ssrc) -> int:
        """Reserve a transport slot; RTCP we originate on it carries `rtcp_ssrc`."""
        cdef int i
        for i in range(self.transport_capacity):
            if not self.transports[i].used:
                break
        else:
            i = self.transport_capacity
            self._grow(KIND_TRANSPORT)
        memset(&self.transports[i], 0, sizeof(TransportState))
        self.transports[i].used = 1
        self.transports[i].rtcp_ssrc = rtcp_ssrc
        return i

    def set_transport_tuple(self, int slot, tuple addr):
        """Send to and accept media from `addr` (the selected ICE tuple, or a plain transport's remote)."""
        cdef TransportState* tr = self._transport(slot)
        self.clear_transport_tuple(slot)
        self._claim_tuple(slot, addr, &tr.remote, &tr.remote_len, &tr.tuple_key)
        tr.has_tuple = 1
        self._transport_ready(slot)

    cdef int _claim_tuple(self, int slot, tuple addr, sockaddr_storage* remote, socklen_t* remote_len,
                          TableKey* key) except -1:
        """Fill a remote address from `addr` and map its tuple to the transport (refused if taken)."""
        sockaddr_from_tuple(addr, self.sock.family, remote, remote_len)
        address_key(<const sockaddr*>remote, key)
        existing = self.tuples.lookup(key)
        if existing >= 0 and existing != slot:
            raise ValueError(f"tuple {addr} already belongs to transport {existing}")
        self.tuples.insert(key, slot)
        return 0

    def clear_transport_tuple(self, int slot):
        """Stop sending on the transport and forget its tuple (consent lost, transport closing)."""
        cdef TransportState* tr = self._transport(slot)
        if tr.has_tuple and not tr.is_tcp:
            self.tuples.remove(&tr.tuple_key)
        tr.has_tuple = 0
        tr.is_tcp = 0

    def set_transport_tcp(self, int slot):
        """Send on a TCP connection (ICE-TCP, RFC 6544): output is framed per RFC 4571 and taken by Python.

        Input from the connection arrives through inject().
        """
        cdef TransportState* tr = self._transport(slot)
        self.clear_transport_tuple(slot)
        if tr.tcp_out == NULL:
            tr.tcp_out = <unsigned char*>malloc(TCP_OUTPUT_BYTES)
            if tr.tcp_out == NULL:
                raise MemoryError()
        tr.tcp_out_len = 0
        tr.is_tcp = 1
        tr.has_tuple = 1
        self._transport_ready(slot)

    def take_tcp_output(self, int slot):
        """The framed bytes queued for a TCP transport since the last call (None when empty)."""
        cdef TransportState* tr = self._transport(slot)
        if tr.tcp_out == NULL or tr.tcp_out_len == 0:
            return None
        data = PyBytes_FromStringAndSize(<char*>tr.tcp_out, tr.tcp_out_len)
        tr.tcp_out_len = 0
        if self.tcp_pending > 0:
            self.tcp_pending -= 1
        return data

    def set_transport_srtp(self, int slot, SrtpSession inbound, SrtpSession outbound):
        """Install the SRTP contexts derived by DTLS (or given for a plain transport)."""
        cdef TransportState* tr = self._transport(slot)
        if inbound.outbound or not outbound.outbound:
            raise ValueError("need an inbound and an outbound SRTP session")
        self._refs[(slot, "srtp")] = (inbound, outbound)
        tr.srtp_in = <void*>inbound
        tr.srtp_out = <void*>outbound
        tr.has_srtp = 1
        self._transport_ready(slot)

    cdef void _transport_ready(self, int slot) noexcept:
        """A transport can now send: its video consumers waiting to start ask for a key frame."""
        cdef int i
        cdef ConsumerState* c
        if not (self.transports[slot].has_tuple and self.transports[slot].has_srtp):
            return
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.transport == slot and c.is_video and c.current_layer < 0 \
                    and not (c.paused or c.producer_paused):
                self._request_target_keyframe(c)

    def set_transport_plain(self, int slot):
        """Carry plain RTP/RTCP: no SRTP on this transport (PlainTransport without enableSrtp)."""
        cdef TransportState* tr = self._transport(slot)
        self._refs.pop((slot, "srtp"), None)
        tr.srtp_in = NULL
        tr.srtp_out = NULL
        tr.has_srtp = 1
        self._transport_ready(slot)

    def set_transport_rtcp_tuple(self, int slot, tuple addr):
        """Without rtcp-mux, RTCP comes from and goes to a second remote port (RFC 3550 §11)."""
        cdef TransportState* tr = self._transport(slot)
        self._clear_rtcp_tuple(tr)
        self._claim_tuple(slot, addr, &tr.rtcp_remote, &tr.rtcp_remote_len, &tr.rtcp_tuple_key)
        tr.has_rtcp_tuple = 1

    cdef void _clear_rtcp_tuple(self, TransportState* tr) noexcept:
        if tr.has_rtcp_tuple:
            self.tuples.remove(&tr.rtcp_tuple_key)
            tr.has_rtcp_tuple = 0

    def set_comedia_waiting(self, int count):
        """How many transports wait to learn their remote from a first packet (unknown tuples go up)."""
        self.comedia_waiting = count

    def remove_transport(self, int slot):
        """Free a transport slot; its streams and consumers must be removed first."""
        self.clear_transport_tuple(slot)
        self._clear_rtcp_tuple(self._transport(slot))
        self._refs.pop((slot, "srtp"), None)
        if self.transports[slot].tcp_out_len and self.tcp_pending > 0:
            self.tcp_pending -= 1
        free(self.transports[slot].tcp_out)
        bwe_free(&self.transports[slot].bwe)
        memset(&self.transports[slot], 0, sizeof(TransportState))

    cdef TransportState* _transport(self, int slot) except NULL:
        if not 0 <= slot < self.transport_capacity or not self.transports[slot].used:
            raise KeyError(f"no transport {slot}")
        return &self.transports[slot]

    # ---- control: producer streams ---------------------------------------------------------

    def add_producer_stream(self, int transport, uint32_t ssrc, uint32_t rtx_ssrc, int codec,
                            uint32_t clock_rate, int spatial_layer, bint is_video) -> int:
        """Register an incoming stream (one encoding of a producer) by SSRC on its transport."""
        cdef TableKey key
        cdef int i
        cdef ProducerStream* s
        self._transport(transport)
        ssrc_key(&key, ssrc, transport)
        if self.producer_ssrcs.lookup(&key) >= 0:
            raise ValueError(f"ssrc {ssrc} is already in use on this transport")
        for i in range(self.stream_capacity):
            if not self.streams[i].used:
                break
        else:
            i = self.stream_capacity
            self._grow(KIND_STREAM)
        s = &self.streams[i]
        free(s.consumers)
        memset(s, 0, sizeof(ProducerStream))
        s.used = 1
        s.transport = transport
        s.ssrc = ssrc
        s.rtx_ssrc = rtx_ssrc
        s.codec = codec
        s.clock_rate = clock_rate
        s.spatial_layer = spatial_layer
        s.is_video = is_video
        recv_stats_init(&s.stats, ssrc)
        if is_video:
            s.history = <unsigned char*>malloc(HISTORY_PACKETS * HISTORY_PACKET_BYTES)
            s.history_len = <uint16_t*>calloc(HISTORY_PACKETS, sizeof(uint16_t))
            s.history_seq = <uint16_t*>calloc(HISTORY_PACKETS, sizeof(uint16_t))
            if s.history == NULL or s.history_len == NULL or s.history_seq == NULL:
                self._free_history(s)
                raise MemoryError()
        self.producer_ssrcs.insert(&key, i)
        if rtx_ssrc:
            ssrc_key(&key, rtx_ssrc, transport)
            key.c = 1
            self.producer_ssrcs.insert(&key, i)
        return i

    def remove_producer_stream(self, int slot):
        """Forget a stream; consumers still attached stop receiving it."""
        cdef ProducerStream* s = self._stream(slot)
        cdef TableKey key
        cdef int k, layer
        cdef ConsumerState* c
        for k in range(s.consumer_count):
            c = &self.consumers[s.consumers[k]]
            for layer in range(c.layer_count):
                if c.streams[layer] == slot:
                    c.streams[layer] = NO_LAYER
        ssrc_key(&key, s.ssrc, s.transport)
        self.producer_ssrcs.remove(&key)
        if s.rtx_ssrc:
            ssrc_key(&key, s.rtx_ssrc, s.transport)
            key.c = 1
            self.producer_ssrcs.remove(&key)
        free(s.consumers)
        self._free_history(s)
        memset(s, 0, sizeof(ProducerStream))

    cdef void _free_history(self, ProducerStream* s) noexcept:
        free(s.history)
        free(s.history_len)
        free(s.history_seq)
        s.history = NULL
        s.history_len = NULL
        s.history_seq = NULL

    def set_stream_rtx_ssrc(self, int slot, uint32_t rtx_ssrc):
        """Learn a stream's RTX SSRC (from repaired-rid) so its packets are recognised."""
        cdef ProducerStream* s = self._stream(slot)
        cdef TableKey key
        if s.rtx_ssrc:
            ssrc_key(&key, s.rtx_ssrc, s.transport)
            key.c = 1
            self.producer_ssrcs.remove(&key)
        s.rtx_ssrc = rtx_ssrc
        ssrc_key(&key, rtx_ssrc, s.transport)
        key.c = 1
        self.producer_ssrcs.insert(&key, slot)

    def set_stream_audio_level_ext(self, int slot, int ext_id):
        """Read the RFC 6464 audio level of this stream's packets from extension `ext_id` (0: off)."""
        if not 0 <= ext_id < 256:
            raise ValueError("extension ids are 1..255")
        self._stream(slot).audio_level_ext_id = ext_id

    def take_audio_level(self, int slot):
        """The mean audio level (dBov, -127..0) since the last call, or None without samples."""
        cdef ProducerStream* s = self._stream(slot)
        cdef double mean
        if s.level_count == 0:
            return None
        mean = -(<double>s.level_sum / s.level_count)
        s.level_sum = 0
        s.level_count = 0
        return mean

    def set_stream_rtx_payload(self, int slot, int rtx_payload_type, int media_payload_type):
        """RTX packets of this stream carry `rtx_payload_type`; unwrapped they become `media_payload_type`.

        With RTX known the stream also NACKs the producer when packets go missing.
        """
        cdef ProducerStream* s = self._stream(slot)
        if not (0 < rtx_payload_type < 128 and 0 <= media_payload_type < 128):
            raise ValueError("payload types are 0..127")
        s.rtx_payload_type = rtx_payload_type
        s.media_payload_type = media_payload_type
        s.nack_enabled = s.is_video

    def set_stream_paused(self, int slot, bint paused):
        """A paused producer's packets are counted but not forwarded."""
        self._stream(slot).paused = paused

    def request_key_frame(self, int slot):
        """Ask the producer of this stream for a key frame now (PLI)."""
        self._stream(slot)
        self._request_keyframe(slot, monotonic_ns(), 1)
        self.sock.flush()

    cdef ProducerStream* _stream(self, int slot) except NULL:
        if not 0 <= slot < self.stream_capacity or not self.streams[slot].used:
            raise KeyError(f"no producer stream {slot}")
        return &self.streams[slot]

    # ---- control: consumers -----------------------------------------------------------------

    def add_consumer(self, int transport, uint32_t ssrc, int layer_count, dict pt_map, dict ext_map,
                     int twcc_ext_id, int codec, uint32_t clock_rate, bint is_video, bint paused,
                     int preferred_layer=-1, uint32_t rtx_ssrc=0, int rtx_payload_type=-1) -> int:
        """Create a consumer of `layer_count` spatial layers; streams are attached per layer as they appear.

        With rtx_ssrc and rtx_payload_type, retransmissions go out as RTX (RFC 4588).
        """
        cdef int i, old_pt, new_pt
        cdef ConsumerState* c
        cdef TableKey key
        self._transport(transport)
        if not 1 <= layer_count <= MAX_SPATIAL_LAYERS:
            raise ValueError("a consumer takes 1 to 3 spatial layers")
        ssrc_key(&key, ssrc, transport)
        if self.consumer_ssrcs.lookup(&key) >= 0:
            raise ValueError(f"ssrc {ssrc} is already used by a consumer on this transport")
        if not 0 <= twcc_ext_id < 256:
            raise ValueError("extension ids are 1..255")
        if rtx_ssrc and not (0 <= rtx_payload_type < 128 and rtx_ssrc != ssrc):
            raise ValueError("RTX needs a payload type 0..127 and an SSRC of its own")
        for i in range(self.consumer_capacity):
            if not self.consumers[i].used:
                break
        else:
            i = self.consumer_capacity
            self._grow(KIND_CONSUMER)
        c = &self.consumers[i]
        memset(c, 0, sizeof(ConsumerState))
        c.transport = transport
        c.ssrc = ssrc
        c.layer_count = layer_count
        for layer in range(MAX_SPATIAL_LAYERS):
            c.streams[layer] = NO_LAYER
        c.preferred_layer = layer_count - 1 if preferred_layer < 0 else min(preferred_layer, layer_count - 1)
        c.target_layer = c.preferred_layer
        c.current_layer = NO_LAYER if is_video else 0
        c.is_video = is_video
        c.paused = paused
        c.codec = codec
        c.clock_rate = clock_rate
        c.twcc_ext_id = twcc_ext_id
        c.params.ensure_ext_id = twcc_ext_id
        if twcc_ext_id and bwe_track_sent(&self.transports[transport].bwe) < 0:
            raise MemoryError()
        memset(c.pt_map, 0xFF, sizeof(c.pt_map))
        for old_pt, new_pt in pt_map.items():
            if not (0 <= old_pt < 128 and 0 <= new_pt < 128):
                raise ValueError("payload types are 0..127")
            c.pt_map[old_pt] = new_pt
        for old_id, new_id in ext_map.items():
            if not (0 < old_id < 256 and 0 <= new_id < 256):
                raise ValueError("extension ids are 1..255")
            c.params.ext_map[old_id] = new_id
        c.params.ssrc = ssrc
        c.rtx_ssrc = rtx_ssrc
        c.rtx_payload_type = <uint8_t>rtx_payload_type if rtx_ssrc else 0
        c.rtx_seq = <uint16_t>(rtx_ssrc >> 5)
        seq_rewrite_init(&c.seq, <uint16_t>(ssrc >> 7))
        ts_rewrite_init(&c.ts, ssrc * 2654435761u)
        self.consumer_ssrcs.insert(&key, i)
        c.used = 1
        return i

    def attach_stream(self, int consumer, int layer, int stream):
        """Feed a consumer's spatial layer from a producer stream (when the stream becomes known)."""
        cdef ConsumerState* c = self._consumer(consumer)
        cdef ProducerStream* s = self._stream(stream)
        cdef void* p
        if not 0 <= layer < c.layer_count:
            raise ValueError(f"layer {layer} out of range")
        if c.streams[layer] == stream:
            return
        if c.streams[layer] >= 0:
            self._detach(consumer, c.streams[layer])
        if s.consumer_count == s.consumer_capacity:
            p = realloc(s.consumers, (s.consumer_capacity * 2 + 4) * sizeof(int32_t))
            if p == NULL:
                raise MemoryError()
            s.consumers = <int32_t*>p
            s.consumer_capacity = s.consumer_capacity * 2 + 4
        s.consumers[s.consumer_count] = consumer
        s.consumer_count += 1
        c.streams[layer] = stream
        if c.is_video and layer == c.target_layer and c.current_layer != layer and not c.paused:
            self._request_keyframe(stream, monotonic_ns(), 1)
            self.sock.flush()

    cdef void _detach(self, int consumer, int stream) noexcept:
        cdef ProducerStream* s = &self.streams[stream]
        cdef int k
        for k in range(s.consumer_count):
            if s.consumers[k] == consumer:
                s.consumers[k] = s.consumers[s.consumer_count - 1]
                s.consumer_count -= 1
                return

    def remove_consumer(self, int slot):
        """Detach a consumer from its streams and free its slot."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef ProducerStream* s
        cdef TableKey key
        cdef int layer, k, n
        cdef unsigned char buf[64]
        cdef uint32_t ssrcs[2]
        for layer in range(c.layer_count):
            if c.streams[layer] >= 0:
                self._detach(slot, c.streams[layer])
        # the stream ends (RFC 3550 §6.3.7): an empty receiver report to start the compound, then BYE
        ssrcs[0] = c.ssrc
        ssrcs[1] = c.rtx_ssrc
        n = rtcp_build_rr(buf, sizeof(buf), c.ssrc, NULL, 0)
        if n > 0:
            k = rtcp_build_bye(buf + n, sizeof(buf) - n, ssrcs, 2 if c.rtx_ssrc else 1)
            if k > 0:
                self._send_rtcp(c.transport, buf, n + k)
                self.sock.flush()
        ssrc_key(&key, c.ssrc, c.transport)
        self.consumer_ssrcs.remove(&key)
        memset(c, 0, sizeof(ConsumerState))

    def set_consumer_paused(self, int slot, bint paused, bint producer_paused):
        """Pause or resume; a resumed video consumer waits for (and asks for) a key frame."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef bint was_flowing = not (c.paused or c.producer_paused)
        c.paused = paused
        c.producer_paused = producer_paused
        if c.is_video and not was_flowing and not (paused or producer_paused):
            c.current_layer = NO_LAYER
            self._request_target_keyframe(c)

    def set_consumer_preferred_layer(self, int slot, int spatial_layer):
        """Prefer a spatial layer (clipped to what the producer has); switching waits for a key frame."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef int max_layer = MAX_SPATIAL_LAYERS
        c.preferred_layer = max(0, min(spatial_layer, c.layer_count - 1))
        if bwe_available(&self.transports[c.transport].bwe) and c.target_layer >= 0:
            # going up waits for update_layers() to see what the transport's estimate affords
            max_layer = c.target_layer
        self._choose_target(slot, monotonic_ns(), max_layer)

    def update_layers(self):
        """Re-pick every video consumer's target layer (call ~2/s): the highest it prefers that is
        flowing and that its transport's bandwidth estimate affords, after what the transport's
        single-layer consumers (audio, plain video) take."""
        cdef int i
        cdef uint64_t now = monotonic_ns()
        cdef ConsumerState* c
        cdef TransportState* tr
        self._update_bitrates(now)
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if tr.used:
                tr.budget_bps = <int64_t>bwe_available(&tr.bwe)
                if tr.budget_bps == 0:
                    tr.budget_bps = -1
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.layer_count == 1 and c.streams[0] >= 0 and not (c.paused or c.producer_paused):
                tr = &self.transports[c.transport]
                if tr.budget_bps >= 0:
                    tr.budget_bps -= <int64_t>self.streams[c.streams[0]].bitrate_bps
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.is_video:
                self._choose_target(i, now, self._affordable_layer(c, now) if c.layer_count > 1
                                    else MAX_SPATIAL_LAYERS)
        self.sock.flush()

    cdef void _update_bitrates(self, uint64_t now) noexcept:
        """Each stream's and each transport's bitrate since the last update, smoothed."""
        cdef int i
        cdef double seconds = (now - self.rates_ns) / 1e9 if self.rates_ns else 0.0
        cdef ProducerStream* s
        cdef TransportState* tr
        for i in range(self.stream_capacity):
            s = &self.streams[i]
            if s.used:
                s.bitrate_bps = smoothed_bitrate(s.bitrate_bps, s.bytes, &s.rate_bytes_mark, seconds)
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if tr.used:
                tr.out_bitrate_bps = smoothed_bitrate(tr.out_bitrate_bps, tr.rtp_out_bytes,
                                                      &tr.rate_bytes_mark, seconds)
        self.rates_ns = now

    cdef int _affordable_layer(self, ConsumerState* c, uint64_t now) noexcept:
        """The highest flowing layer the consumer prefers that fits its transport's budget (which
        it then takes from), else its lowest flowing one; MAX_SPATIAL_LAYERS: nothing to limit."""
        cdef TransportState* tr = &self.transports[c.transport]
        cdef int layer, chosen = -1
        cdef double need
        cdef ProducerStream* s
        if tr.budget_bps < 0 or c.paused or c.producer_paused:
            return MAX_SPATIAL_LAYERS
        for layer in range(c.preferred_layer, -1, -1):
            if c.streams[layer] < 0:
                continue
            s = &self.streams[c.streams[layer]]
            if not (s.last_packet_ns and now - s.last_packet_ns < ACTIVE_LAYER_NS):
                continue
            chosen = layer
            need = s.bitrate_bps * (UPGRADE_MARGIN if layer > c.current_layer else 1.0)
            if need <= tr.budget_bps:
                break
        if chosen < 0:
            return MAX_SPATIAL_LAYERS
        tr.budget_bps -= <int64_t>self.streams[c.streams[chosen]].bitrate_bps
        return chosen

    cdef void _choose_target(self, int slot, uint64_t now, int max_layer) noexcept:
        cdef ConsumerState* c = &self.consumers[slot]
        cdef int layer, target = -1
        cdef ProducerStream* s
        for layer in range(min(c.preferred_layer, max_layer), -1, -1):
            if c.streams[layer] < 0:
                continue
            s = &self.streams[c.streams[layer]]
            if s.last_packet_ns and now - s.last_packet_ns < ACTIVE_LAYER_NS:
                target = layer
                break
        if target < 0:
            target = c.preferred_layer
        if target != c.target_layer:
            c.target_layer = target
            if target != c.current_layer:
                self._request_target_keyframe(c)
        elif target != c.current_layer and not (c.paused or c.producer_paused) and c.streams[target] >= 0:
            # still waiting for the key frame to switch on: ask again (rate-limited per stream)
            self._request_keyframe(c.streams[target], now, 0)

    cdef void _request_target_keyframe(self, ConsumerState* c) noexcept:
        if 0 <= c.target_layer < c.layer_count and c.streams[c.target_layer] >= 0:
            self._request_keyframe(c.streams[c.target_layer], monotonic_ns(), 1)
            self.sock.flush()

    cdef ConsumerState* _consumer(self, int slot) except NULL:
        if not 0 <= slot < self.consumer_capacity or not self.consumers[slot].used:
            raise KeyError(f"no consumer {slot}")
        return &self.consumers[slot]

    # ---- RTCP reports -------------------------------------------------------------------------

    def send_reports(self):
        """Receiver reports for every producer stream and sender reports for every consumer (RFC 3550 §6.4)."""
        cdef unsigned char buf[RTCP_SCRATCH]
        cdef RtcpReportBlock block
        cdef RtcpSenderInfo info
        cdef uint64_t now = monotonic_ns()
        cdef uint64_t ntp = ntp_now()
        cdef int i, n
        cdef ProducerStream* s
        cdef ConsumerState* c
        for i in range(self.stream_capacity):
            s = &self.streams[i]
            if not s.used or s.packets == 0:
                continue
            recv_stats_report_block(&s.stats, &block, ntp_compact(ntp))
            n = rtcp_build_rr(buf, RTCP_SCRATCH, self.transports[s.transport].rtcp_ssrc, &block, 1)
            if n > 0:
                self._send_rtcp(s.transport, buf, n)
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if not c.used or c.packets == 0:
                continue
            info.ssrc = c.ssrc
            info.ntp_sec = <uint32_t>(ntp >> 32)
            info.ntp_frac = <uint32_t>ntp
            info.rtp_timestamp = c.last_out_ts + clock_units(now - c.last_out_ns, c.clock_rate)
            info.packet_count = <uint32_t>c.packets
            info.octet_count = <uint32_t>c.bytes
            n = rtcp_build_sr(buf, RTCP_SCRATCH, &info, NULL, 0)
            if n > 0:
                self._send_rtcp(c.transport, buf, n)
        self.sock.flush()

    # ---- stats --------------------------------------------------------------------------------

    def counters(self) -> dict:
        """Worker-wide packet counters and drops by reason."""
        socket_counters = self.sock.counters()
        return {
            "forwardedPackets": self.forwarded_packets,
            "forwardedBytes": self.forwarded_bytes,
            "drops": {name: self.drops[i] for i, name in enumerate(DROP_REASON_NAMES)},
            "socket": socket_counters,
        }

    def transport_stats(self, int slot) -> dict:
        cdef TransportState* tr = self._transport(slot)
        return {
            "rtpPacketsReceived": tr.rtp_in_packets, "rtpBytesReceived": tr.rtp_in_bytes,
            "rtpPacketsSent": tr.rtp_out_packets, "rtpBytesSent": tr.rtp_out_bytes,
            "rtcpPacketsReceived": tr.rtcp_in_packets, "rtcpPacketsSent": tr.rtcp_out_packets,
            "srtpFailures": tr.srtp_failures,
            "lastPacketAgeMs": (monotonic_ns() - tr.last_in_ns) // 1000000 if tr.last_in_ns else None,
            "sendBitrate": round(tr.out_bitrate_bps),
            # None until the receiver's feedback shows a limit
            "availableOutgoingBitrate": bwe_available(&tr.bwe) or None,
            "bweFeedbacks": tr.bwe.feedbacks, "bweDecreases": tr.bwe.decreases,
        }

    def stream_stats(self, int slot) -> dict:
        cdef ProducerStream* s = self._stream(slot)
        cdef RtcpReportBlock block
        cdef RecvStats copy = s.stats
        recv_stats_report_block(&copy, &block, ntp_compact(ntp_now()))
        return {
            "ssrc": s.ssrc, "packetCount": s.packets, "byteCount": s.bytes,
            "packetsLost": block.total_lost, "fractionLost": block.fraction_lost,
            "jitter": block.jitter, "keyFrames": s.keyframes, "pliCount": s.pli_sent,
            "nackCount": s.nacks_sent, "rtxPacketsReceived": s.rtx_received,
            "spatialLayer": s.spatial_layer, "consumers": s.consumer_count,
            "bitrate": round(s.bitrate_bps), "byeReceived": s.bye_received,
        }

    def consumer_stats(self, int slot) -> dict:
        cdef ConsumerState* c = self._consumer(slot)
        return {
            "ssrc": c.ssrc, "packetCount": c.packets, "byteCount": c.bytes,
            "pliCount": c.pli_received, "firCount": c.fir_received, "nackCount": c.nack_received,
            "retransmittedPackets": c.retransmitted,
            "fractionLost": c.fraction_lost, "packetsLost": c.total_lost, "jitter": c.jitter,
            "currentLayer": c.current_layer, "targetLayer": c.target_layer,
            "preferredLayer": c.preferred_layer, "paused": bool(c.paused),
            **({"rtxSsrc": c.rtx_ssrc} if c.rtx_ssrc else {}),
        }

    def table_sizes(self) -> dict:
        """How many entries every table holds (tests assert zero after a close cascade)."""
        cdef int i, transports = 0, streams = 0, consumers = 0
        for i in range(self.transport_capacity):
            transports += self.transports[i].used
        for i in range(self.stream_capacity):
            streams += self.streams[i].used
        for i in range(self.consumer_capacity):
            consumers += self.consumers[i].used
        return {
            "transports": transports, "streams": streams, "consumers": consumers,
            "tuples": len(self.tuples), "producerSsrcs": len(self.producer_ssrcs),
            "consumerSsrcs": len(self.consumer_ssrcs), "srtpRefs": len(self._refs),
        }

    def inject(self, int slot, bytes data):
        """Handle a packet Python held back (a comedia transport's first) as if just received.

        Also called from inside drain(), by the upcall of an unknown tuple: the batch's media
        queued so far is fanned out first, so each consumer still sees arrival order."""
        cdef unsigned char buf[2048]
        cdef int length = len(data)
        self._transport(slot)
        if length > 2048 - 64 or length < 2:
            raise ValueError("packet size out of range")
        memcpy(buf, <const char*>data, length)
        if is_rtcp(buf, length):
            self._handle_rtcp(slot, buf, length, monotonic_ns())
        else:
            self._handle_rtp(slot, buf, length, monotonic_ns())
            self._fan_out(monotonic_ns())
        self.sock.flush()
        return self.tcp_pending > 0

    def send_raw(self, bytes data, tuple addr):
        """Queue and send one datagram (STUN and DTLS answers from the control plane)."""
        cdef sockaddr_storage ss
        cdef socklen_t ss_len
        cdef unsigned char* dst
        if len(data) > self.sock.slot_size:
            raise ValueError("datagram larger than a send slot")
        sockaddr_from_tuple(addr, self.sock.family, &ss, &ss_len)
        dst = self.sock.tx_slot()
        memcpy(dst, <const char*>data, len(data))
        self.sock.tx_commit(len(data), <const sockaddr*>&ss, ss_len)
        self.sock.flush()

    def fileno(self) -> int:
        return self.sock.fd
