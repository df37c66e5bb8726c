# cython: language_level=3
"""First-byte demultiplexing (RFC 7983) and remote-address keys."""

from libc.stdint cimport uint8_t

from fastpath.netdefs cimport sockaddr
from fastpath.table cimport TableKey


cpdef enum PacketClass:
    PACKET_UNKNOWN = 0
    PACKET_STUN = 1
    PACKET_ZRTP = 2
    PACKET_DTLS = 3
    PACKET_TURN_CHANNEL = 4
    PACKET_RTP = 5


cdef inline PacketClass classify_first_byte(uint8_t b) noexcept nogil:
    # RFC 7983 §7: the first byte's range names the protocol
    if b <= 3:
        return PACKET_STUN
    if 16 <= b <= 19:
        return PACKET_ZRTP
    if 20 <= b <= 63:
        return PACKET_DTLS
    if 64 <= b <= 79:
        return PACKET_TURN_CHANNEL
    if 128 <= b <= 191:
        return PACKET_RTP
    return PACKET_UNKNOWN


cdef int address_key(const sockaddr* sa, TableKey* key) noexcept nogil
