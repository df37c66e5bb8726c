# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""RTCP on the hot path (RFC 3550 §6, RFC 4585, RFC 5104, REMB, transport-cc).

Parsers take an RtcpItem filled by rtcp_next, which has already checked that
the packet lies inside the buffer; every read past the fixed header is checked
against the item's content length. The `def` functions at the end exist for
tests and the control plane; nothing on the packet path calls them.
"""

from libc.stdint cimport (UINT64_MAX, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
                          uint64_t)
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from fastpath.rtp cimport read_u16, read_u32, write_u16, write_u32

cdef int64_t NTP_UNIX_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

cdef enum:
    RTCP_FEEDBACK_HEADER_LENGTH = 12    # header, sender SSRC, media SSRC
    RTCP_FIR_ENTRY_LENGTH = 8
    RTCP_REMB_FCI_LENGTH = 8            # "REMB", num SSRC, exp/mantissa
    RTCP_TWCC_FCI_HEADER_LENGTH = 8
    REMB_MANTISSA_MAX = 0x3FFFF         # 18 bits
    PACKETS_LOST_MAX = 0x7FFFFF
    PACKETS_LOST_MIN = -0x800000
    RTP_SEQ_MOD = 65536
    MAX_DROPOUT = 3000                  # RFC 3550 A.1
    MAX_MISORDER = 100
    TWCC_RUN_LENGTH_MAX = 0x1FFF
    TWCC_ONE_BIT_SYMBOLS = 14
    TWCC_TWO_BIT_SYMBOLS = 7


cdef inline uint32_t _read_u24(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline int32_t _signed24(uint32_t v) noexcept nogil:
    if v & 0x800000:
        return <int32_t>v - 0x1000000
    return <int32_t>v


cdef inline void _write_u24(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 16)
    p[1] = <unsigned char>(v >> 8)
    p[2] = <unsigned char>v


cdef inline void _write_header(unsigned char* dst, int count, int packet_type,
                               int length) noexcept nogil:
    """RTCP common header; length in bytes, a multiple of 4."""
    dst[0] = <unsigned char>(0x80 | (count & 0x1F))
    dst[1] = <unsigned char>packet_type
    write_u16(dst + 2, <uint16_t>(length // 4 - 1))


cdef inline int _minimum_length(int packet_type) noexcept nogil:
    """Bytes a packet of this type cannot do without (header and fixed part)."""
    if packet_type == RTCP_SR:
        return 8 + RTCP_SENDER_INFO_LENGTH
    if packet_type == RTCP_RR or packet_type == RTCP_XR:
        return 8
    if packet_type == RTCP_APP:
        return 12
    if packet_type == RTCP_RTPFB or packet_type == RTCP_PSFB:
        return RTCP_FEEDBACK_HEADER_LENGTH
    return RTCP_HEADER_LENGTH


cdef int rtcp_next(const unsigned char* buf, int length, int offset, RtcpItem* item) noexcept nogil:
    """Read the packet at offset of a compound (RFC 3550 §6.1); the next offset, 0 at the end."""
    cdef const unsigned char* p
    cdef int remaining, total, content, pad
    if offset < 0 or length < 0 or offset > length:
        return RTCP_ERR_TRUNCATED
    if offset == length:
        return 0
    if buf == NULL:
        return RTCP_ERR_TRUNCATED
    remaining = length - offset
    if remaining < RTCP_HEADER_LENGTH:
        return RTCP_ERR_TRUNCATED
    p = buf + offset
    if (p[0] >> 6) != 2:
        return RTCP_ERR_VERSION
    total = (<int>read_u16(p + 2) + 1) * 4
    if total > remaining:
        return RTCP_ERR_LENGTH
    content = total
    if p[0] & 0x20:
        pad = p[total - 1]
        if pad == 0 or pad > total - RTCP_HEADER_LENGTH:
            return RTCP_ERR_PADDING
        content = total - pad
    if content < _minimum_length(p[1]):
        return RTCP_ERR_LENGTH
    item.packet_type = p[1]
    item.count = p[0] & 0x1F
    item.offset = offset
    item.length = total
    item.content_length = content
    item.sender_ssrc = read_u32(p + 4) if content >= 8 else 0
    return offset + total


cdef int rtcp_parse_sr(const unsigned char* buf, const RtcpItem* item,
                       RtcpSenderInfo* out) noexcept nogil:
    """Sender info of a sender report (RFC 3550 §6.4.1); blocks via rtcp_parse_report_blocks."""
    cdef const unsigned char* p = buf + item.offset
    if item.packet_type != RTCP_SR:
        return RTCP_ERR_TYPE
    if item.content_length < 8 + RTCP_SENDER_INFO_LENGTH:
        return RTCP_ERR_LENGTH
    out.ssrc = read_u32(p + 4)
    out.ntp_sec = read_u32(p + 8)
    out.ntp_frac = read_u32(p + 12)
    out.rtp_timestamp = read_u32(p + 16)
    out.packet_count = read_u32(p + 20)
    out.octet_count = read_u32(p + 24)
    return RTCP_OK


cdef int rtcp_parse_report_blocks(const unsigned char* buf, const RtcpItem* item,
                                  RtcpReportBlock* blocks, int max_blocks) noexcept nogil:
    """Report blocks of an SR or RR (RFC 3550 §6.4); the number written, at most max_blocks."""
    cdef const unsigned char* p
    cdef int start, i, n
    if item.packet_type == RTCP_SR:
        start = 8 + RTCP_SENDER_INFO_LENGTH
    elif item.packet_type == RTCP_RR:
        start = 8
    else:
        return RTCP_ERR_TYPE
    # profile-specific extensions may follow the blocks, so this is a lower bound
    if start + item.count * RTCP_REPORT_BLOCK_LENGTH > item.content_length:
        return RTCP_ERR_LENGTH
    n = item.count if item.count < max_blocks else max_blocks
    if n < 0:
        n = 0
    for i in range(n):
        p = buf + item.offset + start + i * RTCP_REPORT_BLOCK_LENGTH
        blocks[i].ssrc = read_u32(p)
        blocks[i].fraction_lost = p[4]
        blocks[i].total_lost = _signed24(_read_u24(p + 5))
        blocks[i].highest_seq = read_u32(p + 8)
        blocks[i].jitter = read_u32(p + 12)
        blocks[i].lsr = read_u32(p + 16)
        blocks[i].dlsr = read_u32(p + 20)
    return n


cdef int rtcp_parse_feedback(const unsigned char* buf, const RtcpItem* item,
                             RtcpFeedback* out) noexcept nogil:
    """Common part of an RTPFB or PSFB message (RFC 4585 §6.1)."""
    cdef const unsigned char* p = buf + item.offset
    if item.packet_type != RTCP_RTPFB and item.packet_type != RTCP_PSFB:
        return RTCP_ERR_TYPE
    if item.content_length < RTCP_FEEDBACK_HEADER_LENGTH:
        return RTCP_ERR_LENGTH
    out.sender_ssrc = read_u32(p + 4)
    out.media_ssrc = read_u32(p + 8)
    out.fci_offset = item.offset + RTCP_FEEDBACK_HEADER_LENGTH
    out.fci_length = item.content_length - RTCP_FEEDBACK_HEADER_LENGTH
    return RTCP_OK


cdef int rtcp_parse_fir(const unsigned char* buf, const RtcpItem* item,
                        RtcpFirEntry* entries, int max_entries) noexcept nogil:
    """FCI entries of a Full Intra Request (RFC 5104 §4.3.1); the number written."""
    cdef RtcpFeedback fb
    cdef const unsigned char* p
    cdef int i, n, rc
    if item.packet_type != RTCP_PSFB or item.count != RTCP_PSFB_FIR:
        return RTCP_ERR_TYPE
    rc = rtcp_parse_feedback(buf, item, &fb)
    if rc < 0:
        return rc
    if fb.fci_length == 0 or fb.fci_length % RTCP_FIR_ENTRY_LENGTH:
        return RTCP_ERR_LENGTH
    n = fb.fci_length // RTCP_FIR_ENTRY_LENGTH
    if n > max_entries:
        n = max_entries if max_entries > 0 else 0
    for i in range(n):
        p = buf + fb.fci_offset + i * RTCP_FIR_ENTRY_LENGTH
        entries[i].ssrc = read_u32(p)
        entries[i].seqnr = p[4]
    return n


cdef int rtcp_parse_nack(const unsigned char* buf, const RtcpItem* item,
                         uint16_t* lost, int max_lost) noexcept nogil:
    """Lost sequence numbers of a generic NACK (RFC 4585 §6.2.1) in FCI order, up to max_lost."""
    cdef RtcpFeedback fb
    cdef const unsigned char* p
    cdef int i, bit, n = 0, rc
    cdef uint16_t pid, blp
    if item.packet_type != RTCP_RTPFB or item.count != RTCP_RTPFB_NACK:
        return RTCP_ERR_TYPE
    rc = rtcp_parse_feedback(buf, item, &fb)
    if rc < 0:
        return rc
    if fb.fci_length % 4:
        return RTCP_ERR_LENGTH
    for i in range(fb.fci_length // 4):
        p = buf + fb.fci_offset + i * 4
        pid = read_u16(p)
        blp = read_u16(p + 2)
        if n >= max_lost:
            break
        lost[n] = pid
        n += 1
        for bit in range(16):
            if (blp >> bit) & 1:
                if n >= max_lost:
                    break
                lost[n] = <uint16_t>(pid + bit + 1)
                n += 1
    return n


cdef int rtcp_parse_remb(const unsigned char* buf, const RtcpItem* item, RtcpRemb* out,
                         uint32_t* ssrcs, int max_ssrcs) noexcept nogil:
    """Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb-03 §2.2); SSRCs written."""
    cdef RtcpFeedback fb
    cdef const unsigned char* p
    cdef int i, n, rc, exponent
    cdef uint64_t mantissa
    if item.packet_type != RTCP_PSFB or item.count != RTCP_PSFB_APP:
        return RTCP_ERR_TYPE
    rc = rtcp_parse_feedback(buf, item, &fb)
    if rc < 0:
        return rc
    if fb.fci_length < RTCP_REMB_FCI_LENGTH:
        return RTCP_ERR_LENGTH
    p = buf + fb.fci_offset
    if p[0] != b'R' or p[1] != b'E' or p[2] != b'M' or p[3] != b'B':
        return RTCP_ERR_FORMAT
    n = p[4]
    if RTCP_REMB_FCI_LENGTH + 4 * n > fb.fci_length:
        return RTCP_ERR_LENGTH
    exponent = p[5] >> 2
    mantissa = ((<uint64_t>(p[5] & 0x03)) << 16) | read_u16(p + 6)
    out.sender_ssrc = fb.sender_ssrc
    if exponent > 64 - 18 and (mantissa >> (64 - exponent)) != 0:
        out.bitrate = UINT64_MAX
    else:
        out.bitrate = mantissa << exponent
    out.ssrc_count = n
    if n > max_ssrcs:
        n = max_ssrcs if max_ssrcs > 0 else 0
    for i in range(n):
        ssrcs[i] = read_u32(p + RTCP_REMB_FCI_LENGTH + 4 * i)
    return n


cdef int rtcp_parse_twcc(const unsigned char* buf, const RtcpItem* item,
                         RtcpTwcc* out) noexcept nogil:
    """Header fields of a transport-wide feedback message (transport-cc §3.1)."""
    cdef RtcpFeedback fb
    cdef const unsigned char* p
    cdef int rc
    if item.packet_type != RTCP_RTPFB or item.count != RTCP_RTPFB_TWCC:
        return RTCP_ERR_TYPE
    rc = rtcp_parse_feedback(buf, item, &fb)
    if rc < 0:
        return rc
    if fb.fci_length < RTCP_TWCC_FCI_HEADER_LENGTH:
        return RTCP_ERR_LENGTH
    p = buf + fb.fci_offset
    out.sender_ssrc = fb.sender_ssrc
    out.media_ssrc = fb.media_ssrc
    out.base_seq = read_u16(p)
    out.status_count = read_u16(p + 2)
    out.reference_time = _signed24(_read_u24(p + 4))
    out.fb_count = p[7]
    return RTCP_OK


cdef inline int _twcc_chunk_symbols(uint16_t chunk) noexcept nogil:
    """How many packets a packet status chunk describes."""
    if not (chunk & 0x8000):
        return chunk & TWCC_RUN_LENGTH_MAX
    if chunk & 0x4000:
        return TWCC_TWO_BIT_SYMBOLS
    return TWCC_ONE_BIT_SYMBOLS


cdef inline int _twcc_chunk_symbol(uint16_t chunk, int k) noexcept nogil:
    """The k-th status symbol of a chunk."""
    if not (chunk & 0x8000):
        return (chunk >> 13) & 0x03
    if chunk & 0x4000:
        return (chunk >> (12 - 2 * k)) & 0x03
    return (chunk >> (13 - k)) & 0x01


cdef int rtcp_twcc_decode(const unsigned char* buf, const RtcpItem* item,
                          TwccPacketStatus* packets, int max_packets) noexcept nogil:
    """Per-packet status and receive delta of a transport-wide feedback (transport-cc §3.1.1-3.1.5).

    Validates the whole message, then writes the first max_packets statuses;
    returns how many were written.
    """
    cdef RtcpTwcc header
    cdef const unsigned char* p
    cdef int rc, chunks_start, pos, end, described, take, k, symbol
    cdef int total, delta_pos, i, n
    cdef int64_t delta_bytes = 0
    cdef uint16_t chunk
    rc = rtcp_parse_twcc(buf, item, &header)
    if rc < 0:
        return rc
    total = header.status_count
    chunks_start = item.offset + RTCP_FEEDBACK_HEADER_LENGTH + RTCP_TWCC_FCI_HEADER_LENGTH
    end = item.offset + item.content_length

    # Pass 1, per chunk: where the deltas start and how many bytes they take.
    pos = chunks_start
    described = 0
    while described < total:
        if pos + 2 > end:
            return RTCP_ERR_TRUNCATED
        chunk = read_u16(buf + pos)
        pos += 2
        take = _twcc_chunk_symbols(chunk)
        if take > total - described:
            take = total - described
        if not (chunk & 0x8000):
            symbol = _twcc_chunk_symbol(chunk, 0)
            if symbol == 3:
                return RTCP_ERR_FORMAT
            delta_bytes += take * symbol
        else:
            for k in range(take):
                symbol = _twcc_chunk_symbol(chunk, k)
                if symbol == 3:
                    return RTCP_ERR_FORMAT
                delta_bytes += symbol
        described += take
    if pos + delta_bytes > end:
        return RTCP_ERR_TRUNCATED

    # Pass 2, per packet up to the caller's room: statuses and deltas.
    n = total if total < max_packets else max_packets
    if n < 0:
        n = 0
    delta_pos = pos
    pos = chunks_start
    i = 0
    while i < n:
        chunk = read_u16(buf + pos)
        pos += 2
        take = _twcc_chunk_symbols(chunk)
        k = 0
        while k < take and i < n:
            symbol = _twcc_chunk_symbol(chunk, k)
            packets[i].seq = <uint16_t>(header.base_seq + i)
            packets[i].status = symbol
            if symbol == TWCC_SMALL_DELTA:
                packets[i].delta = buf[delta_pos]
                delta_pos += 1
            elif symbol == TWCC_LARGE_DELTA:
                packets[i].delta = <int16_t>read_u16(buf + delta_pos)
                delta_pos += 2
            else:
                packets[i].delta = 0
            k += 1
            i += 1
    return n


cdef int rtcp_parse_bye(const unsigned char* buf, const RtcpItem* item,
                        uint32_t* ssrcs, int max_ssrcs) noexcept nogil:
    """Sources leaving (RFC 3550 §6.6); the number written. The reason is not read."""
    cdef int i, n
    if item.packet_type != RTCP_BYE:
        return RTCP_ERR_TYPE
    if RTCP_HEADER_LENGTH + 4 * item.count > item.content_length:
        return RTCP_ERR_LENGTH
    n = item.count if item.count < max_ssrcs else max_ssrcs
    if n < 0:
        n = 0
    for i in range(n):
        ssrcs[i] = read_u32(buf + item.offset + RTCP_HEADER_LENGTH + 4 * i)
    return n


cdef int rtcp_rewrite_media_ssrc(unsigned char* buf, const RtcpItem* item,
                                 uint32_t new_sender_ssrc, uint32_t new_media_ssrc) noexcept nogil:
    """Retarget a PLI, FIR or NACK in place, for relaying consumer feedback to a producer.

    FIR names its target in each FCI entry (RFC 5104 §4.3.1.2) and leaves the
    header's media SSRC at 0, so it is rewritten only where a sender filled it.
    """
    cdef unsigned char* p = buf + item.offset
    cdef int fci_length, i, is_fir
    is_fir = item.packet_type == RTCP_PSFB and item.count == RTCP_PSFB_FIR
    if not (is_fir or (item.packet_type == RTCP_PSFB and item.count == RTCP_PSFB_PLI)
            or (item.packet_type == RTCP_RTPFB and item.count == RTCP_RTPFB_NACK)):
        return RTCP_ERR_TYPE
    if item.content_length < RTCP_FEEDBACK_HEADER_LENGTH:
        return RTCP_ERR_LENGTH
    fci_length = item.content_length - RTCP_FEEDBACK_HEADER_LENGTH
    if is_fir:
        if fci_length == 0 or fci_length % RTCP_FIR_ENTRY_LENGTH:
            return RTCP_ERR_LENGTH
        for i in range(fci_length // RTCP_FIR_ENTRY_LENGTH):
            write_u32(p + RTCP_FEEDBACK_HEADER_LENGTH + i * RTCP_FIR_ENTRY_LENGTH, new_media_ssrc)
        if read_u32(p + 8) != 0:
            write_u32(p + 8, new_media_ssrc)
    else:
        write_u32(p + 8, new_media_ssrc)
    write_u32(p + 4, new_sender_ssrc)
    return RTCP_OK


cdef inline void _write_report_block(unsigned char* p, const RtcpReportBlock* block) noexcept nogil:
    cdef int32_t lost = block.total_lost
    if lost > PACKETS_LOST_MAX:
        lost = PACKETS_LOST_MAX
    elif lost < PACKETS_LOST_MIN:
        lost = PACKETS_LOST_MIN
    write_u32(p, block.ssrc)
    p[4] = block.fraction_lost
    _write_u24(p + 5, <uint32_t>lost & 0xFFFFFF)
    write_u32(p + 8, block.highest_seq)
    write_u32(p + 12, block.jitter)
    write_u32(p + 16, block.lsr)
    write_u32(p + 20, block.dlsr)


cdef int rtcp_build_sr(unsigned char* dst, int capacity, const RtcpSenderInfo* info,
                       const RtcpReportBlock* blocks, int block_count) noexcept nogil:
    """Sender report with 0..31 report blocks (RFC 3550 §6.4.1)."""
    cdef int i, total = 8 + RTCP_SENDER_INFO_LENGTH + block_count * RTCP_REPORT_BLOCK_LENGTH
    if dst == NULL or block_count < 0 or block_count > RTCP_MAX_COUNT or capacity < total:
        return RTCP_ERR_CAPACITY
    if block_count > 0 and blocks == NULL:
        return RTCP_ERR_CAPACITY
    _write_header(dst, block_count, RTCP_SR, total)
    write_u32(dst + 4, info.ssrc)
    write_u32(dst + 8, info.ntp_sec)
    write_u32(dst + 12, info.ntp_frac)
    write_u32(dst + 16, info.rtp_timestamp)
    write_u32(dst + 20, info.packet_count)
    write_u32(dst + 24, info.octet_count)
    for i in range(block_count):
        _write_report_block(dst + 28 + i * RTCP_REPORT_BLOCK_LENGTH, &blocks[i])
    return total


cdef int rtcp_build_rr(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                       const RtcpReportBlock* blocks, int block_count) noexcept nogil:
    """Receiver report with 0..31 report blocks (RFC 3550 §6.4.2)."""
    cdef int i, total = 8 + block_count * RTCP_REPORT_BLOCK_LENGTH
    if dst == NULL or block_count < 0 or block_count > RTCP_MAX_COUNT or capacity < total:
        return RTCP_ERR_CAPACITY
    if block_count > 0 and blocks == NULL:
        return RTCP_ERR_CAPACITY
    _write_header(dst, block_count, RTCP_RR, total)
    write_u32(dst + 4, sender_ssrc)
    for i in range(block_count):
        _write_report_block(dst + 8 + i * RTCP_REPORT_BLOCK_LENGTH, &blocks[i])
    return total


cdef inline int _build_feedback(unsigned char* dst, int capacity, int packet_type, int fmt,
                                uint32_t sender_ssrc, uint32_t media_ssrc,
                                int fci_length) noexcept nogil:
    """Header and SSRCs of a feedback message whose FCI the caller writes next."""
    cdef int total = RTCP_FEEDBACK_HEADER_LENGTH + fci_length
    if dst == NULL or capacity < total:
        return RTCP_ERR_CAPACITY
    _write_header(dst, fmt, packet_type, total)
    write_u32(dst + 4, sender_ssrc)
    write_u32(dst + 8, media_ssrc)
    return total


cdef int rtcp_build_pli(unsigned char* dst, int capacity,
                        uint32_t sender_ssrc, uint32_t media_ssrc) noexcept nogil:
    """Picture Loss Indication (RFC 4585 §6.3.1)."""
    return _build_feedback(dst, capacity, RTCP_PSFB, RTCP_PSFB_PLI, sender_ssrc, media_ssrc, 0)


cdef int rtcp_build_fir(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                        uint32_t media_ssrc, uint8_t seqnr) noexcept nogil:
    """Full Intra Request for one stream (RFC 5104 §4.3.1); the header's media SSRC stays 0."""
    cdef int total = _build_feedback(dst, capacity, RTCP_PSFB, RTCP_PSFB_FIR,
                                     sender_ssrc, 0, RTCP_FIR_ENTRY_LENGTH)
    if total < 0:
        return total
    write_u32(dst + 12, media_ssrc)
    dst[16] = seqnr
    dst[17] = 0
    dst[18] = 0
    dst[19] = 0
    return total


