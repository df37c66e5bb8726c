# cython: language_level=3
"""Per-consumer RTP rewriting: header fields, extension IDs, sequence and timestamp continuity."""

from libc.stdint cimport uint8_t, uint16_t, uint32_t

from fastpath.rtp cimport RtpHeader

cdef enum:
    # rewrite_rtp(): the packet does not fit in the destination capacity
    REWRITE_ERR_CAPACITY = -16
    # seq_rewrite_out() drops inputs more than this far behind the newest one
    SEQ_MAX_AGE = 0x2000

cdef struct RewriteParams:
    uint32_t ssrc
    uint8_t payload_type
    uint16_t sequence_number
    uint32_t timestamp
    unsigned char ext_map[256]      # producer extension ID -> consumer ID, 0 drops the element
    # a consumer ID whose 2-byte element is added (zeroed) where the packet has none: the
    # transport-wide sequence number, which each outgoing transport numbers itself, so its
    # receiver can send transport-cc feedback even for producers that do not send the element
    unsigned char ensure_ext_id

cdef int rewrite_rtp(const unsigned char* src, const RtpHeader* h, unsigned char* dst,
                     int capacity, const RewriteParams* p) noexcept nogil
cdef int rewrite_rtp_to(const unsigned char* src, const RtpHeader* h, unsigned char* dst,
                        int capacity, const RewriteParams* p, RtpHeader* out) noexcept nogil

cdef int write_extension_value(unsigned char* buf, const RtpHeader* h, int ext_id,
                               const unsigned char* value, int length) noexcept nogil
cdef int set_abs_send_time(unsigned char* buf, const RtpHeader* h, int ext_id,
                           uint32_t value) noexcept nogil
cdef int set_transport_seq(unsigned char* buf, const RtpHeader* h, int ext_id,
                           uint16_t value) noexcept nogil


cdef struct SeqRewriter:
    uint16_t offset         # out = in + offset (mod 2**16)
    uint16_t max_in         # newest input since the last sync
    uint16_t floor_in       # oldest input still forwarded
    uint16_t last_out       # newest output
    bint started

cdef inline void seq_rewrite_init(SeqRewriter* r, uint16_t first_out) noexcept nogil:
    """The first packet forwarded will carry first_out."""
    r.offset = 0
    r.max_in = 0
    r.floor_in = 0
    r.last_out = <uint16_t>(first_out - 1)
    r.started = 0

cdef inline void seq_rewrite_sync(SeqRewriter* r, uint16_t in_seq) noexcept nogil:
    """Map in_seq to last_out + 1 (layer switch, resume); inputs before it are dropped."""
    r.offset = <uint16_t>(r.last_out + 1 - in_seq)
    r.max_in = <uint16_t>(in_seq - 1)
    r.floor_in = in_seq
    r.started = 1

cdef inline int seq_rewrite_out(SeqRewriter* r, uint16_t in_seq) noexcept nogil:
    """Return the outgoing sequence number, or -1 for an input older than the sync point."""
    cdef uint16_t ahead
    if not r.started:
        seq_rewrite_sync(r, in_seq)
    ahead = <uint16_t>(in_seq - r.max_in)
    if ahead != 0 and ahead < 0x8000:
        r.max_in = in_seq
        r.last_out = <uint16_t>(in_seq + r.offset)
        # keep the floor within half the sequence space, where "older" stays meaningful
        if <uint16_t>(in_seq - r.floor_in) > SEQ_MAX_AGE:
            r.floor_in = <uint16_t>(in_seq - SEQ_MAX_AGE)
    elif <uint16_t>(in_seq - r.floor_in) >= 0x8000:
        return -1
    return <uint16_t>(in_seq + r.offset)


cdef struct TsRewriter:
    uint32_t offset         # out = in + offset (mod 2**32)
    uint32_t max_in         # newest input since the last sync
    uint32_t last_out       # output of max_in
    bint started

cdef inline void ts_rewrite_init(TsRewriter* r, uint32_t first_out) noexcept nogil:
    """The first packet forwarded will carry first_out."""
    r.offset = 0
    r.max_in = 0
    r.last_out = first_out
    r.started = 0

cdef inline void ts_rewrite_sync(TsRewriter* r, uint32_t in_ts, uint32_t gap) noexcept nogil:
    """Map in_ts to last_out + gap, gap being the time since the last output in clock units."""
    r.offset = r.last_out + gap - in_ts
    r.max_in = in_ts
    r.last_out = r.last_out + gap
    r.started = 1

cdef inline uint32_t ts_rewrite_out(TsRewriter* r, uint32_t in_ts) noexcept nogil:
    """Return the outgoing timestamp; whether to drop is decided on the sequence number."""
    if not r.started:
        ts_rewrite_sync(r, in_ts, 0)
    if <uint32_t>(in_ts - r.max_in) < 0x80000000u:
        r.max_in = in_ts
        r.last_out = in_ts + r.offset
    return <uint32_t>(in_ts + r.offset)
