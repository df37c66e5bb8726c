# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Route stage: the Forwarder, one per worker process, and the control API the engine drives it with.

Nothing here runs per packet: adding and removing transports, producer streams and consumers,
attaching streams to consumers' layers, pausing, and the stats. The packet path is the chain
of classes this one ends, one module per stage, base to top:

    state < fanout < feedback < receive < layers < route

`state.ForwarderState` holds all of the Forwarder's C state (socket, tables, slot arrays,
counters); each module above adds one stage's methods to that one object: `fanout.Fanout`
(consumer by consumer: layer decision, rewrite, protect, queue), `feedback.Feedback` (RTCP in
and out), `receive.Receiver` (drain, demux, media in), `layers.LayerSelection` (simulcast
layer choice) and `Forwarder` here. A stage calls only methods of the stages below it, and
cdef methods are virtual, so a call across modules is the same C call through the vtable as
within one: the split costs the packet path nothing. A new mechanism goes in the stage it
belongs to (RTCP to publishers: feedback), or in a module of its own inserted into the chain.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from fastpath.bwe cimport bwe_available, bwe_free, bwe_track_sent
from fastpath.congestion cimport arrival_log_free
from fastpath.clock cimport monotonic_ns
from fastpath.codecs cimport CODEC_AV1, CODEC_VP8, CODEC_VP9
from fastpath.demux cimport address_key
from fastpath.layers cimport LayerSelection
from fastpath.netdefs cimport sockaddr, sockaddr_storage, socklen_t
from fastpath.red cimport RED_NONE, RED_PASS, RED_STRIP
from fastpath.rewrite cimport seq_rewrite_init, ts_rewrite_init
from fastpath.rtcp cimport (
    RecvStats,
    RtcpReportBlock,
    ntp_compact,
    ntp_now,
    recv_stats_init,
    recv_stats_report_block,
    rtcp_build_bye,
    rtcp_build_rr,
)
from fastpath.srtp cimport SrtpSession
from fastpath.state cimport (
    HISTORY_PACKET_BYTES,
    HISTORY_PACKETS,
    KIND_CONSUMER,
    KIND_STREAM,
    KIND_TRANSPORT,
    MAX_SPATIAL_LAYERS,
    MAX_TEMPORAL_LAYERS,
    NO_LAYER,
    TCP_OUTPUT_BYTES,
    ConsumerState,
    ProducerStream,
    TransportState,
    ssrc_key,
)
from fastpath.table cimport TableKey
from fastpath.udp cimport sockaddr_from_tuple

from fastpath.state import DROP_REASON_NAMES


