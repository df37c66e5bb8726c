# cython: language_level=3
"""The route stage: the Forwarder, top of the chain state < fanout < feedback < receive < layers < route."""

from fastpath.layers cimport LayerSelection
from fastpath.netdefs cimport sockaddr_storage, socklen_t
from fastpath.state cimport TransportState
from fastpath.table cimport TableKey


cdef class Forwarder(LayerSelection):
    cdef void _detach(self, int consumer, int stream) noexcept
    cdef void _clear_rtcp_tuple(self, TransportState* tr) noexcept
    cdef int _claim_tuple(self, int slot, tuple addr, sockaddr_storage* remote, socklen_t* remote_len,
                          TableKey* key) except -1
