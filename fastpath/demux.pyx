# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Demux stage: classify datagrams by first byte (RFC 7983) and key them by remote address.

After ICE, every packet of a transport is found by its remote address tuple
(the selected ICE tuple), the way mediasoup's WebRtcServer does; STUN is found
by the USERNAME fragment in Python, since it is rare.
"""

import socket

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fastpath.netdefs cimport AF_INET, AF_INET6, sockaddr, sockaddr_in, sockaddr_in6
from fastpath.table cimport TableKey


cdef int address_key(const sockaddr* sa, TableKey* key) noexcept nogil:
    """Fill `key` from an IPv4 or IPv6 socket address; -1 for other families."""
    cdef const sockaddr_in* v4
    cdef const sockaddr_in6* v6
    memset(key, 0, sizeof(TableKey))
    if sa.sa_family == AF_INET:
        v4 = <const sockaddr_in*>sa
        key.a = <uint64_t>v4.sin_addr.s_addr
        key.c = (<uint32_t>AF_INET << 16) | v4.sin_port
        return 0
    if sa.sa_family == AF_INET6:
        v6 = <const sockaddr_in6*>sa
        memcpy(&key.a, &v6.sin6_addr.s6_addr[0], 8)
        memcpy(&key.b, &v6.sin6_addr.s6_addr[8], 8)
        key.c = (<uint32_t>AF_INET6 << 16) | v6.sin6_port
        return 0
    return -1


def classify(data: bytes) -> PacketClass:
    """Classify a datagram by its first byte (RFC 7983 §7); empty input is unknown."""
    if not data:
        return PACKET_UNKNOWN
    return classify_first_byte(<uint8_t>data[0])


def address_key_of(tuple addr) -> tuple:
    """The (a, b, c) table key for a Python (host, port[, ...]) address, as the fast path builds it."""
    cdef sockaddr_in v4
    cdef sockaddr_in6 v6
    cdef TableKey key
    host, port = addr[0], addr[1]
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    if ":" in host:
        memset(&v6, 0, sizeof(v6))
        v6.sin6_family = AF_INET6
        v6.sin6_port = socket.htons(port)
        packed = socket.inet_pton(socket.AF_INET6, host)
        memcpy(&v6.sin6_addr.s6_addr[0], <const char*>packed, 16)
        address_key(<const sockaddr*>&v6, &key)
    else:
        memset(&v4, 0, sizeof(v4))
        v4.sin_family = AF_INET
        v4.sin_port = socket.htons(port)
        packed = socket.inet_pton(socket.AF_INET, host)
        memcpy(&v4.sin_addr.s_addr, <const char*>packed, 4)
        address_key(<const sockaddr*>&v4, &key)
    return (key.a, key.b, key.c)
