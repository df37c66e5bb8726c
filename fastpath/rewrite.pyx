# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Copy an RTP packet into a consumer's send slot with the consumer's SSRC, payload type,
sequence number, timestamp and extension IDs (RFC 3550 section 5.1, RFC 8285).
"""

from libc.stdint cimport uint16_t, uint32_t
from libc.string cimport memcpy, memset

from fastpath.rtp cimport (
    RTP_EXT_ONE_BYTE_MAX_ID,
    RTP_EXT_ONE_BYTE_MAX_LEN,
    RTP_EXT_PROFILE_ONE_BYTE,
    RTP_EXT_PROFILE_TWO_BYTE,
    RTP_HEADER_LENGTH,
    RtpHeader,
    find_extension,
    next_extension,
    parse_rtp,
    write_u16,
    write_u32,
)


cdef int rewrite_rtp(const unsigned char* src, const RtpHeader* h, unsigned char* dst,
                     int capacity, const RewriteParams* p) noexcept nogil:
    """Write the rewritten packet to dst (apart from src); its length or REWRITE_ERR_CAPACITY."""
    return rewrite_rtp_to(src, h, dst, capacity, p, NULL)


cdef int rewrite_rtp_to(const unsigned char* src, const RtpHeader* h, unsigned char* dst,
                        int capacity, const RewriteParams* p, RtpHeader* out) noexcept nogil:
    """rewrite_rtp(), also describing dst in out (when not NULL) for the in-place setters."""
    cdef int pos, length, ext_id = 0, value_offset = 0
    cdef int count = 0, value_bytes = 0, block_len = 0, block_start = 0, w, total, tail
    cdef int csrc_end = RTP_HEADER_LENGTH + 4 * h.csrc_count
    cdef bint one_byte = True, add_ensured
    cdef unsigned char new_id

    # first pass: which elements survive, and whether the one-byte form can carry them
    add_ensured = p.ensure_ext_id != 0
    pos = h.ext_offset
    while h.has_extension:
        length = next_extension(src, h, &pos, &ext_id, &value_offset)
        if length < 0:
            break
        new_id = p.ext_map[ext_id]
        if new_id == 0:
            continue
        if new_id == p.ensure_ext_id:
            add_ensured = False
        count += 1
        value_bytes += length
        if new_id > RTP_EXT_ONE_BYTE_MAX_ID or length == 0 or length > RTP_EXT_ONE_BYTE_MAX_LEN:
            one_byte = False
    if add_ensured:
        count += 1
        value_bytes += 2
        if p.ensure_ext_id > RTP_EXT_ONE_BYTE_MAX_ID:
            one_byte = False
    if count:
        block_len = (value_bytes + (count if one_byte else 2 * count) + 3) & ~3

    tail = h.payload_len + h.padding_len
    total = csrc_end + (4 + block_len if count else 0) + tail
    if total > capacity:
        return REWRITE_ERR_CAPACITY

    # version, padding bit and CSRC count as received; X only if elements are left
    dst[0] = (src[0] & 0xEF) | (0x10 if count else 0)
    dst[1] = (src[1] & 0x80) | (0x80 if p.set_marker else 0) | (p.payload_type & 0x7F)
    write_u16(dst + 2, p.sequence_number)
    write_u32(dst + 4, p.timestamp)
    write_u32(dst + 8, p.ssrc)
    memcpy(dst + RTP_HEADER_LENGTH, src + RTP_HEADER_LENGTH, csrc_end - RTP_HEADER_LENGTH)
    w = csrc_end

    if count:
        write_u16(dst + w, RTP_EXT_PROFILE_ONE_BYTE if one_byte else RTP_EXT_PROFILE_TWO_BYTE)
        write_u16(dst + w + 2, <uint16_t>(block_len >> 2))
        w += 4
        block_start = w
        pos = h.ext_offset
        while True:
            length = next_extension(src, h, &pos, &ext_id, &value_offset)
            if length < 0:
                break
            new_id = p.ext_map[ext_id]
            if new_id == 0:
                continue
            if one_byte:
                dst[w] = (new_id << 4) | (length - 1)
                w += 1
            else:
                dst[w] = new_id
                dst[w + 1] = <unsigned char>length
                w += 2
            memcpy(dst + w, src + value_offset, length)
            w += length
        if add_ensured:
            if one_byte:
                dst[w] = (p.ensure_ext_id << 4) | 1
                w += 1
            else:
                dst[w] = p.ensure_ext_id
                dst[w + 1] = 2
                w += 2
            dst[w] = 0
            dst[w + 1] = 0
            w += 2
        memset(dst + w, 0, block_start + block_len - w)
        w = block_start + block_len

    memcpy(dst + w, src + h.header_len, tail)

    if out != NULL:
        out[0] = h[0]
        out.payload_type = p.payload_type & 0x7F
        if p.set_marker:
            out.marker = 1
        out.sequence_number = p.sequence_number
        out.timestamp = p.timestamp
        out.ssrc = p.ssrc
        out.has_extension = count != 0
        out.ext_profile = 0
        out.ext_offset = 0
        out.ext_len = 0
        if count:
            out.ext_profile = RTP_EXT_PROFILE_ONE_BYTE if one_byte else RTP_EXT_PROFILE_TWO_BYTE
            out.ext_offset = block_start
            out.ext_len = block_len
        out.header_len = w
    return total


cdef int write_extension_value(unsigned char* buf, const RtpHeader* h, int ext_id,
                               const unsigned char* value, int length) noexcept nogil:
    """Overwrite the value of element ext_id in place; 0, or -1 if absent or of another length."""
    cdef int offset = 0
    if find_extension(buf, h, ext_id, &offset) != length:
        return -1
    memcpy(buf + offset, value, length)
    return 0


cdef int set_abs_send_time(unsigned char* buf, const RtpHeader* h, int ext_id,
                           uint32_t value) noexcept nogil:
    """abs-send-time: 24-bit 6.18 fixed-point seconds (webrtc.org abs-send-time)."""
    cdef unsigned char v[3]
    v[0] = <unsigned char>(value >> 16)
    v[1] = <unsigned char>(value >> 8)
    v[2] = <unsigned char>value
    return write_extension_value(buf, h, ext_id, v, 3)


cdef int set_transport_seq(unsigned char* buf, const RtpHeader* h, int ext_id,
                           uint16_t value) noexcept nogil:
    """Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01)."""
    cdef unsigned char v[2]
    write_u16(v, value)
    return write_extension_value(buf, h, ext_id, v, 2)


# Python wrappers, for tests and the control plane

cdef int _parse_or_raise(const unsigned char[:] data, RtpHeader* h) except -1:
    if data.shape[0] == 0 or parse_rtp(&data[0], data.shape[0], h) < 0:
        raise ValueError("RTP packet is invalid")
    return 0


def rewrite_py(const unsigned char[:] data, uint32_t ssrc, int payload_type,
               uint16_t sequence_number, uint32_t timestamp, dict ext_map, int capacity=2048,
               int ensure_ext_id=0):
    """Return the rewritten packet and the header rewrite_rtp_to() describes it with.

    ext_map maps producer IDs to consumer IDs; absent IDs are dropped. ensure_ext_id: a
    2-byte element added (zero) when no mapped element has that ID.
    """
    cdef RtpHeader h, out_h
    cdef RewriteParams p
    cdef int n
    _parse_or_raise(data, &h)
    memset(&p, 0, sizeof(p))
    p.ssrc = ssrc
    p.payload_type = payload_type
    p.sequence_number = sequence_number
    p.timestamp = timestamp
    p.ensure_ext_id = ensure_ext_id
    for old_id, new_id in ext_map.items():
        p.ext_map[<unsigned char>old_id] = new_id
    out = bytearray(capacity)
    cdef unsigned char[:] dst = out
    n = rewrite_rtp_to(&data[0], &h, &dst[0], capacity, &p, &out_h)
    if n < 0:
        raise ValueError("RTP packet does not fit the capacity")
    return bytes(out[:n]), out_h


def set_abs_send_time_py(const unsigned char[:] data, int ext_id, uint32_t value):
    """Return a copy with abs-send-time replaced, or None if the element is absent."""
    cdef RtpHeader h
    _parse_or_raise(data, &h)
    out = bytearray(data)
    cdef unsigned char[:] buf = out
    if set_abs_send_time(&buf[0], &h, ext_id, value) < 0:
        return None
    return bytes(out)


def set_transport_seq_py(const unsigned char[:] data, int ext_id, uint16_t value):
    """Return a copy with the transport-wide sequence number replaced, or None if absent."""
    cdef RtpHeader h
    _parse_or_raise(data, &h)
    out = bytearray(data)
    cdef unsigned char[:] buf = out
    if set_transport_seq(&buf[0], &h, ext_id, value) < 0:
        return None
    return bytes(out)


cdef class SequenceRewriter:
    """Python face of SeqRewriter, for tests."""
    cdef SeqRewriter r

    def __init__(self, uint16_t first_out=0):
        seq_rewrite_init(&self.r, first_out)

    def sync(self, uint16_t in_seq):
        seq_rewrite_sync(&self.r, in_seq)

    def out(self, uint16_t in_seq):
        return seq_rewrite_out(&self.r, in_seq)

    def drop(self, uint16_t in_seq):
        seq_rewrite_drop(&self.r, in_seq)

    def input_of(self, uint16_t out_seq):
        """The input sent as out_seq (seq_rewrite_in), -1 if none."""
        return seq_rewrite_in(&self.r, out_seq)

    @property
    def last_out(self):
        return self.r.last_out


cdef class TimestampRewriter:
    """Python face of TsRewriter, for tests."""
    cdef TsRewriter r

    def __init__(self, uint32_t first_out=0):
        ts_rewrite_init(&self.r, first_out)

    def sync(self, uint32_t in_ts, uint32_t gap):
        ts_rewrite_sync(&self.r, in_ts, gap)

    def out(self, uint32_t in_ts):
        return ts_rewrite_out(&self.r, in_ts)

    @property
    def last_out(self):
        return self.r.last_out
