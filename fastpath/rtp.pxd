# cython: language_level=3
"""RTP fixed header and header extensions (RFC 3550 section 5.1, RFC 8285), parsed in place."""

from libc.stdint cimport uint8_t, uint16_t, uint32_t

cdef enum:
    RTP_HEADER_LENGTH = 12
    RTP_VERSION = 2
    RTP_EXT_PROFILE_ONE_BYTE = 0xBEDE
    # 0x100X: the low four bits are "appbits" (RFC 8285 section 4.3)
    RTP_EXT_PROFILE_TWO_BYTE = 0x1000
    RTP_EXT_ONE_BYTE_MAX_ID = 14
    RTP_EXT_ONE_BYTE_STOP_ID = 15
    RTP_EXT_ONE_BYTE_MAX_LEN = 16

# parse_rtp() results: one code per drop reason, so the caller can count them
cdef enum:
    RTP_OK = 0
    RTP_ERR_SHORT = -1
    RTP_ERR_VERSION = -2
    RTP_ERR_CSRC = -3
    RTP_ERR_EXT_LEN = -4
    RTP_ERR_PADDING = -5

cdef struct RtpHeader:
    uint8_t marker
    uint8_t payload_type
    uint16_t sequence_number
    uint32_t timestamp
    uint32_t ssrc
    uint8_t csrc_count
    uint8_t has_padding
    uint8_t padding_len
    uint8_t has_extension
    uint16_t ext_profile    # 0xBEDE, 0x100X, another profile, or 0 without extension
    int ext_offset          # offset of the first extension element (after profile and length)
    int ext_len             # bytes of extension elements, a multiple of 4
    int header_len          # offset of the payload
    int payload_len         # bytes between the header and the padding


cdef inline uint16_t read_u16(const unsigned char* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t read_u32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline void write_u16(unsigned char* p, uint16_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>v

cdef inline void write_u32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef int parse_rtp(const unsigned char* buf, int length, RtpHeader* out) noexcept nogil

cdef int next_extension(const unsigned char* buf, const RtpHeader* h, int* pos,
                        int* ext_id, int* value_offset) noexcept nogil

cdef int find_extension(const unsigned char* buf, const RtpHeader* h, int ext_id,
                        int* value_offset) noexcept nogil


cdef inline bint is_rtcp(const unsigned char* buf, int length) noexcept nogil:
    """RTCP packet types 192..223 sit where RTP has marker and payload type (RFC 5761 section 4)."""
    return length >= 2 and 192 <= buf[1] <= 223

cdef inline void set_ssrc(unsigned char* buf, uint32_t ssrc) noexcept nogil:
    write_u32(buf + 8, ssrc)

cdef inline void set_sequence_number(unsigned char* buf, uint16_t seq) noexcept nogil:
    write_u16(buf + 2, seq)

cdef inline void set_timestamp(unsigned char* buf, uint32_t timestamp) noexcept nogil:
    write_u32(buf + 4, timestamp)

cdef inline void set_payload_type(unsigned char* buf, uint8_t payload_type) noexcept nogil:
    buf[1] = (buf[1] & 0x80) | (payload_type & 0x7F)

cdef inline void set_marker(unsigned char* buf, bint marker) noexcept nogil:
    buf[1] = (buf[1] & 0x7F) | (0x80 if marker else 0)