cdef class Forwarder(LayerSelection):
    """The packet path of one worker: owns the batch socket, the lookup tables and all stream state."""

    # ---- control: transports -------------------------------------------------------------

    def add_transport(self, uint32_t rtcp_ssrc) -> int:
        """Reserve a transport slot; RTCP we originate on it carries `rtcp_ssrc`."""
        cdef int i
        for i in range(self.transport_capacity):
            if not self.transports[i].used:
                break
        else:
            i = self.transport_capacity
            self._grow(KIND_TRANSPORT)
        memset(&self.transports[i], 0, sizeof(TransportState))
        self.transports[i].used = 1
        self.transports[i].rtcp_ssrc = rtcp_ssrc
        return i

    def set_transport_tuple(self, int slot, tuple addr):
        """Send to and accept media from `addr` (the selected ICE tuple, or a plain transport's remote)."""
        cdef TransportState* tr = self._transport(slot)
        self.clear_transport_tuple(slot)
        self._claim_tuple(slot, addr, &tr.remote, &tr.remote_len, &tr.tuple_key)
        tr.has_tuple = 1
        self._transport_ready(slot)

    cdef int _claim_tuple(self, int slot, tuple addr, sockaddr_storage* remote, socklen_t* remote_len,
                          TableKey* key) except -1:
        """Fill a remote address from `addr` and map its tuple to the transport (refused if taken)."""
        sockaddr_from_tuple(addr, self.sock.family, remote, remote_len)
        address_key(<const sockaddr*>remote, key)
        existing = self.tuples.lookup(key)
        if existing >= 0 and existing != slot:
            raise ValueError(f"tuple {addr} already belongs to transport {existing}")
        self.tuples.insert(key, slot)
        return 0

    def clear_transport_tuple(self, int slot):
        """Stop sending on the transport and forget its tuple (consent lost, transport closing)."""
        cdef TransportState* tr = self._transport(slot)
        if tr.has_tuple and not tr.is_tcp:
            self.tuples.remove(&tr.tuple_key)
        tr.has_tuple = 0
        tr.is_tcp = 0

    def set_transport_tcp(self, int slot):
        """Send on a TCP connection (ICE-TCP, RFC 6544): output is framed per RFC 4571 and taken by Python.

        Input from the connection arrives through inject().
        """
        cdef TransportState* tr = self._transport(slot)
        self.clear_transport_tuple(slot)
        if tr.tcp_out == NULL:
            tr.tcp_out = <unsigned char*>malloc(TCP_OUTPUT_BYTES)
            if tr.tcp_out == NULL:
                raise MemoryError()
        tr.tcp_out_len = 0
        tr.is_tcp = 1
        tr.has_tuple = 1
        self._transport_ready(slot)

    def take_tcp_output(self, int slot):
        """The framed bytes queued for a TCP transport since the last call (None when empty)."""
        cdef TransportState* tr = self._transport(slot)
        if tr.tcp_out == NULL or tr.tcp_out_len == 0:
            return None
        data = PyBytes_FromStringAndSize(<char*>tr.tcp_out, tr.tcp_out_len)
        tr.tcp_out_len = 0
        if self.tcp_pending > 0:
            self.tcp_pending -= 1
        return data

    def set_transport_srtp(self, int slot, SrtpSession inbound, SrtpSession outbound):
        """Install the SRTP contexts derived by DTLS (or given for a plain transport)."""
        cdef TransportState* tr = self._transport(slot)
        if inbound.outbound or not outbound.outbound:
            raise ValueError("need an inbound and an outbound SRTP session")
        self._refs[(slot, "srtp")] = (inbound, outbound)
        tr.srtp_in = <void*>inbound
        tr.srtp_out = <void*>outbound
        tr.has_srtp = 1
        self._transport_ready(slot)

    def set_transport_plain(self, int slot):
        """Carry plain RTP/RTCP: no SRTP on this transport (PlainTransport without enableSrtp)."""
        cdef TransportState* tr = self._transport(slot)
        self._refs.pop((slot, "srtp"), None)
        tr.srtp_in = NULL
        tr.srtp_out = NULL
        tr.has_srtp = 1
        self._transport_ready(slot)

    def set_transport_rtcp_tuple(self, int slot, tuple addr):
        """Without rtcp-mux, RTCP comes from and goes to a second remote port (RFC 3550 §11)."""
        cdef TransportState* tr = self._transport(slot)
        self._clear_rtcp_tuple(tr)
        self._claim_tuple(slot, addr, &tr.rtcp_remote, &tr.rtcp_remote_len, &tr.rtcp_tuple_key)
        tr.has_rtcp_tuple = 1

    cdef void _clear_rtcp_tuple(self, TransportState* tr) noexcept:
        if tr.has_rtcp_tuple:
            self.tuples.remove(&tr.rtcp_tuple_key)
            tr.has_rtcp_tuple = 0

    def set_transport_incoming_feedback(self, int slot, int twcc_ext_id, bint remb):
        """What the senders on this transport are told about the path from them (congestion.pxd).

        twcc_ext_id: their transport-wide-cc header extension id; transport-cc feedback is sent
        for every number received. remb: REMB with our own estimate (when there is no transport-cc).
        """
        cdef TransportState* tr = self._transport(slot)
        if not 0 <= twcc_ext_id < 256:
            raise ValueError("extension ids are 1..255")
        if not twcc_ext_id:
            arrival_log_free(&tr.arrivals)
        tr.twcc_in_ext_id = twcc_ext_id
        tr.remb_in = remb and not twcc_ext_id

    def set_max_incoming_bitrate(self, int slot, uint32_t bitrate):
        """The most a sender on this transport is told it may send (bits/s, by REMB); 0: no ceiling."""
        cdef TransportState* tr = self._transport(slot)
        tr.incoming.max_bps = bitrate
        if bitrate and tr.incoming.estimate_bps > bitrate:
            tr.incoming.estimate_bps = bitrate

    def set_probing(self, bint enabled):
        """Probe the paths to receivers held below their preferred layer (probe.pyx; on by default).

        Off, an estimate grows only 8 % a second between signs of congestion, uncapped."""
        self.probing_off = not enabled

    def set_comedia_waiting(self, int count):
        """How many transports wait to learn their remote from a first packet (unknown tuples go up)."""
        self.comedia_waiting = count

    def remove_transport(self, int slot):
        """Free a transport slot; its streams and consumers must be removed first."""
        self.clear_transport_tuple(slot)
        self._clear_rtcp_tuple(self._transport(slot))
        self._refs.pop((slot, "srtp"), None)
        if self.transports[slot].tcp_out_len and self.tcp_pending > 0:
            self.tcp_pending -= 1
        free(self.transports[slot].tcp_out)
        bwe_free(&self.transports[slot].bwe)
        arrival_log_free(&self.transports[slot].arrivals)
        memset(&self.transports[slot], 0, sizeof(TransportState))

    # ---- control: producer streams ---------------------------------------------------------

    def add_producer_stream(self, int transport, uint32_t ssrc, uint32_t rtx_ssrc, int codec,
                            uint32_t clock_rate, int spatial_layer, bint is_video) -> int:
        """Register an incoming stream (one encoding of a producer) by SSRC on its transport."""
        cdef TableKey key
        cdef int i
        cdef ProducerStream* s
        self._transport(transport)
        ssrc_key(&key, ssrc, transport)
        if self.producer_ssrcs.lookup(&key) >= 0:
            raise ValueError(f"ssrc {ssrc} is already in use on this transport")
        for i in range(self.stream_capacity):
            if not self.streams[i].used:
                break
        else:
            i = self.stream_capacity
            self._grow(KIND_STREAM)
        s = &self.streams[i]
        free(s.consumers)
        memset(s, 0, sizeof(ProducerStream))
        s.used = 1
        s.transport = transport
        s.ssrc = ssrc
        s.rtx_ssrc = rtx_ssrc
        s.codec = codec
        s.clock_rate = clock_rate
        s.spatial_layer = spatial_layer
        s.is_video = is_video
        recv_stats_init(&s.stats, ssrc)
        if is_video:
            s.history = <unsigned char*>malloc(HISTORY_PACKETS * HISTORY_PACKET_BYTES)
            s.history_len = <uint16_t*>calloc(HISTORY_PACKETS, sizeof(uint16_t))
            s.history_seq = <uint16_t*>calloc(HISTORY_PACKETS, sizeof(uint16_t))
            if s.history == NULL or s.history_len == NULL or s.history_seq == NULL:
                self._free_history(s)
                raise MemoryError()
        self.producer_ssrcs.insert(&key, i)
        if rtx_ssrc:
            ssrc_key(&key, rtx_ssrc, transport)
            key.c = 1
            self.producer_ssrcs.insert(&key, i)
        return i

    def remove_producer_stream(self, int slot):
        """Forget a stream; consumers still attached stop receiving it."""
        cdef ProducerStream* s = self._stream(slot)
        cdef TableKey key
        cdef int k, layer
        cdef ConsumerState* c
        for k in range(s.consumer_count):
            c = &self.consumers[s.consumers[k]]
            for layer in range(c.layer_count):
                if c.streams[layer] == slot:
                    c.streams[layer] = NO_LAYER
        ssrc_key(&key, s.ssrc, s.transport)
        self.producer_ssrcs.remove(&key)
        if s.rtx_ssrc:
            ssrc_key(&key, s.rtx_ssrc, s.transport)
            key.c = 1
            self.producer_ssrcs.remove(&key)
        free(s.consumers)
        self._free_history(s)
        memset(s, 0, sizeof(ProducerStream))

    def set_stream_rtx_ssrc(self, int slot, uint32_t rtx_ssrc):
        """Learn a stream's RTX SSRC (from repaired-rid) so its packets are recognised."""
        cdef ProducerStream* s = self._stream(slot)
        cdef TableKey key
        if s.rtx_ssrc:
            ssrc_key(&key, s.rtx_ssrc, s.transport)
            key.c = 1
            self.producer_ssrcs.remove(&key)
        s.rtx_ssrc = rtx_ssrc
        ssrc_key(&key, rtx_ssrc, s.transport)
        key.c = 1
        self.producer_ssrcs.insert(&key, slot)

    def set_stream_audio_level_ext(self, int slot, int ext_id):
        """Read the RFC 6464 audio level of this stream's packets from extension `ext_id` (0: off)."""
        if not 0 <= ext_id < 256:
            raise ValueError("extension ids are 1..255")
        self._stream(slot).audio_level_ext_id = ext_id

    def take_audio_level(self, int slot):
        """The mean audio level (dBov, -127..0) since the last call, or None without samples."""
        cdef ProducerStream* s = self._stream(slot)
        cdef double mean
        if s.level_count == 0:
            return None
        mean = -(<double>s.level_sum / s.level_count)
        s.level_sum = 0
        s.level_count = 0
        return mean

    def set_stream_rtx_payload(self, int slot, int rtx_payload_type, int media_payload_type):
        """RTX packets of this stream carry `rtx_payload_type`; unwrapped they become `media_payload_type`.

        With RTX known the stream also NACKs the producer when packets go missing.
        """
        cdef ProducerStream* s = self._stream(slot)
        if not (0 < rtx_payload_type < 128 and 0 <= media_payload_type < 128):
            raise ValueError("payload types are 0..127")
        s.rtx_payload_type = rtx_payload_type
        s.media_payload_type = media_payload_type
        s.nack_enabled = s.is_video

    def set_stream_paused(self, int slot, bint paused):
        """A paused producer's packets are counted but not forwarded."""
        self._stream(slot).paused = paused

    def request_key_frame(self, int slot):
        """Ask the producer of this stream for a key frame now (PLI)."""
        self._stream(slot)
        self._request_keyframe(slot, monotonic_ns(), 1)
        self.sock.flush()

    # ---- control: consumers -----------------------------------------------------------------

    def add_consumer(self, int transport, uint32_t ssrc, int layer_count, dict pt_map, dict ext_map,
                     int twcc_ext_id, int codec, uint32_t clock_rate, bint is_video, bint paused,
                     int preferred_layer=-1, uint32_t rtx_ssrc=0, int rtx_payload_type=-1,
                     int temporal_layers=1, int preferred_temporal=-1, int svc_layers=1,
                     bint ksvc=False) -> int:
        """Create a consumer of `layer_count` spatial layers; streams are attached per layer as they appear.

        With rtx_ssrc and rtx_payload_type, retransmissions go out as RTX (RFC 4588).
        temporal_layers: the temporal layers of the producer's encodings (its scalabilityMode), of
        which the consumer gets up to preferred_temporal (-1: all). svc_layers: the spatial layers
        one stream carries (VP9 SVC; layer_count is then 1), chosen like simulcast layers with
        preferred_layer; ksvc: the stream is K-SVC (scalabilityMode "..._KEY"). Layers within a
        stream are chosen for VP8 (temporal), VP9 and AV1 (temporal and spatial) only, whose every
        packet names its layers (AV1 in its dependency descriptor); other codecs' streams, and AV1
        streams without the descriptor, are forwarded whole.
        """
        cdef int i, old_pt, new_pt
        cdef ConsumerState* c
        cdef TableKey key
        self._transport(transport)
        if not 1 <= layer_count <= MAX_SPATIAL_LAYERS:
            raise ValueError("a consumer takes 1 to 3 spatial layers")
        if not 1 <= temporal_layers <= MAX_TEMPORAL_LAYERS:
            raise ValueError("a consumer takes 1 to 4 temporal layers")
        if not 1 <= svc_layers <= MAX_SPATIAL_LAYERS or (svc_layers > 1 and layer_count > 1):
            raise ValueError("an SVC consumer takes one stream of 1 to 3 spatial layers")
        ssrc_key(&key, ssrc, transport)
        if self.consumer_ssrcs.lookup(&key) >= 0:
            raise ValueError(f"ssrc {ssrc} is already used by a consumer on this transport")
        if not 0 <= twcc_ext_id < 256:
            raise ValueError("extension ids are 1..255")
        if rtx_ssrc and not (0 <= rtx_payload_type < 128 and rtx_ssrc != ssrc):
            raise ValueError("RTX needs a payload type 0..127 and an SSRC of its own")
        for i in range(self.consumer_capacity):
            if not self.consumers[i].used:
                break
        else:
            i = self.consumer_capacity
            self._grow(KIND_CONSUMER)
        c = &self.consumers[i]
        memset(c, 0, sizeof(ConsumerState))
        c.transport = transport
        c.ssrc = ssrc
        c.layer_count = layer_count
        for layer in range(MAX_SPATIAL_LAYERS):
            c.streams[layer] = NO_LAYER
        if codec != CODEC_VP8 and codec != CODEC_VP9 and codec != CODEC_AV1:
            # H264 names no layers: its streams are not thinned (AV1's are, from the dependency
            # descriptor, when the producer sends one: fanout.pyx)
            temporal_layers = svc_layers = 1
        elif codec == CODEC_VP8:
            svc_layers = 1
        c.svc_layers = svc_layers if is_video else 1
        c.ksvc = ksvc
        if c.svc_layers > 1:
            c.svc_preferred = svc_layers - 1 if preferred_layer < 0 else min(preferred_layer, svc_layers - 1)
            c.svc_target = c.svc_preferred
            c.svc_current = NO_LAYER
            preferred_layer = 0
        c.preferred_layer = layer_count - 1 if preferred_layer < 0 else min(preferred_layer, layer_count - 1)
        c.target_layer = c.preferred_layer
        c.temporal_count = temporal_layers if is_video else 1
        c.preferred_temporal = (c.temporal_count - 1 if preferred_temporal < 0
                                else min(preferred_temporal, c.temporal_count - 1))
        c.target_temporal = c.preferred_temporal
        c.current_temporal = NO_LAYER
        c.current_layer = NO_LAYER if is_video else 0
        c.is_video = is_video
        c.paused = paused
        c.codec = codec
        c.clock_rate = clock_rate
        c.twcc_ext_id = twcc_ext_id
        c.params.ensure_ext_id = twcc_ext_id
        if twcc_ext_id and bwe_track_sent(&self.transports[transport].bwe) < 0:
            raise MemoryError()
        memset(c.pt_map, 0xFF, sizeof(c.pt_map))
        for old_pt, new_pt in pt_map.items():
            if not (0 <= old_pt < 128 and 0 <= new_pt < 128):
                raise ValueError("payload types are 0..127")
            c.pt_map[old_pt] = new_pt
        for old_id, new_id in ext_map.items():
            if not (0 < old_id < 256 and 0 <= new_id < 256):
                raise ValueError("extension ids are 1..255")
            c.params.ext_map[old_id] = new_id
        c.params.ssrc = ssrc
        c.rtx_ssrc = rtx_ssrc
        c.rtx_payload_type = <uint8_t>rtx_payload_type if rtx_ssrc else 0
        c.rtx_seq = <uint16_t>(rtx_ssrc >> 5)
        seq_rewrite_init(&c.seq, <uint16_t>(ssrc >> 7))
        ts_rewrite_init(&c.ts, ssrc * 2654435761u)
        self.consumer_ssrcs.insert(&key, i)
        c.used = 1
        return i

    def attach_stream(self, int consumer, int layer, int stream):
        """Feed a consumer's spatial layer from a producer stream (when the stream becomes known)."""
        cdef ConsumerState* c = self._consumer(consumer)
        cdef ProducerStream* s = self._stream(stream)
        cdef void* p
        if not 0 <= layer < c.layer_count:
            raise ValueError(f"layer {layer} out of range")
        if c.streams[layer] == stream:
            return
        if c.streams[layer] >= 0:
            self._detach(consumer, c.streams[layer])
        if s.consumer_count == s.consumer_capacity:
            p = realloc(s.consumers, (s.consumer_capacity * 2 + 4) * sizeof(int32_t))
            if p == NULL:
                raise MemoryError()
            s.consumers = <int32_t*>p
            s.consumer_capacity = s.consumer_capacity * 2 + 4
        s.consumers[s.consumer_count] = consumer
        s.consumer_count += 1
        c.streams[layer] = stream
        if c.is_video and layer == c.target_layer and c.current_layer != layer and not c.paused:
            self._request_keyframe(stream, monotonic_ns(), 1)
            self.sock.flush()

    cdef void _detach(self, int consumer, int stream) noexcept:
        cdef ProducerStream* s = &self.streams[stream]
        cdef int k
        for k in range(s.consumer_count):
            if s.consumers[k] == consumer:
                s.consumers[k] = s.consumers[s.consumer_count - 1]
                s.consumer_count -= 1
                return

    def remove_consumer(self, int slot):
        """Detach a consumer from its streams and free its slot."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef ProducerStream* s
        cdef TableKey key
        cdef int layer, k, n
        cdef unsigned char buf[64]
        cdef uint32_t ssrcs[2]
        for layer in range(c.layer_count):
            if c.streams[layer] >= 0:
                self._detach(slot, c.streams[layer])
        # the stream ends (RFC 3550 §6.3.7): an empty receiver report to start the compound, then BYE
        ssrcs[0] = c.ssrc
        ssrcs[1] = c.rtx_ssrc
        n = rtcp_build_rr(buf, sizeof(buf), c.ssrc, NULL, 0)
        if n > 0:
            k = rtcp_build_bye(buf + n, sizeof(buf) - n, ssrcs, 2 if c.rtx_ssrc else 1)
            if k > 0:
                self._send_rtcp(c.transport, buf, n + k)
                self.sock.flush()
        ssrc_key(&key, c.ssrc, c.transport)
        self.consumer_ssrcs.remove(&key)
        memset(c, 0, sizeof(ConsumerState))

    def set_consumer_paused(self, int slot, bint paused, bint producer_paused):
        """Pause or resume; a resumed video consumer waits for (and asks for) a key frame."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef bint was_flowing = not (c.paused or c.producer_paused)
        c.paused = paused
        c.producer_paused = producer_paused
        if c.is_video and not was_flowing and not (paused or producer_paused):
            c.current_layer = NO_LAYER
            self._request_target_keyframe(c)

    def set_consumer_red(self, int slot, int red_payload_type, bint strip):
        """The producer's packets of `red_payload_type` are RED (RFC 2198): passed on with their
        blocks' payload types mapped, or, with `strip`, cut to the primary encoding (a consumer
        that did not negotiate RED). -1: the producer sends no RED. Either way the payload type
        map must forward `red_payload_type` (to the consumer's RED, or to any of its types)."""
        cdef ConsumerState* c = self._consumer(slot)
        if not -1 <= red_payload_type < 128:
            raise ValueError("payload types are 0..127")
        if red_payload_type >= 0 and c.pt_map[red_payload_type] == 0xFF:
            raise ValueError(f"payload type {red_payload_type} is not forwarded to this consumer")
        c.red_mode = RED_NONE if red_payload_type < 0 else (RED_STRIP if strip else RED_PASS)
        c.red_pt = <uint8_t>red_payload_type if red_payload_type >= 0 else 0

    # ---- stats and the rest of the control plane --------------------------------------------

    def counters(self) -> dict:
        """Worker-wide packet counters and drops by reason."""
        socket_counters = self.sock.counters()
        return {
            "forwardedPackets": self.forwarded_packets,
            "forwardedBytes": self.forwarded_bytes,
            "drops": {name: self.drops[i] for i, name in enumerate(DROP_REASON_NAMES)},
            "socket": socket_counters,
        }

    def transport_stats(self, int slot) -> dict:
        cdef TransportState* tr = self._transport(slot)
        return {
            "rtpPacketsReceived": tr.rtp_in_packets, "rtpBytesReceived": tr.rtp_in_bytes,
            "rtpPacketsSent": tr.rtp_out_packets, "rtpBytesSent": tr.rtp_out_bytes,
            "rtcpPacketsReceived": tr.rtcp_in_packets, "rtcpPacketsSent": tr.rtcp_out_packets,
            "srtpFailures": tr.srtp_failures,
            "lastPacketAgeMs": (monotonic_ns() - tr.last_in_ns) // 1000000 if tr.last_in_ns else None,
            "sendBitrate": round(tr.out_bitrate_bps),
            # None until the receiver's feedback shows a limit
            "availableOutgoingBitrate": bwe_available(&tr.bwe) or None,
            "bweFeedbacks": tr.bwe.feedbacks, "bweDecreases": tr.bwe.decreases,
            # the path from the sender: transport-cc feedbacks and REMBs we sent it
            "incomingFeedbacks": tr.arrivals.feedbacks_sent, "rembsSent": tr.incoming.rembs_sent,
            "incomingBitrateEstimate": tr.incoming.estimate_bps or None,
            "maxIncomingBitrate": tr.incoming.max_bps or None,
            # probing the path to the receiver (probe.pyx): how often, with what outcome, at what cost
            "probesStarted": tr.probe.started, "probesSucceeded": tr.probe.succeeded,
            "probesFailed": tr.probe.failed, "probePacketsSent": tr.probe.packets,
            "probeBytesSent": tr.probe.bytes, "probeTargetBitrate": tr.probe.target_bps or None,
        }

    def stream_stats(self, int slot) -> dict:
        cdef ProducerStream* s = self._stream(slot)
        cdef RtcpReportBlock block
        cdef RecvStats copy = s.stats
        recv_stats_report_block(&copy, &block, ntp_compact(ntp_now()))
        return {
            "ssrc": s.ssrc, "packetCount": s.packets, "byteCount": s.bytes,
            "packetsLost": block.total_lost, "fractionLost": block.fraction_lost,
            "jitter": block.jitter, "keyFrames": s.keyframes, "pliCount": s.pli_sent,
            "nackCount": s.nacks_sent, "rtxPacketsReceived": s.rtx_received,
            "spatialLayer": s.spatial_layer, "consumers": s.consumer_count,
            "bitrate": round(s.bitrate_bps), "byeReceived": s.bye_received,
            # by the packets' [spatial id][temporal id], each alone (not cumulative)
            "layerBitrates": [[round(s.layer_bps[sid][tid]) for tid in range(MAX_TEMPORAL_LAYERS)]
                              for sid in range(MAX_SPATIAL_LAYERS)],
        }

    def consumer_stats(self, int slot) -> dict:
        cdef ConsumerState* c = self._consumer(slot)
        return {
            "ssrc": c.ssrc, "packetCount": c.packets, "byteCount": c.bytes,
            "pliCount": c.pli_received, "firCount": c.fir_received, "nackCount": c.nack_received,
            "retransmittedPackets": c.retransmitted,
            "fractionLost": c.fraction_lost, "packetsLost": c.total_lost, "jitter": c.jitter,
            "currentLayer": c.svc_current if c.svc_layers > 1 else c.current_layer,
            "targetLayer": c.svc_target if c.svc_layers > 1 else c.target_layer,
            "preferredLayer": c.svc_preferred if c.svc_layers > 1 else c.preferred_layer,
            # the layers the consumer chooses from (1: the stream is forwarded whole)
            "spatialLayers": c.svc_layers if c.svc_layers > 1 else c.layer_count,
            "temporalLayers": c.temporal_count,
            # temporal layers: 0 when the stream has one (or the consumer gets them all unchosen)
            "currentTemporalLayer": c.current_temporal if c.temporal_count > 1 else
                                    (0 if c.current_layer >= 0 else -1),
            "targetTemporalLayer": c.target_temporal if c.temporal_count > 1 else 0,
            "preferredTemporalLayer": c.preferred_temporal if c.temporal_count > 1 else 0,
            "paused": bool(c.paused),
            **({"rtxSsrc": c.rtx_ssrc} if c.rtx_ssrc else {}),
        }

    def table_sizes(self) -> dict:
        """How many entries every table holds (tests assert zero after a close cascade)."""
        cdef int i, transports = 0, streams = 0, consumers = 0
        for i in range(self.transport_capacity):
            transports += self.transports[i].used
        for i in range(self.stream_capacity):
            streams += self.streams[i].used
        for i in range(self.consumer_capacity):
            consumers += self.consumers[i].used
        return {
            "transports": transports, "streams": streams, "consumers": consumers,
            "tuples": len(self.tuples), "producerSsrcs": len(self.producer_ssrcs),
            "consumerSsrcs": len(self.consumer_ssrcs), "srtpRefs": len(self._refs),
        }

    def send_raw(self, bytes data, tuple addr):
        """Queue and send one datagram (STUN and DTLS answers from the control plane)."""
        cdef sockaddr_storage ss
        cdef socklen_t ss_len
        cdef unsigned char* dst
        if len(data) > self.sock.slot_size:
            raise ValueError("datagram larger than a send slot")
        sockaddr_from_tuple(addr, self.sock.family, &ss, &ss_len)
        dst = self.sock.tx_slot()
        memcpy(dst, <const char*>data, len(data))
        self.sock.tx_commit(len(data), <const sockaddr*>&ss, ss_len)
        self.sock.flush()

    def fileno(self) -> int:
        return self.sock.fd
