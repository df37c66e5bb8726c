# cython: language_level=3
"""The AV1 dependency descriptor RTP header extension (AV1 RTP specification, appendix A), read in place.

The mandatory fields (start and end of frame, template id, frame number) come in every packet; the
template dependency structure comes on key frames and is remembered per producer stream, so that
later packets map their template id to a spatial and temporal id and to their decode target
indications (DTIs). Nothing here allocates or touches Python per packet.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from fastpath.codecs cimport PayloadInfo
from fastpath.rtp cimport RtpHeader

cdef enum:
    DD_MAX_TEMPLATES = 64           # template ids are 6 bits (A.8.3)
    DD_MAX_DECODE_TARGETS = 32      # dt_cnt_minus_one is 5 bits
    DD_MAX_SPATIAL_IDS = 4          # AV1's spatial_id has 2 bits

    # decode target indications (A.8.3, table A.1)
    DTI_NOT_PRESENT = 0
    DTI_DISCARDABLE = 1
    DTI_SWITCH = 2
    DTI_REQUIRED = 3

    DD_OK = 0
    DD_ERR_TRUNCATED = -1       # the fields run past the extension's length
    DD_ERR_INVALID = -2         # a value the spec forbids (template id outside the structure, too short)
    DD_ERR_NO_STRUCTURE = -3    # no template structure seen yet: the template id maps to nothing


# one template dependency structure (A.8.3), or none yet (template_count 0)
cdef struct DdStructure:
    int template_id_offset
    int template_count
    int dt_count
    int chain_count
    int max_spatial_id
    int max_temporal_id
    uint8_t template_sid[DD_MAX_TEMPLATES]
    uint8_t template_tid[DD_MAX_TEMPLATES]
    uint64_t template_dtis[DD_MAX_TEMPLATES]    # 2 bits per decode target, target 0 lowest
    uint32_t template_switch[DD_MAX_TEMPLATES]  # bit t: switching up to temporal layer t is safe here
    uint8_t dt_sid[DD_MAX_DECODE_TARGETS]       # each decode target's spatial and temporal id
    uint8_t dt_tid[DD_MAX_DECODE_TARGETS]
    uint32_t active_decode_targets              # the bitmask last signalled (all after a structure)
    uint32_t render_width[DD_MAX_SPATIAL_IDS]   # 0: not signalled
    uint32_t render_height[DD_MAX_SPATIAL_IDS]


# what one packet's descriptor says about its frame (A.8.2, A.8.4)
cdef struct DdFrame:
    int start_of_frame
    int end_of_frame
    int template_id
    int frame_number
    int spatial_id
    int temporal_id
    uint64_t dtis
    uint32_t switch_mask
    int structure_present        # the packet carried a new template dependency structure
    int active_present           # ... or an active_decode_targets_bitmask
    uint32_t active_decode_targets


# a producer stream's descriptor state: its structure and where its last key picture was
cdef struct DdStream:
    DdStructure structure
    uint32_t keyframe_timestamp     # RTP timestamp of the last key frame (its spatial layers share it)
    bint keyframe_seen
    uint64_t mapped                 # packets whose layers came from the descriptor
    uint64_t unmapped               # carried no descriptor, or one before any structure
    uint64_t malformed              # dropped: the descriptor could not be read
    uint64_t structures             # template structures read


cdef int dd_parse(const unsigned char* p, int length, const DdStructure* known,
                  DdStructure* scratch, DdFrame* out) noexcept nogil
cdef int dd_apply(DdStream* st, int ext_id, const unsigned char* data, const RtpHeader* h,
                  PayloadInfo* info, bint update) noexcept nogil
