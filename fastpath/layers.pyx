# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Layer stage: pick each video consumer's target layers; the fan-out stage switches at their sync points.

Nothing here runs per packet. Twice a second update_layers() measures every stream's and
transport's bitrate (and each stream's by spatial and temporal id) and gives each transport's
budget (its bandwidth estimate) first to its single-layer consumers, then to each layered
consumer (simulcast, temporal layers, SVC): the highest flowing (spatial, temporal) pair up to
its preferred ones that fits, spatial first, so a path that cannot take 30 fps of a layer gets
15 or 7.5 fps of it before it loses resolution. A new spatial target, or a transport that becomes
ready, asks the producer for a key frame; a temporal one waits for the stream's next switching point.
Where the estimate holds a consumer below the layers it prefers, a probe (probe.pyx) tests whether
the path takes the next step up now.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from fastpath.bwe cimport bwe_available, bwe_may_probe, bwe_probe_begin
from fastpath.clock cimport monotonic_ns
from fastpath.probe cimport probe_may_start, probe_start, probe_target
from fastpath.receive cimport Receiver
from fastpath.state cimport (
    MAX_SPATIAL_LAYERS,
    MAX_TEMPORAL_LAYERS,
    ConsumerState,
    ProducerStream,
    TransportState,
    smoothed_bitrate,
)

cdef enum:
    ACTIVE_LAYER_NS = 2000000000


# going up a layer needs this much more room than the layer's bitrate, so a layer that only just
# fits is not taken and left again at every update
cdef double UPGRADE_MARGIN = 1.15


cdef inline bint _layered(ConsumerState* c) noexcept:
    """The consumer's rate can be chosen: several streams, or layers within its one."""
    return c.layer_count > 1 or c.temporal_count > 1 or c.svc_layers > 1


cdef inline bint _can_probe(const ConsumerState* c, const TransportState* tr) noexcept nogil:
    """The consumer's transport can be probed through it: transport-cc, and RTX or the probator
    (one-byte extension ids only, which a padding packet's header is built with)."""
    return c.twcc_ext_id and (c.rtx_ssrc or (tr.probator_pt and c.twcc_ext_id <= 14))