cdef int rtcp_build_nack(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                         uint32_t media_ssrc, const uint16_t* seqs, int seq_count) noexcept nogil:
    """Generic NACK (RFC 4585 §6.2.1): each seq within 16 after the current PID joins its BLP.

    Sequence numbers in ascending order (modulo 2**16) pack tightest.
    """
    cdef int i = 0, pos = RTCP_FEEDBACK_HEADER_LENGTH
    cdef uint16_t pid, blp, distance
    if dst == NULL or seqs == NULL or seq_count <= 0:
        return RTCP_ERR_CAPACITY
    while i < seq_count:
        pid = seqs[i]
        blp = 0
        i += 1
        while i < seq_count:
            distance = <uint16_t>(seqs[i] - pid - 1)
            if seqs[i] != pid:
                if distance >= 16:
                    break
                blp |= <uint16_t>(1 << distance)
            i += 1
        if pos + 4 > capacity:
            return RTCP_ERR_CAPACITY
        write_u16(dst + pos, pid)
        write_u16(dst + pos + 2, blp)
        pos += 4
    if pos > 4 * 65536:
        return RTCP_ERR_CAPACITY
    return _build_feedback(dst, capacity, RTCP_RTPFB, RTCP_RTPFB_NACK, sender_ssrc, media_ssrc,
                           pos - RTCP_FEEDBACK_HEADER_LENGTH)


