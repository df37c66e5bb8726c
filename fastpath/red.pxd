# cython: language_level=3
"""RED (RFC 2198, redundant audio): a consumer's copy of a RED packet, passed on or stripped to its primary."""

from libc.stdint cimport uint8_t

from fastpath.rtp cimport RtpHeader

cdef enum:
    # ConsumerState.red_mode: what a consumer gets of the producer's RED packets
    RED_NONE = 0                # the producer sends no RED
    RED_PASS = 1                # RED, block payload types mapped to the consumer's
    RED_STRIP = 2               # the primary encoding alone (the consumer did not negotiate RED)
    # blocks one RED payload may hold, as libwebrtc's RED splitter accepts (kMaxRedBlocks)
    RED_MAX_BLOCKS = 32
    # red_rewrite() results
    RED_ERR_MALFORMED = -1      # block lengths beyond the payload, too many blocks, nested RED
    RED_ERR_UNKNOWN_PT = -2     # a block's payload type the consumer did not negotiate


cdef int red_rewrite(unsigned char* packet, RtpHeader* h, int length, bint strip, uint8_t red_pt,
                     const unsigned char* pt_map) noexcept nogil
