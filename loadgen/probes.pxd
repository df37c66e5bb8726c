# cython: language_level=3
"""Synthetic RTP for benchmarks and load tests: probe packets that carry their send time."""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    # payload bytes a probe starts with: its send time, CLOCK_MONOTONIC ns, big-endian
    PROBE_TIME_LENGTH = 8
    PROBE_MIN_LENGTH = 20   # RTP fixed header + send time
    # a probe's optional header extension (RFC 8285 one-byte form): the 4-byte 0xBEDE header and one
    # word holding a 2-byte element, the transport-wide sequence number, and a padding byte
    PROBE_TWCC_EXT_LENGTH = 8


cdef int write_probe_rtp(unsigned char* buf, int length, uint8_t payload_type, uint16_t seq,
                         uint32_t timestamp, uint32_t ssrc, uint64_t send_ns,
                         int twcc_ext_id, uint16_t twcc_seq) noexcept nogil

cdef int64_t probe_send_ns(const unsigned char* buf, int length) noexcept nogil
