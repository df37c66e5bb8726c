# cython: language_level=3
"""RTCP on the hot path: compound iteration, parsers, builders, relay rewrites
and receive statistics (RFC 3550 §6 and A.1/A.3/A.8, RFC 4585, RFC 5104,
draft-alvestrand-rmcat-remb-03, draft-holmer-rmcat-transport-wide-cc-extensions-01).

Every function here takes untrusted bytes, allocates nothing and returns a
named code: a length or count (>= 0) or a negative RTCP_ERR_*.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cpdef enum:
    RTCP_SR = 200
    RTCP_RR = 201
    RTCP_SDES = 202
    RTCP_BYE = 203
    RTCP_APP = 204
    RTCP_RTPFB = 205
    RTCP_PSFB = 206
    RTCP_XR = 207

    RTCP_RTPFB_NACK = 1
    RTCP_RTPFB_TWCC = 15
    RTCP_PSFB_PLI = 1
    RTCP_PSFB_FIR = 4
    RTCP_PSFB_APP = 15  # REMB, told apart from other APP feedback by "REMB"

    RTCP_HEADER_LENGTH = 4
    RTCP_REPORT_BLOCK_LENGTH = 24
    RTCP_SENDER_INFO_LENGTH = 20
    RTCP_MAX_COUNT = 31           # the 5-bit RC/SC field
    RTCP_NACK_MAX_PER_FCI = 17    # pid and the 16 bits of blp
    RTCP_REMB_MAX_SSRCS = 255     # the 8-bit "Num SSRC" field

    # TWCC packet status symbols
    TWCC_NOT_RECEIVED = 0
    TWCC_SMALL_DELTA = 1
    TWCC_LARGE_DELTA = 2

    RTCP_OK = 0
    RTCP_ERR_CAPACITY = -1        # builders: dst too small or arguments out of range
    RTCP_ERR_TRUNCATED = -2       # fewer bytes than a header or field needs
    RTCP_ERR_VERSION = -3         # version field is not 2
    RTCP_ERR_LENGTH = -4          # length field, count and content disagree
    RTCP_ERR_PADDING = -5         # P bit set with a zero or oversized pad count
    RTCP_ERR_TYPE = -6            # the item is not of the type the function reads
    RTCP_ERR_FORMAT = -7          # content violates its spec (REMB id, TWCC symbol)

    RTCP_RTT_UNKNOWN = -1

    # recv_stats_update results
    RECV_PACKET_COUNTED = 1
    RECV_PACKET_JUMP = 0          # far from the expected seq: held until a second one confirms
    JITTER_MAX_TRANSIT_DELTA = 450000  # 5 s at 90 kHz


# One packet of a compound: where it lies in the buffer and what it is.
cdef struct RtcpItem:
    int packet_type
    int count               # RC, SC or FMT: the 5 bits after V and P
    int offset              # of the packet's header in the buffer
    int length              # header included, padding included
    int content_length      # header included, padding excluded
    uint32_t sender_ssrc    # 0 where the type has none (SDES/BYE: first source)

cdef struct RtcpSenderInfo:
    uint32_t ssrc
    uint32_t ntp_sec
    uint32_t ntp_frac
    uint32_t rtp_timestamp
    uint32_t packet_count
    uint32_t octet_count

cdef struct RtcpReportBlock:
    uint32_t ssrc
    uint8_t fraction_lost
    int32_t total_lost      # 24-bit signed on the wire
    uint32_t highest_seq    # extended: cycles << 16 | max seq
    uint32_t jitter
    uint32_t lsr
    uint32_t dlsr

# Common header of RTPFB and PSFB messages (RFC 4585 §6.1).
cdef struct RtcpFeedback:
    uint32_t sender_ssrc
    uint32_t media_ssrc
    int fci_offset          # absolute offset in the buffer
    int fci_length

cdef struct RtcpFirEntry:
    uint32_t ssrc
    uint8_t seqnr

cdef struct RtcpRemb:
    uint32_t sender_ssrc
    uint64_t bitrate        # bits per second, saturated at 2**64 - 1
    int ssrc_count          # as announced; ssrcs copied up to the caller's room

cdef struct RtcpTwcc:
    uint32_t sender_ssrc
    uint32_t media_ssrc
    uint16_t base_seq
    uint16_t status_count
    int32_t reference_time  # 24-bit signed, multiples of 64 ms
    uint8_t fb_count

cdef struct TwccPacketStatus:
    uint16_t seq
    int status              # TWCC_NOT_RECEIVED, _SMALL_DELTA or _LARGE_DELTA
    int32_t delta           # multiples of 250 us, from the previous received packet

# Interarrival jitter (RFC 3550 §6.4.1, A.8), kept scaled by 16.
cdef struct JitterState:
    uint32_t last_transit
    uint32_t jitter_q4
    int has_transit

# Receive statistics of one incoming stream (RFC 3550 A.1, A.3).
cdef struct RecvStats:
    uint32_t ssrc
    int started
    uint16_t max_seq
    uint32_t cycles         # shifted: count of wraps << 16
    uint32_t base_seq
    uint32_t bad_seq
    uint32_t received
    uint32_t expected_prior
    uint32_t received_prior
    JitterState jitter
    uint32_t last_sr        # compact NTP of the last SR from this source, 0 if none
    uint32_t last_sr_arrival  # compact NTP of our clock when it arrived


# Iteration and parsing
cdef int rtcp_next(const unsigned char* buf, int length, int offset, RtcpItem* item) noexcept nogil
cdef int rtcp_parse_sr(const unsigned char* buf, const RtcpItem* item,
                       RtcpSenderInfo* out) noexcept nogil
cdef int rtcp_parse_report_blocks(const unsigned char* buf, const RtcpItem* item,
                                  RtcpReportBlock* blocks, int max_blocks) noexcept nogil
cdef int rtcp_parse_feedback(const unsigned char* buf, const RtcpItem* item,
                             RtcpFeedback* out) noexcept nogil
cdef int rtcp_parse_fir(const unsigned char* buf, const RtcpItem* item,
                        RtcpFirEntry* entries, int max_entries) noexcept nogil
cdef int rtcp_parse_nack(const unsigned char* buf, const RtcpItem* item,
                         uint16_t* lost, int max_lost) noexcept nogil
cdef int rtcp_parse_remb(const unsigned char* buf, const RtcpItem* item, RtcpRemb* out,
                         uint32_t* ssrcs, int max_ssrcs) noexcept nogil
cdef int rtcp_parse_twcc(const unsigned char* buf, const RtcpItem* item,
                         RtcpTwcc* out) noexcept nogil
cdef int rtcp_twcc_decode(const unsigned char* buf, const RtcpItem* item,
                          TwccPacketStatus* packets, int max_packets) noexcept nogil
cdef int rtcp_parse_bye(const unsigned char* buf, const RtcpItem* item,
                        uint32_t* ssrcs, int max_ssrcs) noexcept nogil

# Relay: point a consumer's PLI, FIR or NACK at the producer's stream, in place
cdef int rtcp_rewrite_media_ssrc(unsigned char* buf, const RtcpItem* item,
                                 uint32_t new_sender_ssrc, uint32_t new_media_ssrc) noexcept nogil

# Builders: write one packet at dst, return its length or RTCP_ERR_CAPACITY
cdef int rtcp_build_sr(unsigned char* dst, int capacity, const RtcpSenderInfo* info,
                       const RtcpReportBlock* blocks, int block_count) noexcept nogil
cdef int rtcp_build_rr(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                       const RtcpReportBlock* blocks, int block_count) noexcept nogil
cdef int rtcp_build_pli(unsigned char* dst, int capacity,
                        uint32_t sender_ssrc, uint32_t media_ssrc) noexcept nogil
cdef int rtcp_build_fir(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                        uint32_t media_ssrc, uint8_t seqnr) noexcept nogil
cdef int rtcp_build_nack(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                         uint32_t media_ssrc, const uint16_t* seqs, int seq_count) noexcept nogil
cdef int rtcp_build_bye(unsigned char* dst, int capacity,
                        const uint32_t* ssrcs, int ssrc_count) noexcept nogil
cdef int rtcp_build_remb(unsigned char* dst, int capacity, uint32_t sender_ssrc,
                         uint64_t bitrate, const uint32_t* ssrcs, int ssrc_count) noexcept nogil
cdef int rtcp_build_twcc(unsigned char* dst, int capacity, const RtcpTwcc* header,
                         const TwccPacketStatus* packets) noexcept nogil

# Clock and report arithmetic
cdef uint64_t ntp_now() noexcept nogil
cdef uint64_t ntp_from_unix(int64_t sec, int64_t nsec) noexcept nogil
cdef int64_t rtcp_rtt(uint32_t now_compact, uint32_t lsr, uint32_t dlsr) noexcept nogil
cdef void recv_stats_init(RecvStats* stats, uint32_t ssrc) noexcept nogil
cdef int recv_stats_update(RecvStats* stats, uint16_t seq, uint32_t rtp_ts,
                           uint32_t arrival) noexcept nogil
cdef void recv_stats_on_sr(RecvStats* stats, uint32_t sr_compact,
                           uint32_t arrival_compact) noexcept nogil
cdef void recv_stats_report_block(RecvStats* stats, RtcpReportBlock* out,
                                  uint32_t now_compact) noexcept nogil


cdef inline uint32_t ntp_compact(uint64_t ntp) noexcept nogil:
    """The middle 32 bits of an NTP timestamp, as LSR and DLSR use (RFC 3550 §6.4.1)."""
    return <uint32_t>(ntp >> 16)


cdef inline void jitter_update(JitterState* state, uint32_t rtp_ts,
                               uint32_t arrival) noexcept nogil:
    """Fold one packet into the interarrival jitter (RFC 3550 A.8); arrival in RTP clock units."""
    cdef uint32_t transit = arrival - rtp_ts
    cdef uint32_t d
    if state.has_transit:
        d = transit - state.last_transit
        if <int32_t>d < 0:
            d = 0u - d
        # A timestamp jump (source restart, clock switch) is not jitter; the cap
        # also bounds jitter_q4 far below overflow.
        if d <= JITTER_MAX_TRANSIT_DELTA:
            state.jitter_q4 += d - ((state.jitter_q4 + 8) >> 4)
    state.last_transit = transit
    state.has_transit = 1


# Appends consecutive packets into one datagram: each builder writes at
# rtcp_writer_tail() with rtcp_writer_room() bytes, and its result is committed.
cdef struct RtcpWriter:
    unsigned char* buf
    int capacity
    int length
    int failed


cdef inline void rtcp_writer_init(RtcpWriter* writer, unsigned char* buf,
                                  int capacity) noexcept nogil:
    writer.buf = buf
    writer.capacity = capacity
    writer.length = 0
    writer.failed = 0


cdef inline unsigned char* rtcp_writer_tail(RtcpWriter* writer) noexcept nogil:
    return writer.buf + writer.length


cdef inline int rtcp_writer_room(RtcpWriter* writer) noexcept nogil:
    return writer.capacity - writer.length


cdef inline int rtcp_writer_commit(RtcpWriter* writer, int written) noexcept nogil:
    """Account for what a builder wrote; a failed builder marks the whole compound failed."""
    if written < 0 or written > writer.capacity - writer.length:
        writer.failed = 1
        return RTCP_ERR_CAPACITY
    writer.length += written
    return written