cdef int rtcp_build_bye(unsigned char* dst, int capacity,
                        const uint32_t* ssrcs, int ssrc_count) noexcept nogil:
    """BYE for 0..31 sources, without a reason (RFC 3550 §6.6)."""
    cdef int i, total = RTCP_HEADER_LENGTH + 4 * ssrc_count
    if dst == NULL or ssrc_count < 0 or ssrc_count > RTCP_MAX_COUNT or capacity < total:
        return RTCP_ERR_CAPACITY
    if ssrc_count > 0 and ssrcs == NULL:
        return RTCP_ERR_CAPACITY
    _write_header(dst, ssrc_count, RTCP_BYE, total)
    for i in range(ssrc_count):
        write_u32(dst + RTCP_HEADER_LENGTH + 4 * i, ssrcs[i])
    return total


cdef int rtcp_build_remb(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                         uint64_t bitrate, const uint32_t* ssrcs, int ssrc_count) noexcept nogil:
    """REMB (draft-alvestrand-rmcat-remb-03 §2.2); the bitrate rounds down to an 18-bit mantissa."""
    cdef int i, total, exponent = 0
    cdef uint64_t mantissa = bitrate
    cdef unsigned char* p
    if ssrc_count < 0 or ssrc_count > RTCP_REMB_MAX_SSRCS or (ssrc_count > 0 and ssrcs == NULL):
        return RTCP_ERR_CAPACITY
    total = _build_feedback(dst, capacity, RTCP_PSFB, RTCP_PSFB_APP, sender_ssrc, 0,
                            RTCP_REMB_FCI_LENGTH + 4 * ssrc_count)
    if total < 0:
        return total
    while mantissa > REMB_MANTISSA_MAX:
        mantissa >>= 1
        exponent += 1
    p = dst + RTCP_FEEDBACK_HEADER_LENGTH
    p[0] = b'R'
    p[1] = b'E'
    p[2] = b'M'
    p[3] = b'B'
    p[4] = <unsigned char>ssrc_count
    p[5] = <unsigned char>((exponent << 2) | (mantissa >> 16))
    write_u16(p + 6, <uint16_t>(mantissa & 0xFFFF))
    for i in range(ssrc_count):
        write_u32(p + RTCP_REMB_FCI_LENGTH + 4 * i, ssrcs[i])
    return total


