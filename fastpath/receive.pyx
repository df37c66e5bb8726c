# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Receive stage: drain the worker's socket, demultiplex each packet and record the media.

Per packet, without creating a Python object: the class by first byte (RFC 7983), the
transport by remote tuple, then for RTP: SRTP unprotect, parse, the producer stream by SSRC
(RTX unwrapped into the original), loss detection, statistics, history and audio level, and
the packet held for the fan-out stage, which runs after every batch. RTCP goes to the feedback
stage. STUN, DTLS and the first packets of an unknown SSRC go up to Python, bounded per
drain, since they are rare and belong to the control plane; a packet from an unknown address
while a comedia transport waits goes up at once, mid-batch.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy, memmove, memset

from fastpath.clock cimport monotonic_ns
from fastpath.codecs cimport PayloadInfo, parse_payload
from fastpath.congestion cimport arrival_log_due, arrival_log_record
from fastpath.demux cimport (
    PACKET_DTLS,
    PACKET_RTP,
    PACKET_STUN,
    PacketClass,
    address_key,
    classify_first_byte,
)
from fastpath.feedback cimport Feedback
from fastpath.netdefs cimport sockaddr
from fastpath.rtcp cimport recv_stats_update
from fastpath.rtp cimport (
    RtpHeader,
    find_extension,
    is_rtcp,
    parse_rtp,
    read_u16,
    set_payload_type,
    set_sequence_number,
    set_ssrc,
)
from fastpath.srtp cimport SrtpSession
from fastpath.state cimport (
    DROP_CONTROL_QUEUE_FULL,
    DROP_NO_SRTP,
    DROP_RTP_MALFORMED,
    DROP_RTX_PADDING,
    DROP_DUPLICATE,
    DROP_RTX_UNSUPPORTED,
    DROP_SRTP_RTP,
    DROP_TRUNCATED,
    DROP_UNKNOWN_CLASS,
    DROP_UNKNOWN_SSRC,
    DROP_UNKNOWN_TUPLE,
    HISTORY_PACKET_BYTES,
    HISTORY_PACKETS,
    MAX_CONTROL_PER_DRAIN,
    MAX_FEEDBACK_DUE,
    MAX_SPATIAL_LAYERS,
    MAX_TEMPORAL_LAYERS,
    MAX_UNKNOWN_SSRC_PER_DRAIN,
    ConsumerState,
    PendingPacket,
    ProducerStream,
    TransportState,
    clock_units,
    ssrc_key,
)
from fastpath.table cimport TableKey
from fastpath.udp cimport MSG_TRUNC, UdpBatchSocket, sockaddr_to_tuple

cdef enum:
    # a drain hands the loop back after this many batches, so a flood cannot stall it
    MAX_BATCHES_PER_DRAIN = 64
    # ...or after this long, so control work (signaling, DTLS) is never starved under overload
    MAX_DRAIN_NS = 5000000
    # a lightly loaded batch flushes every this many copies: the first consumer's copy does not
    # wait for every other copy to be protected
    LIGHT_LOAD_BATCH = 4
    LIGHT_LOAD_FLUSH = 32
    # _equalize_sizes pads a packet by at most this many bytes, and looks this far ahead in the
    # batch for the next packet of its stream
    MAX_EQUALIZING_PAD = 8
    EQUALIZE_LOOKAHEAD = 16


cdef inline int pending_length(const PendingPacket* p) noexcept nogil:
    return p.h.header_len + p.h.payload_len + p.h.padding_len


cdef void _equalize_sizes(PendingPacket* pending, int count) noexcept nogil:
    """Pad a held packet (RFC 3550 section 5.1) up to the size of the next one of its stream when
    that is at most MAX_EQUALIZING_PAD bytes larger.

    UDP GSO sends a consumer's copies as one message only while they have one size (all
    segments but the last, UDP_SEGMENT); a smaller one ends the message and a larger one starts
    another. libwebrtc cuts a frame into packets within one byte of each other, the larger ones
    last (RtpPacketizer::SplitAboutEqually), so a frame's copies broke into two messages per
    consumer and unequal frames cost 12 % of the rate. Padded from the end of the batch back,
    a frame's packets all take the size of its largest; no packet grows past its own size plus
    the bound, nor past a size its sender used. Receivers drop padding before depacketizing; the
    history keeps the packet as it came.
    """
    cdef int i, j, end, length, target, pad, old
    cdef unsigned char* data
    cdef PendingPacket* p
    for i in range(count - 2, -1, -1):
        p = &pending[i]
        end = min(count, i + 1 + EQUALIZE_LOOKAHEAD)
        for j in range(i + 1, end):
            if pending[j].stream == p.stream:
                break
        else:
            continue
        length = pending_length(p)
        target = pending_length(&pending[j])
        pad = target - length
        if pad <= 0 or pad > MAX_EQUALIZING_PAD or p.h.padding_len + pad > 255:
            continue
        data = <unsigned char*>p.data
        if p.h.has_padding:
            # the count moves to the new last octet; the octets between are padding too
            old = p.h.padding_len
            memset(data + length - 1, 0, pad)
        else:
            old = 0
            data[0] |= 0x20
            memset(data + length, 0, pad - 1)
        data[target - 1] = <unsigned char>(old + pad)
        p.h.has_padding = 1
        p.h.padding_len = <uint8_t>(old + pad)


