# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fan-out stage: forward the media a receive batch held, consumer by consumer.

Per packet and consumer: the layer decision (a switch waits for a key frame of the target
layer), the rewrite (SSRC, payload type, continuous sequence number and timestamp, VP8 picture
id, transport-wide sequence), SRTP protect, and the copy queued in the socket's send batch.
A consumer's NACK is answered here too, from the stream's history (as RTX when negotiated),
and a running probe's packets are sent from there too (probe.pyx).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memmove, memset

from fastpath.av1 cimport DdStream, dd_apply
from fastpath.bwe cimport (
    BWE_PROBE_SENDING,
    bwe_on_sent,
    bwe_probe_check,
    bwe_probe_end_sending,
)
from fastpath.clock cimport monotonic_ns
from fastpath.codecs cimport CODEC_AV1, CODEC_VP8, VP8_KEEP, PayloadInfo, parse_payload, vp8_rewrite_picture_id
from fastpath.netdefs cimport sockaddr
from fastpath.probe cimport (
    PROBATOR_SSRC,
    PROBE_PADDING_BYTES,
    PROBE_RESEND_DEPTH,
    ProbeState,
    probe_due,
    probe_finish,
)
from fastpath.red cimport RED_ERR_UNKNOWN_PT, RED_STRIP, red_rewrite
from fastpath.rewrite cimport (
    drop_log_add,
    drop_log_after,
    drop_log_clear,
    rewrite_rtp_to,
    seq_rewrite_drop,
    seq_rewrite_in,
    seq_rewrite_out,
    seq_rewrite_sync,
    set_transport_seq,
    ts_rewrite_out,
    ts_rewrite_sync,
)
from fastpath.rtcp cimport RtcpItem, rtcp_parse_nack
from fastpath.rtp cimport RtpHeader, parse_rtp, write_u16, write_u32
from fastpath.srtp cimport SrtpSession
from fastpath.svc cimport LAYER_DROP, LAYER_FORWARD_END, layer_filter
from fastpath.state cimport (
    DROP_DD_MALFORMED,
    DROP_RED_MALFORMED,
    DROP_REWRITE,
    DROP_SRTP_RTP,
    DROP_UNKNOWN_PT,
    HISTORY_PACKET_BYTES,
    HISTORY_PACKETS,
    MAX_NACKED_PER_PACKET,
    MAX_SPATIAL_LAYERS,
    MAX_TEMPORAL_LAYERS,
    ConsumerState,
    ForwarderState,
    PendingPacket,
    ProducerStream,
    TransportState,
    clock_units,
)


