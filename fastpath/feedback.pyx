# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Feedback stage: RTCP in and out, between the producers, the consumers and the estimates.

Per RTCP packet received: unprotect, then each item of the compound: a sender report feeds
the producer stream's statistics, report blocks a consumer's loss figures (and, without
transport-cc, its transport's estimate), transport-cc and REMB the estimate, BYE retires a
producer's layer, PLI/FIR from a consumer become a rate-limited PLI to its producer, and a
NACK is answered by the fan-out stage. Per media packet received: a jump in sequence numbers
is NACKed to the producer at once, and on a transport-cc transport its arrival is logged and
reported back about every 100 ms. Every second, per transport: its receiver and sender reports
in compound packets, and REMB to senders that expect it (our estimate of the path from them) or
that have a ceiling; the engine spreads the transports over ten calls a second.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memmove, memset

from fastpath.bwe cimport bwe_on_feedback, bwe_on_loss, bwe_on_remb
from fastpath.clock cimport monotonic_ns
from fastpath.congestion cimport arrival_log_build_feedback, arrival_log_due, incoming_estimate_update
from fastpath.fanout cimport Fanout
from fastpath.rtcp cimport (
    RTCP_BYE,
    RTCP_REPORT_BLOCK_LENGTH,
    RTCP_SENDER_INFO_LENGTH,
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
    ntp_compact,
    ntp_now,
    recv_stats_on_sr,
    recv_stats_report_block,
    rtcp_build_nack,
    rtcp_build_pli,
    rtcp_build_remb,
    rtcp_build_rr,
    rtcp_build_sr,
    rtcp_next,
    rtcp_parse_bye,
    rtcp_parse_feedback,
    rtcp_parse_remb,
    rtcp_parse_report_blocks,
    rtcp_parse_sr,
    rtcp_parse_twcc,
    rtcp_twcc_decode,
)
from fastpath.srtp cimport SrtpSession
from fastpath.state cimport (
    DROP_NO_SRTP,
    DROP_RTCP_MALFORMED,
    DROP_SRTP_RTCP,
    KEYFRAME_REQUEST_INTERVAL_NS,
    MAX_NACKED_PER_PACKET,
    MAX_REMB_SSRCS,
    TWCC_MAX_STATUSES,
    ConsumerState,
    ProducerStream,
    TransportState,
    clock_units,
    ssrc_key,
)
from fastpath.table cimport TableKey

cdef enum:
    RTCP_SCRATCH = 1500
    MAX_REPORT_BLOCKS = 31
    # feedback packets one call sends at most; the rest wait for the next packet or report
    MAX_FEEDBACKS_PER_CALL = 4
    # The reports to one transport go out as compound packets of at most this many bytes (RFC 8108
    # §5.4: an endpoint with many SSRCs may aggregate their reports), some 35 sender reports each,
    # one SRTCP protect and one datagram where a report per consumer took one of each.
    REPORT_COMPOUND_BYTES = 1000


cdef inline bint _resize(int** array, int count) noexcept nogil:
    """Resize *array to count ints (the old contents are not kept); False, *array untouched, when
    out of memory."""
    cdef int* resized = <int*>realloc(array[0], count * sizeof(int))
    if resized == NULL:
        return 0
    array[0] = resized
    return 1


cdef class Feedback(Fanout):
    """RTCP: what receivers and producers report, and what we report and ask of them."""

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

    # ---- RTCP reports -------------------------------------------------------------------------

    cdef void _send_transport_feedback(self, int32_t t, uint64_t now) noexcept nogil:
        """transport-cc feedback for what arrived since the last one (congestion.pyx builds it)."""
        cdef unsigned char buf[RTCP_SCRATCH]
        cdef int k, n
        for k in range(MAX_FEEDBACKS_PER_CALL):
            n = arrival_log_build_feedback(&self.transports[t].arrivals, buf, RTCP_SCRATCH,
                                           self.transports[t].rtcp_ssrc, now)
            if n <= 0:
                return
            self._send_rtcp(t, buf, n)

    cdef void _send_due_feedback(self, uint64_t now) noexcept nogil:
        """The feedback the receive stage found due in this batch. Sent after the batch's copies, not
        among them: a datagram in the middle of the send queue would split a consumer's run of
        copies into two UDP GSO messages (+13 % sendmmsg messages at 100 consumers, saturated)."""
        cdef int k
        cdef int32_t t
        for k in range(self.feedback_due_count):
            t = self.feedback_due[k]
            if 0 <= t < self.transport_capacity and self.transports[t].feedback_queued:
                self.transports[t].feedback_queued = 0
                if self.transports[t].used and self.transports[t].twcc_in_ext_id:
                    self._send_transport_feedback(t, now)
        self.feedback_due_count = 0

    cdef void _send_incoming_estimate(self, int32_t t, uint64_t now) noexcept nogil:
        """REMB to the sender: our estimate when it expects REMB, else its ceiling (libwebrtc caps
        its transport-cc estimate at a received REMB); nothing when neither applies."""
        cdef TransportState* tr = &self.transports[t]
        cdef unsigned char buf[RTCP_SCRATCH]
        cdef double fraction_lost = 0.0
        cdef uint64_t bitrate
        cdef int n
        if tr.loss_expected:
            fraction_lost = <double>tr.loss_lost / tr.loss_expected
        if tr.remb_in:
            bitrate = incoming_estimate_update(&tr.incoming, tr.rtp_in_bytes, fraction_lost, now)
        elif tr.twcc_in_ext_id and tr.incoming.max_bps:
            bitrate = tr.incoming.max_bps
        else:
            return
        # nothing to say before a first interval is measured, or to a transport that sends nothing
        if bitrate == 0 or tr.rtp_in_packets == 0 or tr.remb_ssrc_count == 0:
            return
        n = rtcp_build_remb(buf, RTCP_SCRATCH, tr.rtcp_ssrc, bitrate, tr.remb_ssrcs, tr.remb_ssrc_count)
        if n > 0:
            tr.incoming.rembs_sent += 1
            self._send_rtcp(t, buf, n)

    def __dealloc__(self):
        free(self.report_stream_start)
        free(self.report_stream_order)
        free(self.report_consumer_start)
        free(self.report_consumer_order)

    def send_reports(self, int part=0, int parts=1):
        """Receiver reports for every producer stream and sender reports for every consumer (RFC 3550
        §6.4), then REMB where a sender expects it, and any transport-cc feedback still waiting.

        With parts > 1, only the transports whose slot % parts == part: the engine calls it `parts`
        times a report interval, so each transport still reports once an interval and no call holds
        the loop for all of them (bench/bench_reports.py). A transport's reports go in compound
        packets (REPORT_COMPOUND_BYTES), receiver reports first, up to 31 blocks each. Part 0 sorts
        the streams and consumers by transport for the whole round; an item added later in the
        round reports from the next one, and one removed or moved is checked for and skipped.
        """
        cdef int t
        if parts < 1 or not 0 <= part < parts:
            raise ValueError("need 0 <= part < parts")
        if part == 0 or parts != self.report_parts or self.report_stream_start == NULL:
            if not self._group_reports():
                raise MemoryError()
            self.report_parts = parts
        for t in range(part, min(self.report_transports, self.transport_capacity), parts):
            if self.transports[t].used:
                self._report_transport(
                    t, self.report_stream_order + self.report_stream_start[t],
                    self.report_stream_start[t + 1] - self.report_stream_start[t],
                    self.report_consumer_order + self.report_consumer_start[t],
                    self.report_consumer_start[t + 1] - self.report_consumer_start[t])
        self.sock.flush()

    cdef bint _group_reports(self) noexcept nogil:
        """Sort the producer streams and the consumers by transport (a counting sort into
        report_*_order, transport t's at [report_*_start[t], report_*_start[t + 1])). False when
        out of memory."""
        cdef int i, transports = self.transport_capacity
        cdef int* starts[2]
        cdef int* orders[2]
        cdef int counts[2]
        cdef int which, t
        cdef int32_t owner
        self.report_transports = 0
        # resized in place: the same sizes round after round cost no allocation
        if (not _resize(&self.report_stream_start, transports + 1)
                or not _resize(&self.report_consumer_start, transports + 1)
                or not _resize(&self.report_stream_order, self.stream_capacity + 1)
                or not _resize(&self.report_consumer_order, self.consumer_capacity + 1)):
            return 0
        starts[0], orders[0], counts[0] = self.report_stream_start, self.report_stream_order, self.stream_capacity
        starts[1], orders[1], counts[1] = self.report_consumer_start, self.report_consumer_order, self.consumer_capacity
        for which in range(2):
            memset(starts[which], 0, (transports + 1) * sizeof(int))
            for i in range(counts[which]):
                owner = self._report_owner(which, i)
                if owner >= 0:
                    starts[which][owner + 1] += 1
            for t in range(transports):
                starts[which][t + 1] += starts[which][t]
            # each transport's start serves as its cursor, ending at the next one's start ...
            for i in range(counts[which]):
                owner = self._report_owner(which, i)
                if owner >= 0:
                    orders[which][starts[which][owner]] = i
                    starts[which][owner] += 1
            # ... so one place down, they are the starts again
            memmove(starts[which] + 1, starts[which], transports * sizeof(int))
            starts[which][0] = 0
        self.report_transports = transports
        return 1

    cdef inline int32_t _report_owner(self, int which, int i) noexcept nogil:
        """The transport of stream i (which 0) or consumer i (which 1), or -1 if the slot is free."""
        cdef int32_t t
        if which == 0:
            t = self.streams[i].transport if self.streams[i].used else -1
        else:
            t = self.consumers[i].transport if self.consumers[i].used else -1
        return t if 0 <= t < self.transport_capacity else -1

    cdef void _report_transport(self, int32_t t, const int* streams, int stream_count,
                                const int* consumers, int consumer_count) noexcept nogil:
        """One transport's reports: its producer streams' receiver reports and its consumers' sender
        reports in compound packets, then REMB and what transport-cc feedback is left."""
        cdef unsigned char compound[REPORT_COMPOUND_BYTES]
        cdef RtcpReportBlock blocks[MAX_REPORT_BLOCKS]
        cdef RtcpSenderInfo info
        cdef uint64_t now = monotonic_ns()
        cdef uint64_t ntp = ntp_now()
        cdef int k, used = 0, block_count = 0
        cdef int64_t expected, arrived
        cdef ProducerStream* s
        cdef ConsumerState* c
        cdef TransportState* tr = &self.transports[t]
        # the per-transport sums below start at zero: a new transport's slot is zeroed, and each
        # interval's sums are cleared once they are used
        for k in range(stream_count):
            s = &self.streams[streams[k]]
            if not s.used or s.transport != t or s.packets == 0:
                continue  # removed, or reused for another transport, since the round was sorted
            # the interval's loss before repair: RTX that filled a gap does not hide what the path lost
            expected = (<int64_t>s.stats.cycles + s.stats.max_seq - s.stats.base_seq + 1
                        - s.stats.expected_prior) if s.stats.started else 0
            arrived = (<int64_t>s.stats.received - s.stats.received_prior
                       - <int64_t>(s.rtx_received - s.rtx_received_mark))
            s.rtx_received_mark = s.rtx_received
            recv_stats_report_block(&s.stats, &blocks[block_count], ntp_compact(ntp))
            block_count += 1
            if expected > 0:
                tr.loss_expected += expected
                tr.loss_lost += expected - arrived if expected > arrived else 0
            if tr.remb_ssrc_count < MAX_REMB_SSRCS:
                tr.remb_ssrcs[tr.remb_ssrc_count] = s.ssrc
                tr.remb_ssrc_count += 1
            if block_count == MAX_REPORT_BLOCKS:
                used = self._add_rr(t, compound, used, blocks, block_count)
                block_count = 0
        if block_count:
            used = self._add_rr(t, compound, used, blocks, block_count)
        for k in range(consumer_count):
            c = &self.consumers[consumers[k]]
            if not c.used or c.transport != t or c.packets == 0:
                continue
            info.ssrc = c.ssrc
            info.ntp_sec = <uint32_t>(ntp >> 32)
            info.ntp_frac = <uint32_t>ntp
            info.rtp_timestamp = c.last_out_ts + clock_units(now - c.last_out_ns, c.clock_rate)
            info.packet_count = <uint32_t>c.packets
            info.octet_count = <uint32_t>c.bytes
            used = self._make_room(t, compound, used, 8 + RTCP_SENDER_INFO_LENGTH)
            used += rtcp_build_sr(compound + used, REPORT_COMPOUND_BYTES - used, &info, NULL, 0)
        if used > 0:
            self._send_rtcp(t, compound, used)
        self._send_incoming_estimate(t, now)
        tr.loss_expected = 0
        tr.loss_lost = 0
        tr.remb_ssrc_count = 0
        if tr.twcc_in_ext_id and arrival_log_due(&tr.arrivals, now):
            self._send_transport_feedback(t, now)

    cdef int _add_rr(self, int32_t t, unsigned char* compound, int used, const RtcpReportBlock* blocks,
                     int count) noexcept nogil:
        """A receiver report with `count` blocks appended to the compound; returns the bytes used."""
        used = self._make_room(t, compound, used, 8 + count * RTCP_REPORT_BLOCK_LENGTH)
        return used + rtcp_build_rr(compound + used, REPORT_COMPOUND_BYTES - used, self.transports[t].rtcp_ssrc,
                                    blocks, count)

    cdef int _make_room(self, int32_t t, unsigned char* compound, int used, int length) noexcept nogil:
        """Send the compound first if `length` more bytes would not fit in it; returns the bytes used."""
        if used + length > REPORT_COMPOUND_BYTES:
            self._send_rtcp(t, compound, used)
            return 0
        return used
