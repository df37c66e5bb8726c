# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""RED (RFC 2198, redundant audio, as Chrome sends Opus with `red/48000/2`) for one consumer's copy.

A RED payload is a list of block headers, then the blocks in the same order (RFC 2198 §3):

    |F|  block PT   |  timestamp offset (14)    | block length (10) |   while F = 1 (4 bytes)
    |0|  block PT   |                                                   the last one (1 byte)

The last block is the primary encoding, the packet's own; the ones before it repeat earlier
packets. A consumer that negotiated RED gets the payload as it came, with the block payload types
mapped to its own; a consumer that did not gets the primary encoding alone, as a plain packet of
that encoding's payload type. Runs in the send slot, on the copy rewrite_rtp_to() made.
"""

from libc.stdint cimport uint8_t
from libc.string cimport memset, memmove

from fastpath.rtp cimport RtpHeader, parse_rtp


cdef int red_rewrite(unsigned char* packet, RtpHeader* h, int length, bint strip, uint8_t red_pt,
                     const unsigned char* pt_map) noexcept nogil:
    """Make a RED packet (length bytes, h its header) one consumer's; its new length or RED_ERR_*.

    pt_map maps the producer's payload types to the consumer's (0xFF: not negotiated). Without
    strip, each block header's payload type is mapped. With strip, the primary encoding moves to
    the start of the payload and is the whole of it, the packet's payload type becomes the one
    the primary's block maps to, and padding goes; h is updated to match.
    """
    cdef unsigned char* payload = packet + h.header_len
    cdef int size = h.payload_len
    cdef int pos = 0, blocks = 0, redundant = 0, primary_len, k
    cdef uint8_t block_pt = 0, mapped
    # headers first: all of them, and the blocks they announce, must lie within the payload
    while True:
        if pos >= size or blocks == RED_MAX_BLOCKS:
            return RED_ERR_MALFORMED
        blocks += 1
        block_pt = payload[pos] & 0x7F
        if block_pt == red_pt:
            return RED_ERR_MALFORMED
        if not payload[pos] & 0x80:
            pos += 1
            break
        if pos + 4 > size:
            return RED_ERR_MALFORMED
        redundant += ((payload[pos + 2] & 0x03) << 8) | payload[pos + 3]
        pos += 4
    primary_len = size - pos - redundant
    if primary_len <= 0:
        return RED_ERR_MALFORMED
    if not strip:
        pos = 0
        for k in range(blocks):
            mapped = pt_map[payload[pos] & 0x7F]
            if mapped == 0xFF:
                return RED_ERR_UNKNOWN_PT
            payload[pos] = (payload[pos] & 0x80) | mapped
            pos += 4 if payload[pos] & 0x80 else 1
        return length
    # the primary's payload type is the last header's, which the loop above ended on
    mapped = pt_map[block_pt]
    if mapped == 0xFF:
        return RED_ERR_UNKNOWN_PT
    memmove(payload, payload + size - primary_len, primary_len)
    packet[0] &= 0xDF  # no padding
    packet[1] = (packet[1] & 0x80) | mapped
    h.payload_type = mapped
    h.payload_len = primary_len
    h.has_padding = 0
    h.padding_len = 0
    return h.header_len + primary_len


def red_rewrite_py(const unsigned char[:] data, bint strip, int red_pt, dict pt_map):
    """red_rewrite() on a copy of an RTP packet: the rewritten packet, or the RED_ERR_* code."""
    cdef RtpHeader h
    cdef unsigned char table[128]
    cdef int n
    if data.shape[0] == 0 or parse_rtp(&data[0], data.shape[0], &h) < 0:
        raise ValueError("RTP packet is invalid")
    memset(table, 0xFF, sizeof(table))
    for old_pt, new_pt in pt_map.items():
        table[<int>old_pt & 0x7F] = <unsigned char>new_pt
    out = bytearray(data)
    cdef unsigned char[:] buf = out
    n = red_rewrite(&buf[0], &h, data.shape[0], strip, <uint8_t>red_pt, table)
    if n < 0:
        return n
    return bytes(out[:n])


RED_MALFORMED = RED_ERR_MALFORMED
RED_UNKNOWN_PT = RED_ERR_UNKNOWN_PT
