# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Layer stage: pick each video consumer's target layer; the fan-out stage switches on its key frame.

Nothing here runs per packet. Twice a second update_layers() measures every stream's and
transport's bitrate and gives each transport's budget (its bandwidth estimate) first to its
single-layer consumers, then to each simulcast consumer: the highest flowing layer up to its
preferred one that fits. A new target, or a transport that becomes ready, asks the producer
for a key frame of that layer.
"""

from libc.stdint cimport int64_t, uint64_t

from fastpath.bwe cimport bwe_available
from fastpath.clock cimport monotonic_ns
from fastpath.receive cimport Receiver
from fastpath.state cimport (
    MAX_SPATIAL_LAYERS,
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


cdef class LayerSelection(Receiver):
    """Simulcast layer choice per video consumer, within its transport's bandwidth estimate."""

    def update_layers(self):
        """Re-pick every video consumer's target layer (call ~2/s): the highest it prefers that is
        flowing and that its transport's bandwidth estimate affords, after what the transport's
        single-layer consumers (audio, plain video) take."""
        cdef int i
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
            if c.used and c.layer_count == 1 and c.streams[0] >= 0 and not (c.paused or c.producer_paused):
                tr = &self.transports[c.transport]
                if tr.budget_bps >= 0:
                    tr.budget_bps -= <int64_t>self.streams[c.streams[0]].bitrate_bps
        for i in range(self.consumer_capacity):
            c = &self.consumers[i]
            if c.used and c.is_video:
                self._choose_target(i, now, self._affordable_layer(c, now) if c.layer_count > 1
                                    else MAX_SPATIAL_LAYERS)
        self.sock.flush()

    cdef void _update_bitrates(self, uint64_t now) noexcept:
        """Each stream's and each transport's bitrate since the last update, smoothed."""
        cdef int i
        cdef double seconds = (now - self.rates_ns) / 1e9 if self.rates_ns else 0.0
        cdef ProducerStream* s
        cdef TransportState* tr
        for i in range(self.stream_capacity):
            s = &self.streams[i]
            if s.used:
                s.bitrate_bps = smoothed_bitrate(s.bitrate_bps, s.bytes, &s.rate_bytes_mark, seconds)
        for i in range(self.transport_capacity):
            tr = &self.transports[i]
            if tr.used:
                tr.out_bitrate_bps = smoothed_bitrate(tr.out_bitrate_bps, tr.rtp_out_bytes,
                                                      &tr.rate_bytes_mark, seconds)
        self.rates_ns = now

    cdef int _affordable_layer(self, ConsumerState* c, uint64_t now) noexcept:
        """The highest flowing layer the consumer prefers that fits its transport's budget (which
        it then takes from), else its lowest flowing one; MAX_SPATIAL_LAYERS: nothing to limit."""
        cdef TransportState* tr = &self.transports[c.transport]
        cdef int layer, chosen = -1
        cdef double need
        cdef ProducerStream* s
        if tr.budget_bps < 0 or c.paused or c.producer_paused:
            return MAX_SPATIAL_LAYERS
        for layer in range(c.preferred_layer, -1, -1):
            if c.streams[layer] < 0:
                continue
            s = &self.streams[c.streams[layer]]
            if not (s.last_packet_ns and now - s.last_packet_ns < ACTIVE_LAYER_NS):
                continue
            chosen = layer
            need = s.bitrate_bps * (UPGRADE_MARGIN if layer > c.current_layer else 1.0)
            if need <= tr.budget_bps:
                break
        if chosen < 0:
            return MAX_SPATIAL_LAYERS
        tr.budget_bps -= <int64_t>self.streams[c.streams[chosen]].bitrate_bps
        return chosen

    cdef void _choose_target(self, int slot, uint64_t now, int max_layer) noexcept:
        cdef ConsumerState* c = &self.consumers[slot]
        cdef int layer, target = -1
        cdef ProducerStream* s
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

    def set_consumer_preferred_layer(self, int slot, int spatial_layer):
        """Prefer a spatial layer (clipped to what the producer has); switching waits for a key frame."""
        cdef ConsumerState* c = self._consumer(slot)
        cdef int max_layer = MAX_SPATIAL_LAYERS
        c.preferred_layer = max(0, min(spatial_layer, c.layer_count - 1))
        if bwe_available(&self.transports[c.transport].bwe) and c.target_layer >= 0:
            # going up waits for update_layers() to see what the transport's estimate affords
            max_layer = c.target_layer
        self._choose_target(slot, monotonic_ns(), max_layer)

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
