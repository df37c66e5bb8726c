# cython: language_level=3
"""Per-consumer RTP rewriting: header fields, extension IDs, sequence and timestamp continuity."""

from libc.stdint cimport uint8_t, uint16_t, uint32_t

from fastpath.rtp cimport RtpHeader

cdef enum:
    # rewrite_rtp(): the packet does not fit in the destination capacity
    REWRITE_ERR_CAPACITY = -16
    # seq_rewrite_out() drops inputs more than this far behind the newest one
    SEQ_MAX_AGE = 0x2000
    # inputs a consumer skipped (temporal and spatial layers above its own) that later numbering
    # still accounts for; a late packet from before the oldest of them is no longer forwarded
    DROP_LOG_SIZE = 64

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
    # set the RTP marker whatever the packet says: the last packet of the highest VP9 spatial
    # layer a consumer gets ends its frame (the producer marked the end of a higher one)
    bint set_marker

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


cdef struct DropLog:
    uint16_t values[DROP_LOG_SIZE]  # the last DROP_LOG_SIZE values dropped, a ring
    int count
    int head                        # where the next one goes

cdef inline void drop_log_clear(DropLog* d) noexcept nogil:
    d.count = 0
    d.head = 0

cdef inline int drop_log_add(DropLog* d, uint16_t value) noexcept nogil:
    """Log a dropped value; the value it pushed out of the ring, or -1."""
    cdef int evicted = -1
    if d.count == DROP_LOG_SIZE:
        evicted = d.values[d.head]
    else:
        d.count += 1
    d.values[d.head] = value
    d.head = (d.head + 1) % DROP_LOG_SIZE
    return evicted

cdef inline int drop_log_after(const DropLog* d, uint16_t value, uint16_t newest,
                               uint16_t mask) noexcept nogil:
    """How many logged values lie in (value, newest], modulo mask + 1."""
    cdef uint16_t span = (newest - value) & mask
    cdef uint16_t k
    cdef int i, n = 0
    for i in range(d.count):
        k = (d.values[i] - value) & mask
        if k != 0 and k <= span:
            n += 1
    return n

cdef inline bint drop_log_has(const DropLog* d, uint16_t value, uint16_t mask) noexcept nogil:
    cdef int i
    for i in range(d.count):
        if ((d.values[i] ^ value) & mask) == 0:
            return 1
    return 0


cdef struct SeqRewriter:
    uint16_t offset         # out = in + offset (mod 2**16) for the newest input
    uint16_t max_in         # newest input since the last sync
    uint16_t floor_in       # oldest input still forwarded
    uint16_t last_out       # newest output: always max_in + offset
    bint started
    DropLog dropped         # inputs dropped since the last sync: each moved offset down by one

cdef inline void seq_rewrite_init(SeqRewriter* r, uint16_t first_out) noexcept nogil:
    """The first packet forwarded will carry first_out."""
    r.offset = 0
    r.max_in = 0
    r.floor_in = 0
    r.last_out = <uint16_t>(first_out - 1)
    r.started = 0
    drop_log_clear(&r.dropped)

cdef inline void seq_rewrite_sync(SeqRewriter* r, uint16_t in_seq) noexcept nogil:
    """Map in_seq to last_out + 1 (layer switch, resume); inputs before it are dropped."""
    r.offset = <uint16_t>(r.last_out + 1 - in_seq)
    r.max_in = <uint16_t>(in_seq - 1)
    r.floor_in = in_seq
    r.started = 1
    drop_log_clear(&r.dropped)

cdef inline void _seq_age_floor(SeqRewriter* r) noexcept nogil:
    # keep the floor within half the sequence space, where "older" stays meaningful
    if <uint16_t>(r.max_in - r.floor_in) > SEQ_MAX_AGE:
        r.floor_in = <uint16_t>(r.max_in - SEQ_MAX_AGE)

cdef inline int seq_rewrite_out(SeqRewriter* r, uint16_t in_seq) noexcept nogil:
    """Return the outgoing sequence number, or -1 for an input older than the sync point
    (or a repeat of one that was dropped).

    A late input (older than the newest) is numbered as it would have been on time: the drops
    logged after it are added back to the offset.
    """
    cdef uint16_t ahead
    if not r.started:
        seq_rewrite_sync(r, in_seq)
    ahead = <uint16_t>(in_seq - r.max_in)
    if ahead != 0 and ahead < 0x8000:
        r.max_in = in_seq
        r.last_out = <uint16_t>(in_seq + r.offset)
        _seq_age_floor(r)
        return r.last_out
    if <uint16_t>(in_seq - r.floor_in) >= 0x8000:
        return -1
    if r.dropped.count:
        if drop_log_has(&r.dropped, in_seq, 0xFFFF):
            return -1
        return <uint16_t>(in_seq + r.offset + drop_log_after(&r.dropped, in_seq, r.max_in, 0xFFFF))
    return <uint16_t>(in_seq + r.offset)

cdef inline void seq_rewrite_drop(SeqRewriter* r, uint16_t in_seq) noexcept nogil:
    """Skip an input without leaving a hole: the inputs after it are numbered one lower.

    Only the newest input can be skipped so; a late one keeps the number it would have had
    (a hole, as for a loss). Before the first forwarded input there is nothing to shift.
    """
    cdef uint16_t ahead
    cdef int evicted
    if not r.started:
        return
    ahead = <uint16_t>(in_seq - r.max_in)
    if ahead == 0 or ahead >= 0x8000:
        return
    r.max_in = in_seq
    r.offset = <uint16_t>(r.offset - 1)
    r.last_out = <uint16_t>(in_seq + r.offset)
    evicted = drop_log_add(&r.dropped, in_seq)
    if evicted >= 0 and <uint16_t>(<uint16_t>evicted - r.floor_in) < 0x8000:
        # older inputs could no longer be numbered right
        r.floor_in = <uint16_t>(evicted + 1)
    _seq_age_floor(r)

cdef inline int seq_rewrite_in(const SeqRewriter* r, uint16_t out_seq) noexcept nogil:
    """The input that was (or would have been) sent as out_seq since the last sync; -1 if none.

    The inverse of seq_rewrite_out(), for answering a NACK: an output b numbers behind the
    newest maps to the input b + (drops after it) behind the newest input.
    """
    cdef uint16_t back = <uint16_t>(r.last_out - out_seq)
    cdef uint16_t b = back, next_b, in_seq
    cdef int i
    if not r.started or back >= 0x8000:
        return -1
    # the fixed point of b = back + (drops in [max_in - b, max_in]), searched from the newest
    # down: counting the candidate itself steps over dropped inputs
    for i in range(r.dropped.count + 2):
        in_seq = <uint16_t>(r.max_in - b)
        next_b = <uint16_t>(back + drop_log_after(&r.dropped, <uint16_t>(in_seq - 1), r.max_in, 0xFFFF))
        if next_b == b:
            break
        b = next_b
    in_seq = <uint16_t>(r.max_in - b)
    # within [floor_in, max_in], which is empty right after a sync
    if <uint16_t>(in_seq - r.floor_in) >= 0x8000 or \
            <uint16_t>(in_seq - r.floor_in) > <uint16_t>(r.max_in - r.floor_in):
        return -1
    if r.dropped.count and drop_log_has(&r.dropped, in_seq, 0xFFFF):
        return -1
    return in_seq


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