cdef class LayerSelection(Receiver):
    """Layer choice per video consumer (simulcast stream, temporal and SVC layers), within its
    transport's bandwidth estimate."""

    def update_layers(self):
        """Re-pick every video consumer's target layers (call ~2/s): the highest it prefers that are
        flowing and that its transport's bandwidth estimate affords, after what the transport's
        single-layer consumers (audio, plain video) take."""
        cdef int i, spatial, temporal
        cdef uint64_t now = monotonic_ns()
        cdef ConsumerState* c
        cdef TransportState* tr
        self._update_bitrates(now)
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if tr.used:
                tr.budget_bps = <int64_t>bwe_available(&tr.bwe)
                if tr.budget_bps == 0:
                    tr.budget_bps = -1
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and not _layered(c) and c.streams[0] >= 0 and not (c.paused or c.producer_paused):
                tr = &self.transports[c.transport]
                if tr.budget_bps >= 0:
                    tr.budget_bps -= <int64_t>self.streams[c.streams[0]].bitrate_bps
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.is_video:
                spatial, temporal = MAX_SPATIAL_LAYERS, MAX_TEMPORAL_LAYERS
                if _layered(c):
                    spatial = self._affordable_layer(c, now, &temporal)
                self._choose_target(i, now, spatial, temporal)
        self._plan_probes(now)
        self.sock.flush()

    cdef void _update_bitrates(self, uint64_t now) noexcept:
        """Each stream's and each transport's bitrate since the last update, smoothed."""
        cdef int i, sid, tid
        cdef double seconds = (now - self.rates_ns) / 1e9 if self.rates_ns else 0.0
        cdef ProducerStream* s
        cdef TransportState* tr
        for i in range(self.stream_capacity):
            s = &self.streams[i]
            if s.used:
                s.bitrate_bps = smoothed_bitrate(s.bitrate_bps, s.bytes, &s.rate_bytes_mark, seconds)
                if s.is_video:
                    for sid in range(MAX_SPATIAL_LAYERS):
                        for tid in range(MAX_TEMPORAL_LAYERS):
                            s.layer_bps[sid][tid] = smoothed_bitrate(
                                s.layer_bps[sid][tid], s.layer_bytes[sid][tid], &s.layer_marks[sid][tid], seconds)
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if tr.used:
                tr.out_bitrate_bps = smoothed_bitrate(tr.out_bitrate_bps, tr.rtp_out_bytes,
                                                      &tr.rate_bytes_mark, seconds)
        self.rates_ns = now

    cdef double _layer_bitrate(self, ConsumerState* c, int spatial, int temporal) noexcept:
        """What (spatial, temporal) costs the consumer's transport: a simulcast stream's temporal
        layers up to `temporal`; an SVC stream's spatial layers up to `spatial` (K-SVC: that one
        alone, as between key frames), each up to `temporal`."""
        cdef int sid, tid, low = 0, high = MAX_SPATIAL_LAYERS - 1
        cdef int32_t stream = c.streams[0] if c.svc_layers > 1 else c.streams[spatial]
        cdef double total = 0
        cdef ProducerStream* s
        if stream < 0:
            return 0
        s = &self.streams[stream]
        if c.svc_layers <= 1 and c.temporal_count <= 1:
            return s.bitrate_bps
        if c.temporal_count <= 1:
            temporal = MAX_TEMPORAL_LAYERS - 1
        if c.svc_layers > 1:
            low = spatial if c.ksvc else 0
            high = spatial
        for sid in range(low, high + 1):
            for tid in range(min(temporal, MAX_TEMPORAL_LAYERS - 1) + 1):
                total += s.layer_bps[sid][tid]
        return total

    cdef bint _layer_flowing(self, ConsumerState* c, int spatial, uint64_t now) noexcept:
        """Packets of this spatial layer arrived within the last two seconds."""
        cdef int32_t stream = c.streams[0] if c.svc_layers > 1 else c.streams[spatial]
        cdef uint64_t last
        if stream < 0:
            return 0
        last = self.streams[stream].spatial_last_ns[spatial] if c.svc_layers > 1 \
            else self.streams[stream].last_packet_ns
        return last != 0 and now - last < ACTIVE_LAYER_NS

    cdef int _affordable_layer(self, ConsumerState* c, uint64_t now, int* temporal) noexcept:
        """The highest flowing (spatial, temporal) pair the consumer prefers that fits its
        transport's budget (which it then takes from), else the lowest temporal layer of its
        lowest flowing spatial layer; the spatial layer, or MAX_SPATIAL_LAYERS: nothing to limit."""
        cdef TransportState* tr = &self.transports[c.transport]
        cdef int layer, t, chosen = -1, chosen_t = 0
        cdef int current = c.svc_current if c.svc_layers > 1 else c.current_layer
        cdef int preferred = c.svc_preferred if c.svc_layers > 1 else c.preferred_layer
        cdef int top_t = c.preferred_temporal if c.temporal_count > 1 else 0
        cdef double need
        temporal[0] = MAX_TEMPORAL_LAYERS
        if tr.budget_bps < 0 or c.paused or c.producer_paused:
            return MAX_SPATIAL_LAYERS
        for layer in range(preferred, -1, -1):
            if not self._layer_flowing(c, layer, now):
                continue
            for t in range(top_t, -1, -1):
                chosen, chosen_t = layer, t
                need = self._layer_bitrate(c, layer, t)
                # going up (spatial first, then temporal) needs room to spare
                if layer > current or (layer == current and t > c.current_temporal):
                    need *= UPGRADE_MARGIN
                if need <= tr.budget_bps:
                    break
            else:
                continue
            break
        if chosen < 0:
            return MAX_SPATIAL_LAYERS
        tr.budget_bps -= <int64_t>self._layer_bitrate(c, chosen, chosen_t)
        temporal[0] = chosen_t
        return chosen

    cdef void _choose_target(self, int slot, uint64_t now, int max_layer, int max_temporal) noexcept:
        cdef ConsumerState* c = &self.consumers[slot]
        cdef int layer, target = -1, top
        cdef ProducerStream* s
        if c.temporal_count > 1:
            # no key frame needed: the fan-out stage switches at the stream's next switching point
            c.target_temporal = min(c.preferred_temporal, max_temporal)
        if c.svc_layers > 1:
            # spatial layers within the one stream
            top = min(c.svc_preferred, max_layer)
            for layer in range(top, -1, -1):
                if self._layer_flowing(c, layer, now):
                    target = layer
                    break
            if target < 0:
                target = top
            # up (and K-SVC down) waits for a key frame; full SVC goes down at the next picture
            if c.svc_current >= 0 and target != c.svc_current and (target > c.svc_current or c.ksvc) \
                    and c.streams[0] >= 0 and not (c.paused or c.producer_paused):
                self._request_keyframe(c.streams[0], now, target != c.svc_target)
            c.svc_target = target
            target = -1
            max_layer = MAX_SPATIAL_LAYERS
        for layer in range(min(c.preferred_layer, max_layer), -1, -1):
            if c.streams[layer] < 0:
                continue
            s = &self.streams[c.streams[layer]]
            if s.last_packet_ns and now - s.last_packet_ns < ACTIVE_LAYER_NS:
                target = layer
                break
        if target < 0:
            target = c.preferred_layer
        if target != c.target_layer:
            c.target_layer = target
            if target != c.current_layer:
                self._request_target_keyframe(c)
        elif target != c.current_layer and not (c.paused or c.producer_paused) and c.streams[target] >= 0:
            # still waiting for the key frame to switch on: ask again (rate-limited per stream)
            self._request_keyframe(c.streams[target], now, 0)

    cdef void _request_target_keyframe(self, ConsumerState* c) noexcept:
        if 0 <= c.target_layer < c.layer_count and c.streams[c.target_layer] >= 0:
            self._request_keyframe(c.streams[c.target_layer], monotonic_ns(), 1)
            self.sock.flush()

    def set_consumer_preferred_layer(self, int slot, int spatial_layer, int temporal_layer=-1):
        """Prefer a spatial and a temporal layer (-1: the highest), clipped to what the producer has.

        A spatial switch waits for a key frame, a temporal one for the stream's next switching point.
        """
        cdef ConsumerState* c = self._consumer(slot)
        cdef int max_layer = MAX_SPATIAL_LAYERS, max_temporal = MAX_TEMPORAL_LAYERS, target, preferred
        if c.svc_layers > 1:
            c.svc_preferred = preferred = max(0, min(spatial_layer, c.svc_layers - 1))
            target = c.svc_target
        else:
            c.preferred_layer = preferred = max(0, min(spatial_layer, c.layer_count - 1))
            target = c.target_layer
        c.preferred_temporal = (c.temporal_count - 1 if temporal_layer < 0
                                else min(temporal_layer, c.temporal_count - 1))
        if bwe_available(&self.transports[c.transport].bwe) and target >= 0:
            # going up waits for update_layers() to see what the transport's estimate affords
            max_layer = target
            if preferred >= target:
                max_temporal = c.target_temporal
        self._choose_target(slot, monotonic_ns(), max_layer, max_temporal)

    cdef void _transport_ready(self, int slot) noexcept:
        """A transport can now send: its video consumers waiting to start ask for a key frame."""
        cdef int i
        cdef ConsumerState* c
        if not (self.transports[slot].has_tuple and self.transports[slot].has_srtp):
            return
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.transport == slot and c.is_video and c.current_layer < 0 \
                    and not (c.paused or c.producer_paused):
                self._request_target_keyframe(c)

    cdef int _next_step(self, ConsumerState* c, uint64_t now, int* temporal) noexcept:
        """The (spatial, temporal) pair right above the consumer's current one in the order
        _affordable_layer() tries them, up to its preferred ones: its next temporal layer, else the
        next flowing spatial layer (at its lowest temporal one); -1 if there is none."""
        cdef int layer
        cdef int current = c.svc_current if c.svc_layers > 1 else c.current_layer
        cdef int preferred = c.svc_preferred if c.svc_layers > 1 else c.preferred_layer
        cdef int top_t = c.preferred_temporal if c.temporal_count > 1 else 0
        cdef int current_t = c.current_temporal if c.temporal_count > 1 else 0
        if current_t < top_t:
            temporal[0] = current_t + 1
            return current
        for layer in range(current + 1, preferred + 1):
            if self._layer_flowing(c, layer, now) and self._layer_bitrate(c, layer, 0) > 0:
                temporal[0] = 0
                return layer
        return -1

    cdef void _plan_probes(self, uint64_t now) noexcept:
        """After the budgets are spent: start a probe on each transport where a layered consumer is
        held below the layers it prefers, the next step up is flowing, and the estimate may probe
        (limited, transport-cc, past the hold after a decrease and any back-off). The probe aims
        the transport's total rate at what the budget would need with that consumer one step up;
        its packets are RTX resends of a consumer's recent packets, or without RTX padding-only
        packets on the probator SSRC the receiver signalled (set_transport_probator), so a transport
        probes only when it has one or the other. Then every running probe is paced."""
        cdef int i, spatial, temporal, next_spatial, next_temporal
        cdef double need
        cdef uint32_t target
        cdef ConsumerState* c
        cdef TransportState* tr
        for i in range(self.transport_capacity):
            self.transports[i].probe.want_bps = 0
            self.transports[i].probe.want_source = -1
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if not (c.used and c.is_video) or c.paused or c.producer_paused or c.current_layer < 0:
                continue
            tr = &self.transports[c.transport]
            if _can_probe(c, tr) and tr.probe.want_source < 0:
                tr.probe.want_source = i  # any consumer with RTX (or the probator) can carry the probe
            if not _layered(c) or tr.budget_bps < 0:
                continue
            spatial = c.svc_current if c.svc_layers > 1 else c.current_layer
            temporal = c.current_temporal if c.temporal_count > 1 else 0
            # settled where update_layers() put it, not on its way to another layer
            if spatial < 0 or temporal < 0 or c.target_layer != c.current_layer or \
                    (c.svc_layers > 1 and c.svc_target != c.svc_current) or \
                    (c.temporal_count > 1 and c.target_temporal != c.current_temporal):
                continue
            next_spatial = self._next_step(c, now, &next_temporal)
            if next_spatial < 0:
                continue
            # what the others were given, with this consumer's layers traded for the next step up
            need = (<double>bwe_available(&tr.bwe) - tr.budget_bps
                    - self._layer_bitrate(c, spatial, temporal)
                    + UPGRADE_MARGIN * self._layer_bitrate(c, next_spatial, next_temporal))
            if need > tr.probe.want_bps:
                tr.probe.want_bps = <uint32_t>need if need < 4e9 else 4000000000u
                if _can_probe(c, tr) and (c.rtx_ssrc or tr.probe.want_source < 0):
                    tr.probe.want_source = i  # RTX resends (real media) before padding
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if not tr.used:
                continue
            # where probes can run, the estimate grows past what is acknowledged only by probing
            tr.bwe.growth_capped = not self.probing_off and tr.probe.want_source >= 0 and not tr.is_tcp
            if not tr.bwe.growth_capped or tr.probe.want_bps <= bwe_available(&tr.bwe):
                continue
            if not (tr.has_tuple and tr.has_srtp and bwe_may_probe(&tr.bwe, now)
                    and probe_may_start(&tr.probe, now)):
                continue
            target = probe_target(bwe_available(&tr.bwe), tr.probe.want_bps)
            if target <= bwe_available(&tr.bwe):
                continue
            probe_start(&tr.probe, target, tr.probe.want_source, tr.rtp_out_bytes, now)
            bwe_probe_begin(&tr.bwe, target, now)
            self.probes_active += 1
        self._pace_probes(now)
