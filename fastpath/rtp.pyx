# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parse RTP headers (RFC 3550 section 5.1) and header extensions (RFC 8285) without copying.

Everything here reads untrusted bytes: every offset is checked against the
datagram length before it is read.
"""

# metric labels for the drop reasons parse_rtp() returns
ERROR_NAMES = {
    RTP_ERR_SHORT: "short",
    RTP_ERR_VERSION: "version",
    RTP_ERR_CSRC: "csrc",
    RTP_ERR_EXT_LEN: "extension_length",
    RTP_ERR_PADDING: "padding",
}


cdef int parse_rtp(const unsigned char* buf, int length, RtpHeader* out) noexcept nogil:
    """Parse fixed header, CSRC list, extension bounds and padding (RFC 3550 section 5.1)."""
    cdef int pos, ext_len
    cdef unsigned char first
    if length < RTP_HEADER_LENGTH:
        return RTP_ERR_SHORT
    first = buf[0]
    if (first >> 6) != RTP_VERSION:
        return RTP_ERR_VERSION
    out.csrc_count = first & 0x0F
    pos = RTP_HEADER_LENGTH + 4 * out.csrc_count
    if pos > length:
        return RTP_ERR_CSRC

    out.has_extension = (first >> 4) & 1
    if out.has_extension:
        if length - pos < 4:
            return RTP_ERR_EXT_LEN
        ext_len = 4 * <int>read_u16(buf + pos + 2)
        if ext_len > length - pos - 4:
            return RTP_ERR_EXT_LEN
        out.ext_profile = read_u16(buf + pos)
        out.ext_offset = pos + 4
        out.ext_len = ext_len
        pos += 4 + ext_len
    else:
        out.ext_profile = 0
        out.ext_offset = 0
        out.ext_len = 0

    out.has_padding = (first >> 5) & 1
    if out.has_padding:
        # the last octet counts the padding, itself included
        if pos >= length or buf[length - 1] == 0 or buf[length - 1] > length - pos:
            return RTP_ERR_PADDING
        out.padding_len = buf[length - 1]
    else:
        out.padding_len = 0

    out.marker = buf[1] >> 7
    out.payload_type = buf[1] & 0x7F
    out.sequence_number = read_u16(buf + 2)
    out.timestamp = read_u32(buf + 4)
    out.ssrc = read_u32(buf + 8)
    out.header_len = pos
    out.payload_len = length - pos - out.padding_len
    return RTP_OK


cdef int next_extension(const unsigned char* buf, const RtpHeader* h, int* pos,
                        int* ext_id, int* value_offset) noexcept nogil:
    """Step to the next extension element (RFC 8285 4.2, 4.3); its length, or -1 at the end.

    Start with pos[0] = h.ext_offset. Padding bytes are skipped; a one-byte
    ID 15 ends the block, and so does an element running past its end (the
    elements before it still count, as in libwebrtc and mediasoup).
    """
    cdef int end = h.ext_offset + h.ext_len
    cdef int p = pos[0]
    cdef int length
    cdef unsigned char b
    if h.ext_profile == RTP_EXT_PROFILE_ONE_BYTE:
        while p < end:
            b = buf[p]
            if (b >> 4) == 0:
                p += 1
                continue
            if (b >> 4) == RTP_EXT_ONE_BYTE_STOP_ID:
                break
            length = (b & 0x0F) + 1
            if length > end - p - 1:
                break
            ext_id[0] = b >> 4
            value_offset[0] = p + 1
            pos[0] = p + 1 + length
            return length
    elif (h.ext_profile & 0xFFF0) == RTP_EXT_PROFILE_TWO_BYTE:
        while p < end:
            if buf[p] == 0:
                p += 1
                continue
            if end - p < 2:
                break
            length = buf[p + 1]
            if length > end - p - 2:
                break
            ext_id[0] = buf[p]
            value_offset[0] = p + 2
            pos[0] = p + 2 + length
            return length
    pos[0] = end
    return -1


cdef int find_extension(const unsigned char* buf, const RtpHeader* h, int ext_id,
                        int* value_offset) noexcept nogil:
    """Find element ext_id; its value length (two-byte elements may be empty), or -1."""
    cdef int pos = h.ext_offset
    cdef int found_id = 0
    cdef int length
    if ext_id <= 0:
        return -1
    while True:
        length = next_extension(buf, h, &pos, &found_id, value_offset)
        if length < 0 or found_id == ext_id:
            return length


# Python wrappers, for tests and the control plane

def parse_rtp_py(const unsigned char[:] data):
    """Return the parsed header as a dict, or the negative error code."""
    cdef RtpHeader h
    cdef int rc = parse_rtp(&data[0] if data.shape[0] else NULL, data.shape[0], &h)
    if rc < 0:
        return rc
    return h


def extensions_py(const unsigned char[:] data):
    """Return [(id, value bytes)] of a valid packet, in wire order."""
    cdef RtpHeader h
    cdef int pos, ext_id = 0, offset = 0, length
    cdef const unsigned char* buf = &data[0] if data.shape[0] else NULL
    if parse_rtp(buf, data.shape[0], &h) < 0:
        raise ValueError("RTP packet is invalid")
    result = []
    pos = h.ext_offset
    while True:
        length = next_extension(buf, &h, &pos, &ext_id, &offset)
        if length < 0:
            return result
        result.append((ext_id, bytes(data[offset:offset + length])))


def find_extension_py(const unsigned char[:] data, int ext_id):
    """Return the value of extension ext_id, or None."""
    cdef RtpHeader h
    cdef int offset = 0, length
    cdef const unsigned char* buf = &data[0] if data.shape[0] else NULL
    if parse_rtp(buf, data.shape[0], &h) < 0:
        raise ValueError("RTP packet is invalid")
    length = find_extension(buf, &h, ext_id, &offset)
    if length < 0:
        return None
    return bytes(data[offset:offset + length])


def is_rtcp_py(const unsigned char[:] data):
    return is_rtcp(&data[0] if data.shape[0] else NULL, data.shape[0])


def set_fields_py(unsigned char[:] data, ssrc=None, sequence_number=None, timestamp=None,
                  payload_type=None, marker=None):
    """Rewrite fixed-header fields of a writable buffer in place."""
    if data.shape[0] < RTP_HEADER_LENGTH:
        raise ValueError("RTP packet length is less than 12 bytes")
    if ssrc is not None:
        set_ssrc(&data[0], ssrc)
    if sequence_number is not None:
        set_sequence_number(&data[0], sequence_number)
    if timestamp is not None:
        set_timestamp(&data[0], timestamp)
    if payload_type is not None:
        set_payload_type(&data[0], payload_type)
    if marker is not None:
        set_marker(&data[0], marker)
