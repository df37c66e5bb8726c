# cython: language_level=3
"""The layer stage: which simulcast layer each video consumer gets, from bitrates and estimates."""

from libc.stdint cimport uint64_t

from fastpath.receive cimport Receiver
from fastpath.state cimport ConsumerState


cdef class LayerSelection(Receiver):
    cdef void _update_bitrates(self, uint64_t now) noexcept
    cdef double _layer_bitrate(self, ConsumerState* c, int spatial, int temporal) noexcept
    cdef bint _layer_flowing(self, ConsumerState* c, int spatial, uint64_t now) noexcept
    cdef int _affordable_layer(self, ConsumerState* c, uint64_t now, int* temporal) noexcept
    cdef void _choose_target(self, int slot, uint64_t now, int max_layer, int max_temporal) noexcept
    cdef void _request_target_keyframe(self, ConsumerState* c) noexcept
    cdef void _transport_ready(self, int slot) noexcept
    cdef int _next_step(self, ConsumerState* c, uint64_t now, int* temporal) noexcept
    cdef void _plan_probes(self, uint64_t now) noexcept
