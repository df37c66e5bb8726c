# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Payload descriptors of VP8, VP9, H264 and AV1 (and Opus) for forwarding decisions.

Only the descriptor and the first bytes of the bitstream are read, each after
a bounds check; a descriptor that runs past the payload is an error code, so
the caller can drop and count it.
"""

from libc.stdint cimport int32_t, uint64_t

from fastpath.rtp cimport read_u16, write_u16

cdef enum:
    # VP8 payload descriptor (RFC 7741 §4.2)
    VP8_X = 0x80
    VP8_S = 0x10
    VP8_PID_MASK = 0x07
    VP8_I = 0x80
    VP8_L = 0x40
    VP8_T = 0x20
    VP8_K = 0x10
    VP8_M = 0x80                # 15-bit picture id (VP9 too)
    VP8_PAYLOAD_P = 0x01        # payload header (RFC 7741 §4.3): 0 on key frames

    # VP9 payload descriptor (RFC 9628 §4.2)
    VP9_I = 0x80
    VP9_P = 0x40
    VP9_L = 0x20
    VP9_F = 0x10
    VP9_B = 0x08
    VP9_E = 0x04
    VP9_V = 0x02
    VP9_MAX_P_DIFF = 3
    VP9_SS_Y = 0x10
    VP9_SS_G = 0x08

    # H264 NAL unit types (RFC 6184 §5.2, H.264 Table 7-1)
    H264_NAL_TYPE_MASK = 0x1F
    H264_SLICE = 1
    H264_IDR = 5
    H264_SEI = 6
    H264_SPS = 7
    H264_PPS = 8
    H264_AUD = 9
    H264_STAP_A = 24
    H264_STAP_B = 25
    H264_FU_A = 28
    H264_FU_B = 29
    H264_FU_START = 0x80

    # AV1 aggregation header and OBU header (AV1 RTP §4.4, AV1 §5.3)
    AV1_Z = 0x80
    AV1_N = 0x08
    AV1_OBU_FORBIDDEN = 0x80
    AV1_OBU_EXTENSION = 0x04
    AV1_OBU_SEQUENCE_HEADER = 1
    AV1_OBU_FRAME_HEADER = 3
    AV1_OBU_METADATA = 5
    AV1_OBU_FRAME = 6
    AV1_LEB128_MAX_BYTES = 8


cdef inline void _info_reset(PayloadInfo* out) noexcept nogil:
    out.is_keyframe = 0
    out.temporal_id = -1
    out.spatial_id = 0
    out.layer_sync = 0
    out.begins_frame = 0
    out.ends_frame = -1
    out.picture_id = -1
    out.picture_id_bits = 0
    out.tl0picidx = -1
    out.header_length = 0
    out.inter_predicted = 0
    out.switch_mask = 0


cdef inline int _read_picture_id(const unsigned char* p, int length, int pos,
                                 PayloadInfo* out) noexcept nogil:
    """The 7- or 15-bit picture id shared by VP8 and VP9 descriptors; the next position."""
    if pos >= length:
        return PAYLOAD_ERR_TRUNCATED
    if p[pos] & VP8_M:
        if pos + 2 > length:
            return PAYLOAD_ERR_TRUNCATED
        out.picture_id = read_u16(p + pos) & 0x7FFF
        out.picture_id_bits = 15
        return pos + 2
    out.picture_id = p[pos] & 0x7F
    out.picture_id_bits = 7
    return pos + 1


cdef int _parse_vp8(const unsigned char* p, int length, PayloadInfo* out) noexcept nogil:
    """VP8 payload descriptor and the P bit of the payload header (RFC 7741 §4.2, §4.3)."""
    cdef int pos = 1, ext
    if length < 1:
        return PAYLOAD_ERR_TRUNCATED
    if p[0] & VP8_X:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        ext = p[pos]
        pos += 1
        if ext & VP8_I:
            pos = _read_picture_id(p, length, pos, out)
            if pos < 0:
                return pos
        if ext & VP8_L:
            if pos >= length:
                return PAYLOAD_ERR_TRUNCATED
            out.tl0picidx = p[pos]
            pos += 1
        if ext & (VP8_T | VP8_K):
            if pos >= length:
                return PAYLOAD_ERR_TRUNCATED
            if ext & VP8_T:
                out.temporal_id = p[pos] >> 6
                out.layer_sync = (p[pos] >> 5) & 1
            pos += 1
    out.header_length = pos
    out.begins_frame = (p[0] & VP8_S) != 0 and (p[0] & VP8_PID_MASK) == 0
    if out.begins_frame:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        out.is_keyframe = (p[pos] & VP8_PAYLOAD_P) == 0
    return PAYLOAD_OK


cdef int _skip_vp9_scalability_structure(const unsigned char* p, int length,
                                         int pos) noexcept nogil:
    """Step over a VP9 scalability structure (RFC 9628 §4.2.1); the next position."""
    cdef int spatial_layers, groups, i, references
    cdef int has_resolution, has_groups
    if pos >= length:
        return PAYLOAD_ERR_TRUNCATED
    spatial_layers = (p[pos] >> 5) + 1
    has_resolution = p[pos] & VP9_SS_Y
    has_groups = p[pos] & VP9_SS_G
    pos += 1
    if has_resolution:
        pos += 4 * spatial_layers
        if pos > length:
            return PAYLOAD_ERR_TRUNCATED
    if has_groups:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        groups = p[pos]
        pos += 1
        for i in range(groups):
            if pos >= length:
                return PAYLOAD_ERR_TRUNCATED
            references = (p[pos] >> 2) & 0x03
            pos += 1 + references
            if pos > length:
                return PAYLOAD_ERR_TRUNCATED
    return pos


cdef int _parse_vp9(const unsigned char* p, int length, PayloadInfo* out) noexcept nogil:
    """VP9 payload descriptor (RFC 9628 §4.2).

    A key frame is the first packet (B) of an intra-only (not P) picture of
    spatial layer 0: upper layers of that picture still predict from layer 0.
    """
    cdef int pos = 1, flags, diffs
    cdef int spatial_id = 0
    if length < 1:
        return PAYLOAD_ERR_TRUNCATED
    flags = p[0]
    if flags & VP9_I:
        pos = _read_picture_id(p, length, pos, out)
        if pos < 0:
            return pos
    if flags & VP9_L:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        out.temporal_id = p[pos] >> 5
        out.layer_sync = (p[pos] >> 4) & 1
        spatial_id = (p[pos] >> 1) & 0x07
        pos += 1
        if not (flags & VP9_F):
            if pos >= length:
                return PAYLOAD_ERR_TRUNCATED
            out.tl0picidx = p[pos]
            pos += 1
    if (flags & VP9_F) and (flags & VP9_P):
        diffs = 0
        while True:
            if pos >= length:
                return PAYLOAD_ERR_TRUNCATED
            diffs += 1
            pos += 1
            if not (p[pos - 1] & 0x01):
                break
            if diffs == VP9_MAX_P_DIFF:
                return PAYLOAD_ERR_INVALID
    if flags & VP9_V:
        pos = _skip_vp9_scalability_structure(p, length, pos)
        if pos < 0:
            return pos
    out.header_length = pos
    out.spatial_id = spatial_id
    out.begins_frame = (flags & VP9_B) != 0
    out.ends_frame = (flags & VP9_E) != 0
    out.inter_predicted = (flags & VP9_P) != 0
    out.is_keyframe = (flags & VP9_P) == 0 and (flags & VP9_B) != 0 and spatial_id == 0
    return PAYLOAD_OK


cdef inline void _h264_nal_start(const unsigned char* nal, int length, int nal_type,
                                 PayloadInfo* out, int first) noexcept nogil:
    """Note what the start of one NAL unit says; nal points past its header byte.

    A slice begins a picture when first_mb_in_slice is 0, whose ue(v) code is
    the single bit 1; parameter sets, SEI and delimiters precede a picture.
    """
    if nal_type == H264_IDR or nal_type == H264_SPS:
        out.is_keyframe = 1
    if not first:
        return
    if nal_type == H264_SLICE or nal_type == H264_IDR:
        out.begins_frame = length > 0 and (nal[0] & 0x80) != 0
    elif (nal_type == H264_SEI or nal_type == H264_SPS or nal_type == H264_PPS
          or nal_type == H264_AUD):
        out.begins_frame = 1


cdef int _parse_h264(const unsigned char* p, int length, PayloadInfo* out) noexcept nogil:
    """H264 packetization (RFC 6184 §5.6-5.8): single NAL unit, STAP-A/B, FU-A/B."""
    cdef int nal_type, pos, size, first = 1
    if length < 1:
        return PAYLOAD_ERR_TRUNCATED
    nal_type = p[0] & H264_NAL_TYPE_MASK
    if nal_type == H264_STAP_A or nal_type == H264_STAP_B:
        pos = 1 if nal_type == H264_STAP_A else 3   # STAP-B carries a 16-bit DON first
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        while pos < length:
            if pos + 2 > length:
                return PAYLOAD_ERR_TRUNCATED
            size = read_u16(p + pos)
            pos += 2
            if size == 0:
                return PAYLOAD_ERR_INVALID
            if pos + size > length:
                return PAYLOAD_ERR_TRUNCATED
            _h264_nal_start(p + pos + 1, size - 1, p[pos] & H264_NAL_TYPE_MASK, out, first)
            first = 0
            pos += size
    elif nal_type == H264_FU_A or nal_type == H264_FU_B:
        if length < 2:
            return PAYLOAD_ERR_TRUNCATED
        if p[1] & H264_FU_START:
            pos = 2 if nal_type == H264_FU_A else 4    # FU-B carries a DON
            if pos > length:
                return PAYLOAD_ERR_TRUNCATED
            _h264_nal_start(p + pos, length - pos, p[1] & H264_NAL_TYPE_MASK, out, 1)
    elif 1 <= nal_type <= 23:
        _h264_nal_start(p + 1, length - 1, nal_type, out, 1)
    return PAYLOAD_OK


cdef inline int _read_leb128(const unsigned char* p, int length, int pos,
                             uint64_t* value) noexcept nogil:
    """An AV1 leb128 (AV1 §4.10.5), at most 8 bytes; the next position."""
    cdef int i
    value[0] = 0
    for i in range(AV1_LEB128_MAX_BYTES):
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        value[0] |= (<uint64_t>(p[pos] & 0x7F)) << (7 * i)
        pos += 1
        if not (p[pos - 1] & 0x80):
            return pos
    return PAYLOAD_ERR_INVALID


cdef int _parse_av1(const unsigned char* p, int length, PayloadInfo* out) noexcept nogil:
    """AV1 aggregation header and the first whole OBU's header (AV1 RTP §4.4, AV1 §5.3).

    Every OBU element's length is checked against the payload; layer ids come
    from the first OBU that starts in this packet and has an extension header.
    """
    cdef int z, w, pos = 1, element = 0, obu_header, obu_type, seen_header = 0
    cdef uint64_t size
    if length < 2:
        return PAYLOAD_ERR_TRUNCATED
    z = (p[0] & AV1_Z) != 0
    w = (p[0] >> 4) & 0x03
    if z and (p[0] & AV1_N):
        return PAYLOAD_ERR_INVALID
    while pos < length:
        if w != 0 and element == w - 1:
            size = length - pos
        else:
            pos = _read_leb128(p, length, pos, &size)
            if pos < 0:
                return pos
            if size > <uint64_t>(length - pos):
                return PAYLOAD_ERR_TRUNCATED
        if size > 0 and not (element == 0 and z):
            obu_header = p[pos]
            if obu_header & AV1_OBU_FORBIDDEN:
                return PAYLOAD_ERR_INVALID
            if (obu_header & AV1_OBU_EXTENSION) and size < 2:
                return PAYLOAD_ERR_TRUNCATED
            if not seen_header:
                seen_header = 1
                obu_type = (obu_header >> 3) & 0x0F
                out.begins_frame = element == 0 and (
                    obu_type == AV1_OBU_SEQUENCE_HEADER or obu_type == AV1_OBU_FRAME_HEADER
                    or obu_type == AV1_OBU_METADATA or obu_type == AV1_OBU_FRAME)
                if obu_header & AV1_OBU_EXTENSION:
                    out.temporal_id = p[pos + 1] >> 5
                    out.spatial_id = (p[pos + 1] >> 3) & 0x03
        pos += <int>size
        element += 1
        if w != 0 and element == w:
            break
    if w != 0 and element < w:
        return PAYLOAD_ERR_TRUNCATED
    out.is_keyframe = (p[0] & AV1_N) != 0
    return PAYLOAD_OK


cdef int parse_payload(int codec, const unsigned char* payload, int length,
                       PayloadInfo* out) noexcept nogil:
    """Read the payload descriptor of one RTP payload of the given CODEC_*."""
    _info_reset(out)
    if payload == NULL or length <= 0:
        return PAYLOAD_ERR_TRUNCATED
    if codec == CODEC_VP8:
        return _parse_vp8(payload, length, out)
    if codec == CODEC_VP9:
        return _parse_vp9(payload, length, out)
    if codec == CODEC_H264:
        return _parse_h264(payload, length, out)
    if codec == CODEC_AV1:
        return _parse_av1(payload, length, out)
    if codec == CODEC_OPUS:
        # every Opus packet decodes on its own
        out.is_keyframe = 1
        out.begins_frame = 1
        out.ends_frame = 1
        return PAYLOAD_OK
    return PAYLOAD_ERR_CODEC


cdef int vp8_rewrite_picture_id(unsigned char* payload, int length,
                                int32_t new_picture_id, int new_tl0picidx) noexcept nogil:
    """Overwrite PictureID and TL0PICIDX in place, each unless VP8_KEEP (RFC 7741 §4.2).

    The field keeps its width, so a 7-bit picture id takes the low 7 bits.
    Fields the descriptor does not carry are left absent.
    """
    cdef int pos = 1, ext
    if payload == NULL or length < 1:
        return PAYLOAD_ERR_TRUNCATED
    if not (payload[0] & VP8_X):
        return PAYLOAD_OK
    if pos >= length:
        return PAYLOAD_ERR_TRUNCATED
    ext = payload[pos]
    pos += 1
    if ext & VP8_I:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        if payload[pos] & VP8_M:
            if pos + 2 > length:
                return PAYLOAD_ERR_TRUNCATED
            if new_picture_id != VP8_KEEP:
                write_u16(payload + pos, <unsigned short>(0x8000 | (new_picture_id & 0x7FFF)))
            pos += 2
        else:
            if new_picture_id != VP8_KEEP:
                payload[pos] = <unsigned char>(new_picture_id & 0x7F)
            pos += 1
    if ext & VP8_L:
        if pos >= length:
            return PAYLOAD_ERR_TRUNCATED
        if new_tl0picidx != VP8_KEEP:
            payload[pos] = <unsigned char>new_tl0picidx
    return PAYLOAD_OK


# ---------------------------------------------------------------------------
# Python views, for tests and the control plane.

_CODECS_BY_MIME = {
    "audio/opus": CODEC_OPUS,
    "video/vp8": CODEC_VP8,
    "video/vp9": CODEC_VP9,
    "video/h264": CODEC_H264,
    "video/av1": CODEC_AV1,
}


def codec_from_mime(str mime_type):
    """The CODEC_* of a mimeType such as "video/VP8", CODEC_UNKNOWN for others."""
    return _CODECS_BY_MIME.get(mime_type.lower(), CODEC_UNKNOWN)


def parse(int codec, const unsigned char[:] payload):
    """The PayloadInfo of one payload as a dict, or a negative PAYLOAD_ERR_*."""
    cdef PayloadInfo info
    cdef int length = payload.shape[0]
    cdef int rc = parse_payload(codec, &payload[0] if length > 0 else NULL, length, &info)
    if rc < 0:
        return rc
    return info


def rewrite_vp8_picture_id(bytearray payload, int32_t new_picture_id, int new_tl0picidx):
    """vp8_rewrite_picture_id on a bytearray; PAYLOAD_OK or a negative code."""
    cdef int length = len(payload)
    return vp8_rewrite_picture_id(<unsigned char*>payload if length > 0 else NULL,
                                  length, new_picture_id, new_tl0picidx)