cdef inline void picture_id_sync(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    """On a switch, map the new layer's VP8 picture id and TL0PICIDX to continue ours (RFC 7741 §4.2)."""
    if info.picture_id < 0:
        return
    c.pid_mask = 0x7F if info.picture_id_bits == 7 else 0x7FFF
    if c.pid_started:
        c.pid_offset = <int32_t>((c.last_picture_id + 1 - info.picture_id) & 0x7FFF)
        c.tl0_offset = (c.last_tl0picidx + 1 - info.tl0picidx) & 0xFF if info.tl0picidx >= 0 else 0
    else:
        c.pid_offset = 0
        c.tl0_offset = 0
        c.pid_started = 1
    c.max_picture_in = (info.picture_id - 1) & c.pid_mask
    drop_log_clear(&c.pid_dropped)


cdef inline bint picture_id_newer(ConsumerState* c, int32_t picture_id) noexcept nogil:
    cdef int32_t ahead = (picture_id - c.max_picture_in) & c.pid_mask
    return ahead != 0 and ahead <= (c.pid_mask >> 1)


cdef inline int32_t picture_id_out(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    """Our picture id for the packet's: continuous across switches and skipped pictures.

    A late packet (from a picture older than the newest) gets back the skips logged after it."""
    cdef int32_t p = info.picture_id & c.pid_mask
    if picture_id_newer(c, p):
        c.max_picture_in = p
        c.last_picture_id = (p + c.pid_offset) & c.pid_mask
        return c.last_picture_id
    return (p + c.pid_offset + drop_log_after(&c.pid_dropped, <uint16_t>p, <uint16_t>c.max_picture_in,
                                               <uint16_t>c.pid_mask)) & c.pid_mask


cdef inline void picture_id_drop(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    """A skipped picture (a temporal layer above the consumer's): the next one takes its id."""
    cdef int32_t p = info.picture_id & c.pid_mask
    if not c.pid_started or info.picture_id < 0 or not picture_id_newer(c, p):
        return  # another packet of a picture already skipped, or a late one
    c.max_picture_in = p
    c.pid_offset = (c.pid_offset - 1) & 0x7FFF
    drop_log_add(&c.pid_dropped, <uint16_t>p)


cdef inline int tl0picidx_out(ConsumerState* c, const PayloadInfo* info) noexcept nogil:
    if info.tl0picidx < 0:
        return VP8_KEEP
    c.last_tl0picidx = (info.tl0picidx + c.tl0_offset) & 0xFF
    return c.last_tl0picidx


cdef inline void _recount_layer(ProducerStream* s, const PayloadInfo* before, const PayloadInfo* after,
                                int length) noexcept nogil:
    """Move a packet's bytes to the layer its dependency descriptor names: the receive stage counted
    them by the OBU header, which an AV1 packet continuing an OBU does not repeat (layers.pyx)."""
    cdef int sid0 = min(max(before.spatial_id, 0), MAX_SPATIAL_LAYERS - 1)
    cdef int tid0 = min(max(before.temporal_id, 0), MAX_TEMPORAL_LAYERS - 1)
    cdef int sid1 = min(max(after.spatial_id, 0), MAX_SPATIAL_LAYERS - 1)
    cdef int tid1 = min(max(after.temporal_id, 0), MAX_TEMPORAL_LAYERS - 1)
    if (sid0 != sid1 or tid0 != tid1) and s.layer_bytes[sid0][tid0] >= <uint64_t>length:
        s.layer_bytes[sid0][tid0] -= length
        s.layer_bytes[sid1][tid1] += length


cdef enum:
    # what _resend() did
    RESEND_UNMAPPED = -1
    RESEND_SKIPPED = 0
    RESEND_SENT = 1
    RESEND_FAILED = 2


cdef inline bint _commit_rtp(Fanout fanout, TransportState* ct, unsigned char* dst, int n) noexcept nogil:
    """Hand a protected RTP packet, written in the socket's next slot, to its transport (queued on
    ICE-TCP, batched for sendmmsg on UDP) and count it as sent; False if the TCP queue refused it.
    A function, not a method, so that the C compiler inlines it into both senders."""
    if ct.is_tcp:
        if not fanout._queue_tcp(ct, dst, n):
            return 0
    else:
        fanout.sock.tx_commit(n, <const sockaddr*>&ct.remote, ct.remote_len)
        if fanout.sock.tx_count >= fanout.flush_every:
            fanout.sock.flush()
    ct.rtp_out_packets += 1
    ct.rtp_out_bytes += n
    return 1


cdef class Fanout(ForwarderState):
    """Media out: each held packet to every consumer of its stream, and resends from history."""

    cdef void _queue_forward(self, int32_t stream_slot, const unsigned char* data, const RtpHeader* h,
                             const PayloadInfo* info, bint keyframe, uint64_t now) noexcept nogil:
        """Hold a packet for _fan_out(); a full queue is fanned out first.

        An AV1 stream's dependency descriptor (av1.pyx) is read here, consumers or not, so its
        template structure is known when a consumer joins; one that cannot be read is dropped."""
        cdef PendingPacket* p
        cdef ProducerStream* s = &self.streams[stream_slot]
        cdef PayloadInfo av1_info
        if s.dd != NULL:
            av1_info = info[0]
            if dd_apply(s.dd, s.dd_ext_id, data, h, &av1_info, 1) < 0:
                self.drops[DROP_DD_MALFORMED] += 1
                return
            _recount_layer(s, info, &av1_info, h.header_len + h.payload_len + h.padding_len)
            info = &av1_info
            keyframe = av1_info.is_keyframe > 0
        if s.consumer_count == 0:
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
        waits are as if each packet were forwarded on its own.

        The held packets are first threaded into one list per stream, so a consumer walks only
        its own layers' packets (a merge by arrival of up to MAX_SPATIAL_LAYERS lists) instead of
        the whole batch: in a room, where a batch holds packets of many senders each going to a
        few consumers, scanning the batch per consumer was a tenth of the worker's time."""
        cdef int first, k, count = self.pending_count
        cdef uint32_t round
        cdef int32_t stream
        cdef ProducerStream* s
        cdef ConsumerState* c
        self.fan_out_round += 1
        if self.fan_out_round == 0:
            self.fan_out_round = 1  # 0 is what a new stream's pending_round starts as
        round = self.fan_out_round
        for first in range(count):
            s = &self.streams[self.pending[first].stream]
            self.pending[first].next_same_stream = -1
            if s.pending_round != round:
                s.pending_round = round
                s.pending_head = first
            else:
                self.pending[s.pending_tail].next_same_stream = first
            s.pending_tail = first
        for first in range(count):
            stream = self.pending[first].stream
            s = &self.streams[stream]
            if s.pending_round != round or s.pending_head != first:
                continue  # fanned out already, with the stream's first packet in the batch
            for k in range(s.consumer_count):
                c = &self.consumers[s.consumers[k]]
                if c.fan_out_round == round:
                    continue  # already served through another of its layers
                c.fan_out_round = round
                if c.paused or c.producer_paused:
                    continue
                self._forward_held(c, round, now)
            # every consumer of this stream is served: its packets are done
            s.pending_round = 0
        self.pending_count = 0

    cdef void _forward_held(self, ConsumerState* c, uint32_t round, uint64_t now) noexcept nogil:
        """One consumer's packets of the batch, from the lists of its layers' streams, in arrival
        order. None of them is done yet: a stream is done only once every consumer of it has been
        served, and this consumer is served now, for the first time this round."""
        cdef int32_t next_index[MAX_SPATIAL_LAYERS]
        cdef int layer, pick, n = c.layer_count
        cdef int32_t held
        cdef ProducerStream* s
        for layer in range(n):
            next_index[layer] = -1
            held = c.streams[layer]
            if held >= 0:
                s = &self.streams[held]
                if s.pending_round == round:
                    next_index[layer] = s.pending_head
        while True:
            pick = -1
            for layer in range(n):
                if next_index[layer] >= 0 and (pick < 0 or next_index[layer] < next_index[pick]):
                    pick = layer
            if pick < 0:
                return
            held = next_index[pick]
            next_index[pick] = self.pending[held].next_same_stream
            self._forward_to(c, self.streams[self.pending[held].stream].spatial_layer,
                             &self.pending[held], now)

    cdef void _forward_to(self, ConsumerState* c, int layer, const PendingPacket* p, uint64_t now) noexcept nogil:
        """The layer decision, rewrite and send of one packet for one consumer."""
        cdef int out_seq, verdict
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
        if (c.temporal_count > 1 or c.svc_layers > 1) and (c.codec != CODEC_AV1 or self.streams[p.stream].dd != NULL):
            # layers within the stream (svc.pxd): a skipped packet leaves no hole in our numbering;
            # an AV1 stream names them only in its dependency descriptor
            verdict = layer_filter(c, &p.info, p.keyframe)
            if c.layers_changed:
                self.events_pending = 1
            if verdict == LAYER_DROP:
                seq_rewrite_drop(&c.seq, p.h.sequence_number)
                if c.codec == CODEC_VP8:
                    picture_id_drop(c, &p.info)
                return
            c.params.set_marker = verdict == LAYER_FORWARD_END
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
        if c.red_mode and h.payload_type == c.red_pt:
            # RFC 2198: block payload types mapped, or the primary encoding alone (red.pyx)
            n = red_rewrite(dst, &out, n, c.red_mode == RED_STRIP, c.red_pt, c.pt_map)
            if n < 0:
                self.drops[DROP_UNKNOWN_PT if n == RED_ERR_UNKNOWN_PT else DROP_RED_MALFORMED] += 1
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
        if not _commit_rtp(self, ct, dst, n):
            return 0
        c.packets += 1
        c.bytes += n
        self.forwarded_packets += 1
        self.forwarded_bytes += n
        return 1

    cdef int _resend(self, ConsumerState* c, ProducerStream* s, uint16_t out_seq, bint as_rtx) noexcept nogil:
        """Send again, from the stream's history, what the consumer got under output number `out_seq`.

        The number maps back to the input one as the consumer's rewriting numbered it
        (seq_rewrite_in), so the copy carries the number the receiver saw. RESEND_UNMAPPED: it
        maps to nothing forwarded since the last switch or resume; RESEND_SKIPPED: not in the
        history, or of a layer above the consumer's (a hole it was given stays one); RESEND_SENT;
        RESEND_FAILED: the send itself failed.
        """
        cdef int slot, mapped
        cdef uint16_t in_seq
        cdef RtpHeader h
        cdef PayloadInfo info
        cdef unsigned char* stored
        cdef int32_t last_picture_id
        cdef int last_tl0picidx
        cdef bint sent
        mapped = seq_rewrite_in(&c.seq, out_seq)
        if mapped < 0:
            return RESEND_UNMAPPED
        in_seq = <uint16_t>mapped
        slot = in_seq % HISTORY_PACKETS
        if s.history_len[slot] == 0 or s.history_seq[slot] != in_seq:
            return RESEND_SKIPPED
        stored = s.history + <size_t>slot * HISTORY_PACKET_BYTES
        if parse_rtp(stored, s.history_len[slot], &h) < 0:
            return RESEND_SKIPPED
        c.params.payload_type = c.pt_map[h.payload_type & 0x7F]
        if c.params.payload_type == 0xFF:
            return RESEND_SKIPPED
        info.picture_id = -1
        parse_payload(s.codec, stored + h.header_len, h.payload_len, &info)
        if s.dd != NULL and dd_apply(s.dd, s.dd_ext_id, stored, &h, &info, 0) < 0:
            return RESEND_SKIPPED
        if (c.temporal_count > 1 or c.svc_layers > 1) and (c.codec != CODEC_AV1 or s.dd != NULL):
            if (c.temporal_count > 1 and info.temporal_id > c.current_temporal) or \
                    (c.svc_layers > 1 and info.spatial_id > c.svc_current):
                return RESEND_SKIPPED
            c.params.set_marker = c.svc_layers > 1 and info.ends_frame > 0 and \
                info.spatial_id == c.svc_current
        # a resend rewrites its picture id like the original but must not move the running one
        last_picture_id, last_tl0picidx = c.last_picture_id, c.last_tl0picidx
        sent = self._send_copy(c, stored, &h, &info, out_seq, <uint32_t>(h.timestamp + c.ts.offset), as_rtx)
        c.last_picture_id, c.last_tl0picidx = last_picture_id, last_tl0picidx
        return RESEND_SENT if sent else RESEND_FAILED

    cdef void _retransmit(self, ConsumerState* c, const unsigned char* data, const RtcpItem* item) noexcept nogil:
        """Answer a generic NACK (RFC 4585 §6.2.1) from the stream's history, with the original numbering;
        packets sent before the last layer switch or resume, or skipped for their layer, are not resent."""
        cdef uint16_t lost[MAX_NACKED_PER_PACKET]
        cdef int count, k
        cdef ProducerStream* s
        if c.current_layer < 0 or c.streams[c.current_layer] < 0:
            return
        s = &self.streams[c.streams[c.current_layer]]
        if s.history == NULL:
            return
        count = rtcp_parse_nack(data, item, lost, MAX_NACKED_PER_PACKET)
        for k in range(count if count > 0 else 0):
            if self._resend(c, s, lost[k], c.rtx_ssrc != 0) == RESEND_SENT:
                c.retransmitted += 1

    cdef void _pace_probes(self, uint64_t now) noexcept nogil:
        """Send what each running probe is due, and settle the probes bwe.pyx has judged. Runs after
        every receive batch while a probe runs, and from update_layers()."""
        cdef int t, active = 0
        cdef int64_t due
        cdef int sent
        cdef TransportState* tr
        cdef ProbeState* p
        for t in range(self.transport_capacity):
            tr = &self.transports[t]
            p = &tr.probe
            if not tr.used or p.target_bps == 0:
                continue
            bwe_probe_check(&tr.bwe, now)
            if tr.bwe.probe.result != 0:
                probe_finish(p, tr.bwe.probe.result > 0, now)
                tr.bwe.probe.result = 0
                continue
            active += 1
            if tr.bwe.probe.phase != BWE_PROBE_SENDING:
                continue  # its verdict waits for feedback on its last packets
            if now >= p.end_ns or not (tr.has_tuple and tr.has_srtp):
                bwe_probe_end_sending(&tr.bwe, now)
                continue
            due = probe_due(p, tr.rtp_out_bytes, now)
            while due > 0:
                sent = self._send_probe(t, p)
                if sent <= 0:
                    break
                due -= sent
        self.probes_active = active

    cdef bint _send_padding_probe(self, int32_t t, ConsumerState* c) noexcept nogil:
        """One padding-only probe packet (RFC 3550 §5.1 P bit) on PROBATOR_SSRC, the SSRC
        mediasoup-client signals for probation (as mediasoup's RtpProbationGenerator): the receiver
        counts it for transport-cc by its transport-wide number and its decoder never sees it."""
        cdef TransportState* ct = &self.transports[t]
        cdef int slot_size = self.sock.slot_size
        cdef unsigned char* dst
        cdef int n = 20 + PROBE_PADDING_BYTES
        cdef uint16_t twcc_seq
        if not (ct.probator_pt and ct.has_tuple and ct.has_srtp) or not 0 < c.twcc_ext_id <= 14:
            return 0
        dst = self.sock.tx_slot()
        dst[0] = 0x80 | 0x20 | 0x10     # version 2, padding, one header extension
        dst[1] = ct.probator_pt & 0x7F
        write_u16(dst + 2, ct.probator_seq)
        write_u32(dst + 4, c.last_out_ts)
        write_u32(dst + 8, PROBATOR_SSRC)
        # RFC 8285 §4.2 one-byte form: the transport-wide sequence number, then one byte of padding
        dst[12] = 0xBE
        dst[13] = 0xDE
        write_u16(dst + 14, 1)
        twcc_seq = ct.twcc_seq
        dst[16] = <unsigned char>((c.twcc_ext_id << 4) | 1)
        write_u16(dst + 17, twcc_seq)
        dst[19] = 0
        memset(dst + 20, 0, PROBE_PADDING_BYTES - 1)
        dst[n - 1] = PROBE_PADDING_BYTES    # the padding's last byte counts it, itself included
        if ct.srtp_out != NULL and (<SrtpSession>ct.srtp_out).protect_rtp(dst, &n, slot_size) != 0:
            self.drops[DROP_SRTP_RTP] += 1
            return 0
        ct.probator_seq += 1
        ct.twcc_seq += 1
        bwe_on_sent(&ct.bwe, twcc_seq, n, monotonic_ns())
        return _commit_rtp(self, ct, dst, n)

    cdef int _send_probe(self, int32_t t, ProbeState* p) noexcept nogil:
        """One probe packet: a recent packet of the probe's consumer resent on its RTX stream (RFC 4588),
        which the receiver counts for transport-cc and discards as a duplicate. Its size, or 0.

        Packets are taken by output number back from the newest, mapped to their input as a
        NACK's are (seq_rewrite_in), so the original sequence number it carries is the one the
        receiver saw; a number that maps to nothing or to a layer above the consumer's is passed.
        A consumer without RTX probes with padding on the probator SSRC instead."""
        cdef ConsumerState* c
        cdef ProducerStream* s
        cdef int k, outcome
        cdef uint16_t out_seq
        cdef uint64_t before
        if not 0 <= p.source < self.consumer_capacity:
            return 0
        c = &self.consumers[p.source]
        if not (c.used and c.transport == t and c.seq.started) or c.paused or c.producer_paused:
            return 0
        if not c.rtx_ssrc:
            before = self.transports[t].rtp_out_bytes
            if not self._send_padding_probe(t, c):
                return 0
            p.packets += 1
            p.bytes += self.transports[t].rtp_out_bytes - before
            return <int>(self.transports[t].rtp_out_bytes - before)
        if not (0 <= c.current_layer < c.layer_count) or c.streams[c.current_layer] < 0:
            return 0
        s = &self.streams[c.streams[c.current_layer]]
        if s.history == NULL:
            return 0
        for k in range(PROBE_RESEND_DEPTH):
            if p.cursor >= PROBE_RESEND_DEPTH:
                p.cursor = 0
            out_seq = <uint16_t>(c.seq.last_out - p.cursor)
            p.cursor += 1
            before = self.transports[t].rtp_out_bytes
            outcome = self._resend(c, s, out_seq, 1)
            if outcome == RESEND_UNMAPPED:
                p.cursor = 0  # older than the last switch: start over from the newest
                continue
            if outcome == RESEND_SKIPPED:
                continue
            if outcome == RESEND_FAILED:
                return 0
            p.packets += 1
            p.bytes += self.transports[t].rtp_out_bytes - before
            return <int>(self.transports[t].rtp_out_bytes - before)
        return 0

    # ---- control: AV1 dependency descriptor --------------------------------------------------

    def set_stream_dependency_descriptor(self, int slot, int ext_id):
        """Read the AV1 dependency descriptor (AV1 RTP spec appendix A) of this stream's packets from
        extension `ext_id` (0: off): their layers, frame bounds and switch points come from it."""
        cdef ProducerStream* s = self._stream(slot)
        if not 0 <= ext_id < 256:
            raise ValueError("extension ids are 1..255")
        if ext_id and s.dd == NULL:
            s.dd = <DdStream*>calloc(1, sizeof(DdStream))
            if s.dd == NULL:
                raise MemoryError()
        elif not ext_id:
            free(s.dd)
            s.dd = NULL
        s.dd_ext_id = ext_id

    def dependency_descriptor_stats(self, int slot):
        """What the stream's dependency descriptors gave: None without one, else counters and the
        structure's decode targets as (spatial id, temporal id)."""
        cdef ProducerStream* s = self._stream(slot)
        cdef int dt
        if s.dd == NULL:
            return None
        return {
            "mapped": s.dd.mapped, "unmapped": s.dd.unmapped, "malformed": s.dd.malformed,
            "structures": s.dd.structures,
            "decodeTargets": [(s.dd.structure.dt_sid[dt], s.dd.structure.dt_tid[dt])
                              for dt in range(s.dd.structure.dt_count if s.dd.structure.template_count else 0)],
        }

    def set_transport_probator(self, int slot, int payload_type):
        """Probe this transport, when none of its consumers has RTX, with padding-only packets on
        SSRC 1234 of this payload type (0: off): what mediasoup-client's "probator" receiver takes,
        payload type 127 (mediasoup-client ortc.generateProbatorRtpParameters)."""
        if not 0 <= payload_type < 128:
            raise ValueError("payload types are 0..127")
        self._transport(slot).probator_pt = payload_type
