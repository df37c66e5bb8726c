# cython: language_level=3
"""The state stage: the C state of one worker's packet path, which every later stage reads and writes.

Per packet nothing runs here but the slot lookups and the two ways out every stage shares:
an RTCP packet protected and queued for a transport, and an RFC 4571 frame for a TCP one.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from fastpath.av1 cimport DdStream
from fastpath.bwe cimport BandwidthEstimate
from fastpath.congestion cimport ArrivalLog, IncomingEstimate
from fastpath.netdefs cimport sockaddr_storage, socklen_t
from fastpath.probe cimport ProbeState
from fastpath.codecs cimport PayloadInfo
from fastpath.rewrite cimport DropLog, RewriteParams, SeqRewriter, TsRewriter
from fastpath.rtcp cimport RecvStats, TwccPacketStatus
from fastpath.rtp cimport RtpHeader
from fastpath.table cimport KeyTable, TableKey
from fastpath.udp cimport UdpBatchSocket

cdef enum:
    MAX_SPATIAL_LAYERS = 3
    # temporal ids counted per stream (VP8's TID has two bits; VP9's three, but encoders use <= 3)
    MAX_TEMPORAL_LAYERS = 4
    # media SSRCs one REMB names (aiortc applies a REMB only to an SSRC it lists)
    MAX_REMB_SSRCS = 8
    # transports whose transport-cc feedback waits for the end of a receive batch's fan-out
    MAX_FEEDBACK_DUE = 64
    NO_LAYER = -1
    # drop reasons, indexes into Forwarder.drops
    DROP_UNKNOWN_CLASS = 0
    DROP_TRUNCATED = 1
    DROP_UNKNOWN_TUPLE = 2
    DROP_NO_SRTP = 3
    DROP_SRTP_RTP = 4
    DROP_SRTP_RTCP = 5
    DROP_RTP_MALFORMED = 6
    DROP_RTCP_MALFORMED = 7
    DROP_UNKNOWN_SSRC = 8
    DROP_UNKNOWN_PT = 9
    DROP_REWRITE = 10
    DROP_CONTROL_QUEUE_FULL = 11
    DROP_RTX_UNSUPPORTED = 12
    DROP_TCP_BACKLOG = 13
    DROP_RTX_PADDING = 14
    DROP_RED_MALFORMED = 15
    DROP_DUPLICATE = 16
    DROP_DD_MALFORMED = 17      # an AV1 dependency descriptor that could not be read (av1.pyx)
    DROP_REASONS = 18
    # queued output of one TCP transport between two drains (a slow reader loses the excess)
    TCP_OUTPUT_BYTES = 262144
    # upcalls per drain: bounds Python work an authenticated peer can cause
    MAX_CONTROL_PER_DRAIN = 64
    MAX_UNKNOWN_SSRC_PER_DRAIN = 8
    KEYFRAME_REQUEST_INTERVAL_NS = 500000000
    # retransmission history per video stream: about two seconds of 1 Mbit/s video
    HISTORY_PACKETS = 512
    HISTORY_PACKET_BYTES = 1500
    MAX_NACKED_PER_PACKET = 64
    # the slot arrays ForwarderState._grow() enlarges
    KIND_TRANSPORT = 0
    KIND_STREAM = 1
    KIND_CONSUMER = 2
    # packets of one transport-cc feedback looked at; Chrome reports well under 200 at a time
    TWCC_MAX_STATUSES = 1024


cdef struct TransportState:
    bint used
    bint has_tuple
    bint has_srtp
    sockaddr_storage remote
    socklen_t remote_len
    TableKey tuple_key
    bint has_rtcp_tuple     # rtcp-mux off: RTCP has its own remote port
    sockaddr_storage rtcp_remote
    socklen_t rtcp_remote_len
    TableKey rtcp_tuple_key
    void* srtp_in           # SrtpSession, referenced from Forwarder._refs
    void* srtp_out
    bint is_tcp             # the selected ICE tuple is a TCP connection (RFC 6544)
    unsigned char* tcp_out  # RFC 4571 frames waiting for Python to write them
    int tcp_out_len
    uint16_t twcc_seq       # transport-wide sequence of what we send on this transport
    uint32_t rtcp_ssrc      # sender SSRC of the RTCP we originate
    uint64_t rtp_in_packets
    uint64_t rtp_in_bytes
    uint64_t rtp_out_packets
    uint64_t rtp_out_bytes
    uint64_t rtcp_in_packets
    uint64_t rtcp_out_packets
    uint64_t srtp_failures
    uint64_t last_in_ns
    BandwidthEstimate bwe       # what the path to this transport's receiver takes
    uint64_t rate_bytes_mark    # rtp_out_bytes at the last rate update
    double out_bitrate_bps      # what we send it, smoothed
    int64_t budget_bps          # left while layers are picked, -1: unlimited
    # the path *from* this transport's sender (congestion.pxd)
    int twcc_in_ext_id          # the producers' transport-wide-cc id; 0: no transport-cc feedback
    bint remb_in                # the producers expect REMB from us instead
    ArrivalLog arrivals         # transport-wide sequence numbers received, for transport-cc feedback
    bint feedback_queued        # in ForwarderState.feedback_due
    IncomingEstimate incoming   # the REMB estimate and the ceiling (setMaxIncomingBitrate)
    uint64_t loss_expected      # over its streams in the report interval: packets expected, and
    uint64_t loss_lost          # lost before any repair (what the path lost, not what RTX left)
    uint32_t remb_ssrcs[MAX_REMB_SSRCS]  # the media SSRCs a REMB names (filled per report interval)
    int remb_ssrc_count
    ProbeState probe            # probing the path to its receiver (probe.pxd; judged in bwe)
    uint8_t probator_pt         # padding probes on SSRC PROBATOR_SSRC with this payload type; 0: none
    uint16_t probator_seq


cdef struct ProducerStream:
    bint used
    int32_t transport
    uint32_t ssrc
    uint32_t rtx_ssrc
    int codec
    uint32_t clock_rate
    int spatial_layer
    bint is_video
    bint paused
    int32_t* consumers
    int consumer_count
    int consumer_capacity
    RecvStats stats
    uint64_t packets
    uint64_t bytes
    uint64_t last_packet_ns
    uint64_t last_keyframe_request_ns
    uint64_t keyframes
    uint64_t pli_sent
    uint32_t sr_ntp_compact
    uint32_t sr_rtp_timestamp
    unsigned char* history      # the last HISTORY_PACKETS packets (decrypted), slot = seq % HISTORY_PACKETS
    uint16_t* history_len       # 0: empty slot
    uint16_t* history_seq
    uint8_t rtx_payload_type    # 0: RTX not negotiated
    uint8_t media_payload_type
    bint nack_enabled
    uint64_t nacks_sent
    uint64_t rtx_received
    uint64_t rtx_received_mark  # rtx_received at the last report: repairs within the interval
    int audio_level_ext_id      # the producer's id of ssrc-audio-level (RFC 6464), 0 none
    uint32_t level_sum          # sum of -dBov over the current observer interval
    uint32_t level_count
    uint64_t rate_bytes_mark    # bytes at the last rate update
    double bitrate_bps          # smoothed, what a consumer of this layer costs its transport
    uint64_t bye_received
    # bytes by the packets' spatial and temporal ids (VP9 SVC carries several spatial layers in
    # one stream; a simulcast stream counts in spatial id 0), and each one's bitrate, smoothed
    uint64_t layer_bytes[MAX_SPATIAL_LAYERS][MAX_TEMPORAL_LAYERS]
    uint64_t layer_marks[MAX_SPATIAL_LAYERS][MAX_TEMPORAL_LAYERS]
    double layer_bps[MAX_SPATIAL_LAYERS][MAX_TEMPORAL_LAYERS]
    uint64_t spatial_last_ns[MAX_SPATIAL_LAYERS]    # the last packet of each spatial id
    # AV1: the producer's id of the dependency descriptor extension and what it has said so far
    # (av1.pxd); NULL without one
    int dd_ext_id
    DdStream* dd
    # this stream's packets in the batch being fanned out (Fanout._fan_out): first and last
    # index into ForwarderState.pending, valid while pending_round is the current round
    int32_t pending_head
    int32_t pending_tail
    uint32_t pending_round


cdef struct ConsumerState:
    bint used
    int32_t transport
    uint32_t ssrc
    int32_t streams[MAX_SPATIAL_LAYERS]
    int layer_count
    int current_layer
    int target_layer
    int preferred_layer
    bint is_video
    bint paused
    bint producer_paused
    bint layers_changed     # an event for Python is pending
    int codec
    uint32_t clock_rate
    unsigned char pt_map[128]   # producer payload type -> ours, 0xFF: not forwarded
    uint8_t red_mode            # RED (RFC 2198) from the producer: 0 none, else a RED_* of red.pxd
    uint8_t red_pt              # the producer's RED payload type, with red_mode
    int twcc_ext_id             # our id of transport-wide-cc, 0 none
    RewriteParams params
    SeqRewriter seq
    TsRewriter ts
    bint pid_started            # VP8 picture ids continue across layer switches
    int32_t pid_offset
    int tl0_offset
    int32_t last_picture_id
    int last_tl0picidx
    int32_t max_picture_in      # newest VP8 picture id forwarded or skipped since the last switch
    int32_t pid_mask            # 0x7F or 0x7FFF: the width of the stream's picture ids
    DropLog pid_dropped         # pictures skipped since then: each moved pid_offset down by one
    # layers within a stream (svc.pxd): temporal layers (VP8, VP9, AV1), and for an SVC stream
    # (VP9: one SSRC) its spatial layers too; a count of 1 means nothing to choose
    int temporal_count
    int current_temporal        # -1 until the first frame
    int target_temporal
    int preferred_temporal
    int svc_layers
    bint ksvc                   # K-SVC: upper spatial layers predict from lower ones on key frames only
    int svc_current
    int svc_target
    int svc_preferred
    uint64_t last_out_ns
    uint32_t last_out_ts
    uint32_t fan_out_round      # the last Forwarder.fan_out_round that served this consumer
    uint64_t packets
    uint64_t bytes
    uint64_t pli_received
    uint64_t fir_received
    uint64_t nack_received
    uint64_t retransmitted
    uint32_t rtx_ssrc           # retransmissions go out as RTX (RFC 4588) on this SSRC; 0: on ours
    uint8_t rtx_payload_type
    uint16_t rtx_seq
    uint8_t fraction_lost
    uint32_t jitter
    int32_t total_lost


# a received media packet waiting, with the rest of its receive batch, to be fanned out
cdef struct PendingPacket:
    int32_t stream              # producer stream slot
    int32_t next_same_stream    # the next held packet of the same stream, -1: none
    const unsigned char* data   # decrypted, in the socket's receive slot (valid until the next read)
    RtpHeader h
    PayloadInfo info
    bint keyframe


cdef inline uint32_t clock_units(uint64_t ns, uint32_t clock_rate) noexcept nogil:
    # microseconds first: ns * 90000 would overflow 64 bits after a few days of uptime
    return <uint32_t>((ns // 1000) * clock_rate // 1000000)


cdef inline double smoothed_bitrate(double previous, uint64_t total_bytes, uint64_t* mark,
                                    double seconds) noexcept nogil:
    """The bitrate since the mark (moved to total_bytes), averaged with the previous one."""
    cdef double rate = (total_bytes - mark[0]) * 8.0 / seconds if seconds > 0 else previous
    mark[0] = total_bytes
    return rate if previous == 0 else 0.5 * (previous + rate)


cdef inline void ssrc_key(TableKey* key, uint32_t ssrc, int32_t transport) noexcept nogil:
    key.a = ssrc
    key.b = <uint64_t>transport
    key.c = 0


cdef class ForwarderState:
    cdef UdpBatchSocket sock
    cdef object _on_control
    cdef list _control
    cdef dict _refs
    cdef KeyTable tuples            # remote address -> transport slot
    cdef KeyTable producer_ssrcs    # (ssrc, transport) -> producer stream slot
    cdef KeyTable consumer_ssrcs    # (ssrc, transport) -> consumer slot
    cdef TransportState* transports
    cdef int transport_capacity
    cdef ProducerStream* streams
    cdef int stream_capacity
    cdef ConsumerState* consumers
    cdef int consumer_capacity
    cdef uint64_t drops[DROP_REASONS]
    cdef uint64_t forwarded_packets
    cdef uint64_t forwarded_bytes
    cdef int unknown_ssrc_budget
    cdef int comedia_waiting
    cdef bint events_pending
    cdef int flush_every
    cdef int tcp_pending            # TCP transports with queued output
    cdef int32_t feedback_due[MAX_FEEDBACK_DUE]  # transport-cc feedback to send after this batch's copies
    cdef int feedback_due_count
    cdef PendingPacket* pending     # this receive batch's media, fanned out consumer by consumer
    cdef int pending_count
    cdef int pending_capacity
    cdef uint32_t fan_out_round     # one per _fan_out(); a consumer is served once per round
    cdef TwccPacketStatus* twcc_statuses  # scratch for one transport-cc feedback
    cdef uint64_t rates_ns          # when bitrates were last updated
    cdef list _events
    cdef int probes_active          # transports with a probe running (the drain paces them)
    cdef bint probing_off           # set_probing(False): no probe starts

    cdef int _grow(self, int kind) except -1
    cdef TransportState* _transport(self, int slot) except NULL
    cdef ProducerStream* _stream(self, int slot) except NULL
    cdef ConsumerState* _consumer(self, int slot) except NULL
    cdef void _free_history(self, ProducerStream* s) noexcept
    cdef void _send_rtcp(self, int32_t t, unsigned char* buf, int length) noexcept nogil
    cdef bint _queue_tcp(self, TransportState* tr, const unsigned char* packet, int length) noexcept nogil