cdef class Receiver(Feedback):
    """Media in: the drain loop, demux, and each media packet's bookkeeping before fan-out."""

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
                        self._handle_rtp(t, data, length, now, sock.rx_arrival_ns(i, now))
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
            _equalize_sizes(self.pending, self.pending_count)
            self._fan_out(now)
            if self.probes_active:
                self._pace_probes(now)
            self._send_due_feedback(now)
            sock.flush()
            if n < sock.rx_slots or monotonic_ns() - started > MAX_DRAIN_NS:
                break
        self._collect_events()
        if self.tcp_pending:
            self._events.append(("tcp-output", -1, 0, 0))
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

    cdef void _handle_rtp(self, int32_t t, unsigned char* data, int length, uint64_t now,
                          uint64_t arrival) noexcept:
        """One RTP packet from transport t; `arrival` is when the kernel got it (udp.pyx), `now` when
        this batch is handled."""
        cdef TransportState* tr = &self.transports[t]
        cdef RtpHeader h
        cdef TableKey key
        cdef int32_t slot
        cdef ProducerStream* s
        cdef PayloadInfo info
        cdef bint keyframe = 0, repair = 0
        cdef int level_offset = 0, twcc_offset = 0, sid
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
        # every packet with a transport-wide number is reported, padding probes and RTX included:
        # one the sender never hears of counts as lost in its estimate
        if tr.twcc_in_ext_id and find_extension(data, &h, tr.twcc_in_ext_id, &twcc_offset) >= 2:
            arrival_log_record(&tr.arrivals, read_u16(data + twcc_offset), h.ssrc, arrival)
            if arrival_log_due(&tr.arrivals, now) and not tr.feedback_queued:
                if self.feedback_due_count < MAX_FEEDBACK_DUE:
                    tr.feedback_queued = 1
                    self.feedback_due[self.feedback_due_count] = t
                    self.feedback_due_count += 1
                else:
                    self._send_transport_feedback(t, now)
        ssrc_key(&key, h.ssrc, t)
        slot = self.producer_ssrcs.lookup(&key)
        if slot < 0:
            key.c = 1  # RTX SSRCs are registered with c = 1
            slot = self.producer_ssrcs.lookup(&key)
            if slot >= 0:
                if not self._unwrap_rtx(&self.streams[slot], data, &length, &h):
                    return
                repair = 1
            elif self.unknown_ssrc_budget > 0 and len(self._control) < MAX_CONTROL_PER_DRAIN:
                # the first packets of a new SSRC go up so Python can match it by MID/RID
                self.unknown_ssrc_budget -= 1
                self._control.append(("rtp", PyBytes_FromStringAndSize(<char*>data, length), t))
                return
            else:
                self.drops[DROP_UNKNOWN_SSRC] += 1
                return
        s = &self.streams[slot]
        if s.history != NULL and s.history_len[h.sequence_number % HISTORY_PACKETS] != 0 and \
                s.history_seq[h.sequence_number % HISTORY_PACKETS] == h.sequence_number:
            # a packet received already: libwebrtc probes by resending recent packets as RTX
            # (key frames' first, being large), and a path may duplicate. Taken as new, it would be
            # sent to every consumer again, counted as another key frame, and could start a
            # layer switch at an old packet, which leaves the packets after it as holes.
            self.drops[DROP_DUPLICATE] += 1
            return
        if repair:
            s.rtx_received += 1
        if s.nack_enabled:
            self._detect_loss(s, h.sequence_number, now)
        recv_stats_update(&s.stats, h.sequence_number, h.timestamp, clock_units(arrival, s.clock_rate))
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
            # what each layer within the stream costs a consumer, and whether it flows (layers.pyx)
            sid = min(max(info.spatial_id, 0), MAX_SPATIAL_LAYERS - 1)
            s.layer_bytes[sid][min(max(info.temporal_id, 0), MAX_TEMPORAL_LAYERS - 1)] += length
            s.spatial_last_ns[sid] = now
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
        return 1

    def inject(self, int slot, bytes data):
        """Handle a packet Python held back (a comedia transport's first) as if just received.

        Also called from inside drain(), by the upcall of an unknown tuple: the batch's media
        queued so far is fanned out first, so each consumer still sees arrival order."""
        cdef unsigned char buf[2048]
        cdef int length = len(data)
        cdef uint64_t now
        self._transport(slot)
        if length > 2048 - 64 or length < 2:
            raise ValueError("packet size out of range")
        memcpy(buf, <const char*>data, length)
        if is_rtcp(buf, length):
            self._handle_rtcp(slot, buf, length, monotonic_ns())
        else:
            now = monotonic_ns()
            self._handle_rtp(slot, buf, length, now, now)
            self._fan_out(monotonic_ns())
            self._send_due_feedback(monotonic_ns())
        self.sock.flush()
        return self.tcp_pending > 0

    cdef void _collect_events(self) noexcept:
        cdef int i, spatial, temporal
        cdef ConsumerState* c
        # layer switches are rare: scan the consumers only when one happened
        if not self.events_pending:
            return
        self.events_pending = 0
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.layers_changed:
                c.layers_changed = 0
                # (spatial, temporal) forwarded, -1 for none; one temporal layer is layer 0
                spatial = c.svc_current if c.svc_layers > 1 and c.current_layer >= 0 else c.current_layer
                temporal = (c.current_temporal if c.temporal_count > 1 else 0) if spatial >= 0 else -1
                self._events.append(("layerschange", i, spatial, temporal))
