# cython: language_level=3
"""Video payload descriptors read in place: key frames, layers and frame
boundaries for forwarding decisions (RFC 7741 VP8, RFC 9628 VP9, RFC 6184
H264, AV1 RTP specification §4), without decoding any media."""

from libc.stdint cimport int32_t


cpdef enum:
    CODEC_UNKNOWN = 0
    CODEC_OPUS = 1
    CODEC_VP8 = 2
    CODEC_VP9 = 3
    CODEC_H264 = 4
    CODEC_AV1 = 5

    PAYLOAD_OK = 0
    PAYLOAD_ERR_TRUNCATED = -1     # the descriptor runs past the payload
    PAYLOAD_ERR_INVALID = -2       # a field the spec forbids (reserved NAL type, OBU forbidden bit)
    PAYLOAD_ERR_CODEC = -3         # no descriptor parser for this codec

    # vp8_rewrite_picture_id: keep the field as it is
    VP8_KEEP = -1


cdef struct PayloadInfo:
    int is_keyframe         # the packet starts (or carries) a key frame's first layer
    int temporal_id         # -1 unknown
    int spatial_id          # -1 unknown
    int layer_sync          # switching up to temporal_id is safe from here (VP8 Y, VP9 U)
    int begins_frame        # first packet of a (layer) frame
    int ends_frame          # last packet of a layer frame (VP9 E), -1 unknown: see the RTP marker
    int32_t picture_id      # VP8/VP9 picture id, -1 absent
    int picture_id_bits     # 7 or 15, 0 absent
    int tl0picidx           # -1 absent
    int header_length       # bytes of the payload descriptor before the codec's own bitstream
    int inter_predicted     # VP9 P: the layer frame refers to earlier pictures (K-SVC: no
                            # spatial switch, and no other spatial layer needed)
    int switch_mask         # AV1 dependency descriptor (av1.pxd): bit t set, switching up to
                            # temporal layer t is safe from this frame; 0 elsewhere


cdef int parse_payload(int codec, const unsigned char* payload, int length,
                       PayloadInfo* out) noexcept nogil
cdef int vp8_rewrite_picture_id(unsigned char* payload, int length,
                                int32_t new_picture_id, int new_tl0picidx) noexcept nogil