cdef inline int _twcc_symbol_for(const TwccPacketStatus* packet) noexcept nogil:
    """The status symbol that carries this packet's delta, -1 if none can."""
    if packet.status == TWCC_NOT_RECEIVED:
        return TWCC_NOT_RECEIVED
    if 0 <= packet.delta <= 0xFF:
        return TWCC_SMALL_DELTA
    if -32768 <= packet.delta <= 32767:
        return TWCC_LARGE_DELTA
    return -1


cdef int rtcp_build_twcc(unsigned char* dst, int capacity, const RtcpTwcc* header,
                         const TwccPacketStatus* packets) noexcept nogil:
    """Transport-wide feedback for header.status_count consecutive packets (transport-cc §3.1).

    packets[i] describes base_seq + i: its status decides received or not, and a
    received packet's delta (250 us units, from the previous received one, the
    first from the reference time) picks a small or large symbol. Runs of 14 or
    more equal symbols become run-length chunks, the rest status vectors.
    """
    cdef int total = header.status_count
    cdef int i, j, run, symbol, has_large, width, pos, delta_bytes = 0, length
    cdef uint16_t chunk
    cdef unsigned char* p
    if dst == NULL or packets == NULL or total <= 0:
        return RTCP_ERR_CAPACITY
    for i in range(total):
        symbol = _twcc_symbol_for(&packets[i])
        if symbol < 0:
            return RTCP_ERR_CAPACITY
        delta_bytes += symbol
    pos = RTCP_FEEDBACK_HEADER_LENGTH + RTCP_TWCC_FCI_HEADER_LENGTH
    i = 0
    while i < total:
        symbol = _twcc_symbol_for(&packets[i])
        run = 1
        while (i + run < total and run < TWCC_RUN_LENGTH_MAX
               and _twcc_symbol_for(&packets[i + run]) == symbol):
            run += 1
        has_large = 0
        for j in range(i, i + TWCC_ONE_BIT_SYMBOLS if i + TWCC_ONE_BIT_SYMBOLS < total else total):
            if _twcc_symbol_for(&packets[j]) == TWCC_LARGE_DELTA:
                has_large = 1
        if run >= TWCC_ONE_BIT_SYMBOLS or (has_large and run >= TWCC_TWO_BIT_SYMBOLS):
            chunk = <uint16_t>((symbol << 13) | run)
            width = run
        elif not has_large:
            chunk = 0x8000
            width = TWCC_ONE_BIT_SYMBOLS if i + TWCC_ONE_BIT_SYMBOLS <= total else total - i
            for j in range(width):
                chunk |= <uint16_t>(_twcc_symbol_for(&packets[i + j]) << (13 - j))
        else:
            chunk = 0xC000
            width = TWCC_TWO_BIT_SYMBOLS if i + TWCC_TWO_BIT_SYMBOLS <= total else total - i
            for j in range(width):
                chunk |= <uint16_t>(_twcc_symbol_for(&packets[i + j]) << (12 - 2 * j))
        if pos + 2 > capacity:
            return RTCP_ERR_CAPACITY
        write_u16(dst + pos, chunk)
        pos += 2
        i += width
    length = (pos + delta_bytes + 3) & ~3
    if length > capacity or length > 4 * 65536:
        return RTCP_ERR_CAPACITY
    for i in range(total):
        symbol = _twcc_symbol_for(&packets[i])
        if symbol == TWCC_SMALL_DELTA:
            dst[pos] = <unsigned char>packets[i].delta
            pos += 1
        elif symbol == TWCC_LARGE_DELTA:
            write_u16(dst + pos, <uint16_t>(<int16_t>packets[i].delta))
            pos += 2
    while pos < length:
        dst[pos] = 0
        pos += 1
    _build_feedback(dst, capacity, RTCP_RTPFB, RTCP_RTPFB_TWCC, header.sender_ssrc,
                    header.media_ssrc, length - RTCP_FEEDBACK_HEADER_LENGTH)
    p = dst + RTCP_FEEDBACK_HEADER_LENGTH
    write_u16(p, header.base_seq)
    write_u16(p + 2, header.status_count)
    _write_u24(p + 4, <uint32_t>header.reference_time & 0xFFFFFF)
    p[7] = header.fb_count
    return length


cdef uint64_t ntp_from_unix(int64_t sec, int64_t nsec) noexcept nogil:
    """64-bit NTP timestamp (RFC 5905 era 0, wrapping in 2036) of a Unix time."""
    cdef uint64_t seconds = <uint32_t>(sec + NTP_UNIX_EPOCH_OFFSET)
    cdef uint64_t fraction = ((<uint64_t>nsec) << 32) // 1000000000
    return (seconds << 32) | <uint32_t>fraction


cdef uint64_t ntp_now() noexcept nogil:
    """Wall clock as a 64-bit NTP timestamp, for SR sender info and LSR/DLSR."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ntp_from_unix(ts.tv_sec, ts.tv_nsec)


cdef int64_t rtcp_rtt(uint32_t now_compact, uint32_t lsr, uint32_t dlsr) noexcept nogil:
    """RTT = A - LSR - DLSR in 1/65536 s (RFC 3550 §6.4.1); RTCP_RTT_UNKNOWN without an SR."""
    cdef uint32_t rtt
    if lsr == 0:
        return RTCP_RTT_UNKNOWN
    rtt = now_compact - lsr - dlsr
    # a "negative" RTT is clock skew on the peer, not a real measurement
    if <int32_t>rtt < 0:
        return 0
    return rtt


cdef void recv_stats_init(RecvStats* stats, uint32_t ssrc) noexcept nogil:
    stats.ssrc = ssrc
    stats.started = 0
    stats.max_seq = 0
    stats.cycles = 0
    stats.base_seq = 0
    stats.bad_seq = RTP_SEQ_MOD + 1
    stats.received = 0
    stats.expected_prior = 0
    stats.received_prior = 0
    stats.jitter.last_transit = 0
    stats.jitter.jitter_q4 = 0
    stats.jitter.has_transit = 0
    stats.last_sr = 0
    stats.last_sr_arrival = 0


cdef inline void _recv_stats_restart(RecvStats* stats, uint16_t seq) noexcept nogil:
    """Start counting afresh from seq (RFC 3550 A.1 init_seq)."""
    stats.started = 1
    stats.base_seq = seq
    stats.max_seq = seq
    stats.bad_seq = RTP_SEQ_MOD + 1
    stats.cycles = 0
    stats.received = 0
    stats.expected_prior = 0
    stats.received_prior = 0
    stats.jitter.has_transit = 0


cdef int recv_stats_update(RecvStats* stats, uint16_t seq, uint32_t rtp_ts,
                           uint32_t arrival) noexcept nogil:
    """Count one received packet (RFC 3550 A.1, without probation); arrival in RTP clock units.

    Jitter follows only packets that advance the sequence: reordered and
    retransmitted packets carry old timestamps and would read as delay.
    """
    cdef uint16_t udelta
    if not stats.started:
        _recv_stats_restart(stats, seq)
        stats.received = 1
        jitter_update(&stats.jitter, rtp_ts, arrival)
        return RECV_PACKET_COUNTED
    udelta = <uint16_t>(seq - stats.max_seq)
    if udelta < MAX_DROPOUT:
        if udelta != 0:
            if seq < stats.max_seq:
                stats.cycles += RTP_SEQ_MOD
            stats.max_seq = seq
            jitter_update(&stats.jitter, rtp_ts, arrival)
    elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
        if seq != stats.bad_seq:
            stats.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
            return RECV_PACKET_JUMP
        # two sequential packets after a jump: the source restarted
        _recv_stats_restart(stats, seq)
        jitter_update(&stats.jitter, rtp_ts, arrival)
    stats.received += 1
    return RECV_PACKET_COUNTED


cdef void recv_stats_on_sr(RecvStats* stats, uint32_t sr_compact,
                           uint32_t arrival_compact) noexcept nogil:
    """Remember a sender report for the LSR and DLSR of the next report block."""
    stats.last_sr = sr_compact
    stats.last_sr_arrival = arrival_compact


cdef void recv_stats_report_block(RecvStats* stats, RtcpReportBlock* out,
                                  uint32_t now_compact) noexcept nogil:
    """A report block for this stream (RFC 3550 A.3); starts the next fraction-lost interval."""
    cdef uint32_t extended_max = stats.cycles + stats.max_seq
    cdef int64_t expected = 0, lost, expected_interval, received_interval, lost_interval
    if stats.started:
        expected = <int64_t>extended_max - stats.base_seq + 1
    lost = expected - stats.received
    if lost > PACKETS_LOST_MAX:
        lost = PACKETS_LOST_MAX
    elif lost < PACKETS_LOST_MIN:
        lost = PACKETS_LOST_MIN
    expected_interval = expected - stats.expected_prior
    stats.expected_prior = <uint32_t>expected
    received_interval = <int64_t>stats.received - stats.received_prior
    stats.received_prior = stats.received
    lost_interval = expected_interval - received_interval
    out.ssrc = stats.ssrc
    if expected_interval <= 0 or lost_interval <= 0:
        out.fraction_lost = 0
    else:
        out.fraction_lost = <uint8_t>((lost_interval << 8) // expected_interval)
    out.total_lost = <int32_t>lost
    out.highest_seq = extended_max
    out.jitter = stats.jitter.jitter_q4 >> 4
    out.lsr = stats.last_sr
    out.dlsr = now_compact - stats.last_sr_arrival if stats.last_sr != 0 else 0


# ---------------------------------------------------------------------------
# Python views, for tests and the control plane.

def _report_block_dict(RtcpReportBlock block):
    return {
        "ssrc": block.ssrc,
        "fraction_lost": block.fraction_lost,
        "total_lost": block.total_lost,
        "highest_seq": block.highest_seq,
        "jitter": block.jitter,
        "lsr": block.lsr,
        "dlsr": block.dlsr,
    }


cdef RtcpReportBlock _report_block_from(object block) except *:
    cdef RtcpReportBlock out
    out.ssrc = block["ssrc"]
    out.fraction_lost = block.get("fraction_lost", 0)
    out.total_lost = block.get("total_lost", 0)
    out.highest_seq = block.get("highest_seq", 0)
    out.jitter = block.get("jitter", 0)
    out.lsr = block.get("lsr", 0)
    out.dlsr = block.get("dlsr", 0)
    return out


cdef object _parse_item(const unsigned char* buf, RtcpItem* item):
    """A dict of every field the parsers read from one packet, or a negative code."""
    cdef RtcpSenderInfo sr
    cdef RtcpReportBlock blocks[RTCP_MAX_COUNT]
    cdef RtcpFeedback fb
    cdef RtcpFirEntry fir[64]
    cdef uint16_t lost[1024]
    cdef RtcpRemb remb
    cdef uint32_t ssrcs[RTCP_REMB_MAX_SSRCS]
    cdef RtcpTwcc twcc
    cdef TwccPacketStatus statuses[1024]
    cdef int i, n, rc
    packet = {
        "packet_type": item.packet_type,
        "count": item.count,
        "offset": item.offset,
        "length": item.length,
        "sender_ssrc": item.sender_ssrc,
    }
    pt = item.packet_type
    if pt == RTCP_SR:
        rc = rtcp_parse_sr(buf, item, &sr)
        if rc < 0:
            return rc
        packet.update(ssrc=sr.ssrc, ntp_sec=sr.ntp_sec, ntp_frac=sr.ntp_frac,
                      rtp_timestamp=sr.rtp_timestamp, packet_count=sr.packet_count,
                      octet_count=sr.octet_count)
    if pt == RTCP_SR or pt == RTCP_RR:
        n = rtcp_parse_report_blocks(buf, item, blocks, RTCP_MAX_COUNT)
        if n < 0:
            return n
        packet["reports"] = [_report_block_dict(blocks[i]) for i in range(n)]
    elif pt == RTCP_BYE:
        n = rtcp_parse_bye(buf, item, ssrcs, RTCP_MAX_COUNT)
        if n < 0:
            return n
        packet["ssrcs"] = [ssrcs[i] for i in range(n)]
    elif pt == RTCP_RTPFB or pt == RTCP_PSFB:
        rc = rtcp_parse_feedback(buf, item, &fb)
        if rc < 0:
            return rc
        packet["media_ssrc"] = fb.media_ssrc
        packet["fci"] = bytes(buf[fb.fci_offset:fb.fci_offset + fb.fci_length])
        if pt == RTCP_RTPFB and item.count == RTCP_RTPFB_NACK:
            n = rtcp_parse_nack(buf, item, lost, 1024)
            if n < 0:
                return n
            packet["lost"] = [lost[i] for i in range(n)]
        elif pt == RTCP_RTPFB and item.count == RTCP_RTPFB_TWCC:
            rc = rtcp_parse_twcc(buf, item, &twcc)
            if rc < 0:
                return rc
            n = rtcp_twcc_decode(buf, item, statuses, 1024)
            if n < 0:
                return n
            packet.update(base_seq=twcc.base_seq, status_count=twcc.status_count,
                          reference_time=twcc.reference_time, fb_count=twcc.fb_count,
                          packets=[(statuses[i].seq, statuses[i].status, statuses[i].delta)
                                   for i in range(n)])
        elif pt == RTCP_PSFB and item.count == RTCP_PSFB_FIR:
            n = rtcp_parse_fir(buf, item, fir, 64)
            if n < 0:
                return n
            packet["fir"] = [(fir[i].ssrc, fir[i].seqnr) for i in range(n)]
        elif pt == RTCP_PSFB and item.count == RTCP_PSFB_APP:
            n = rtcp_parse_remb(buf, item, &remb, ssrcs, RTCP_REMB_MAX_SSRCS)
            if n >= 0:
                packet.update(bitrate=remb.bitrate, ssrcs=[ssrcs[i] for i in range(n)])
            elif n != RTCP_ERR_FORMAT:  # other application feedback is not an error
                return n
    return packet


def parse_compound(const unsigned char[:] data):
    """Every packet of a compound as a dict, or the first negative RTCP_ERR_* met."""
    cdef RtcpItem item
    cdef int offset = 0, length = data.shape[0]
    cdef const unsigned char* buf = &data[0] if length > 0 else NULL
    packets = []
    while True:
        offset = rtcp_next(buf, length, offset, &item)
        if offset == 0:
            return packets
        if offset < 0:
            return offset
        packet = _parse_item(buf, &item)
        if isinstance(packet, int):
            return packet
        packets.append(packet)


cdef int _build_one(RtcpWriter* writer, tuple spec) except? -100:
    cdef RtcpSenderInfo sr
    cdef RtcpReportBlock blocks[RTCP_MAX_COUNT]
    cdef uint16_t seqs[4096]
    cdef uint32_t ssrcs[RTCP_REMB_MAX_SSRCS]
    cdef RtcpTwcc twcc
    cdef TwccPacketStatus statuses[4096]
    cdef int i, n
    cdef unsigned char* dst = rtcp_writer_tail(writer)
    cdef int room = rtcp_writer_room(writer)
    kind = spec[0]
    if kind == "sr" or kind == "rr":
        reports = spec[2] if kind == "rr" else spec[7]
        n = min(len(reports), RTCP_MAX_COUNT + 1)
        for i in range(min(n, RTCP_MAX_COUNT)):
            blocks[i] = _report_block_from(reports[i])
        if kind == "rr":
            return rtcp_writer_commit(writer, rtcp_build_rr(dst, room, spec[1], blocks, n))
        (sr.ssrc, sr.ntp_sec, sr.ntp_frac, sr.rtp_timestamp, sr.packet_count,
         sr.octet_count) = spec[1:7]
        return rtcp_writer_commit(writer, rtcp_build_sr(dst, room, &sr, blocks, n))
    if kind == "pli":
        return rtcp_writer_commit(writer, rtcp_build_pli(dst, room, spec[1], spec[2]))
    if kind == "fir":
        return rtcp_writer_commit(writer, rtcp_build_fir(dst, room, spec[1], spec[2], spec[3]))
    if kind == "nack":
        n = min(len(spec[3]), 4096)
        for i in range(n):
            seqs[i] = spec[3][i]
        return rtcp_writer_commit(writer, rtcp_build_nack(dst, room, spec[1], spec[2], seqs, n))
    if kind == "bye":
        n = min(len(spec[1]), RTCP_MAX_COUNT + 1)
        for i in range(min(n, RTCP_MAX_COUNT)):
            ssrcs[i] = spec[1][i]
        return rtcp_writer_commit(writer, rtcp_build_bye(dst, room, ssrcs, n))
    if kind == "remb":
        n = min(len(spec[3]), RTCP_REMB_MAX_SSRCS)
        for i in range(n):
            ssrcs[i] = spec[3][i]
        return rtcp_writer_commit(writer, rtcp_build_remb(dst, room, spec[1], spec[2], ssrcs, n))
    if kind == "twcc":
        (twcc.sender_ssrc, twcc.media_ssrc, twcc.base_seq, twcc.reference_time,
         twcc.fb_count) = spec[1:6]
        n = min(len(spec[6]), 4096)
        twcc.status_count = n
        for i in range(n):
            statuses[i].status, statuses[i].delta = spec[6][i]
        return rtcp_writer_commit(writer, rtcp_build_twcc(dst, room, &twcc, statuses))
    raise ValueError(f"unknown RTCP packet kind {kind!r}")


def build_compound(list specs, int capacity=1500):
    """Consecutive packets from specs, or the RTCP_ERR_* of the first that does not fit.

    Specs: ("sr", ssrc, ntp_sec, ntp_frac, rtp_ts, packets, octets, [block dicts]),
    ("rr", ssrc, [block dicts]), ("pli", sender, media), ("fir", sender, media, seqnr),
    ("nack", sender, media, [seq]), ("bye", [ssrc]), ("remb", sender, bitrate, [ssrc]),
    ("twcc", sender, media, base_seq, reference_time, fb_count, [(status, delta)]).
    """
    cdef bytearray out = bytearray(capacity)
    cdef RtcpWriter writer
    cdef int rc
    rtcp_writer_init(&writer, <unsigned char*>out if capacity > 0 else NULL, capacity)
    for spec in specs:
        rc = _build_one(&writer, spec)
        if rc < 0:
            return rc
    return bytes(out[:writer.length])


def rewrite_media_ssrc(bytearray data, int index, uint32_t sender_ssrc, uint32_t media_ssrc):
    """Retarget the index-th packet of a compound in place; RTCP_OK or a negative code."""
    cdef RtcpItem item
    cdef int offset = 0, i = 0, length = len(data)
    cdef unsigned char* buf = <unsigned char*>data if length > 0 else NULL
    while True:
        offset = rtcp_next(buf, length, offset, &item)
        if offset <= 0:
            return offset if offset < 0 else RTCP_ERR_TRUNCATED
        if i == index:
            return rtcp_rewrite_media_ssrc(buf, &item, sender_ssrc, media_ssrc)
        i += 1


def ntp_timestamp(sec=None, nsec=0):
    """The 64-bit NTP time of a Unix time, or of now."""
    if sec is None:
        return ntp_now()
    return ntp_from_unix(sec, nsec)


def compact_ntp(uint64_t ntp):
    return ntp_compact(ntp)


def round_trip_time(uint32_t now_compact, uint32_t lsr, uint32_t dlsr):
    """RTT in 1/65536 s, or RTCP_RTT_UNKNOWN."""
    return rtcp_rtt(now_compact, lsr, dlsr)


cdef class ReceiveStats:
    """RecvStats of one stream, driven from Python."""

    cdef RecvStats stats

    def __cinit__(self, uint32_t ssrc=0):
        recv_stats_init(&self.stats, ssrc)

    def update(self, uint16_t seq, uint32_t rtp_ts, uint32_t arrival):
        return recv_stats_update(&self.stats, seq, rtp_ts, arrival)

    def on_sender_report(self, uint32_t sr_compact, uint32_t arrival_compact):
        recv_stats_on_sr(&self.stats, sr_compact, arrival_compact)

    def report_block(self, uint32_t now_compact=0):
        cdef RtcpReportBlock block
        recv_stats_report_block(&self.stats, &block, now_compact)
        return _report_block_dict(block)

    @property
    def received(self):
        return self.stats.received
