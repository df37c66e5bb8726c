# cython: language_level=3
"""Layers within one stream, decided per packet and consumer in the fan-out stage.

Temporal layers (VP8 TID and LAYER_SYNC, RFC 7741 §4.2; VP9 TID and U, RFC 9628 §4.2; AV1
from the dependency descriptor, av1.pxd): a packet whose temporal id is above the consumer's
current temporal layer is skipped. Going down happens at the start of any picture (no frame of
a lower layer refers to a higher one); going up at the start of a picture of the higher layer
marked as a switching point (LAYER_SYNC / U: it refers only to the base layer; AV1: a frame
whose decode target indication is Switch for a target of that temporal layer), or at a key frame.

Spatial layers of an SVC stream (VP9, RFC 9628, and AV1: one SSRC for all of them): packets of a spatial
id above the consumer's current one are skipped and the last packet of its highest layer in
each picture (E bit) gets the RTP marker. Going up needs a key frame; going down happens at a
picture start in full SVC, and at a key frame in K-SVC, where every spatial layer predicts only
from itself between key frames (so, off key frames, only the current layer is forwarded).

The caller makes a skipped packet leave no hole: seq_rewrite_drop() and, for VP8, the picture
id (fanout.pyx). Nothing here allocates or touches Python.
"""

from fastpath.codecs cimport PayloadInfo
from fastpath.state cimport ConsumerState

cdef enum:
    LAYER_FORWARD = 0
    LAYER_DROP = 1
    LAYER_FORWARD_END = 2   # forward with the RTP marker set: it ends the picture for this consumer


cdef inline int layer_filter(ConsumerState* c, const PayloadInfo* info, bint keyframe) noexcept nogil:
    """Forward or skip one packet of the consumer's current stream; moves the current layers."""
    cdef int tid = info.temporal_id if info.temporal_id > 0 else 0
    cdef int sid = info.spatial_id if info.spatial_id > 0 else 0
    cdef int up
    # switches happen at the first packet of a picture (its lowest spatial layer, which every
    # picture has and whose temporal id all of them share), whether or not it is forwarded
    cdef bint picture_start = info.begins_frame and sid == 0
    if picture_start:
        if c.svc_layers > 1 and c.svc_current != c.svc_target:
            if keyframe or (c.svc_target < c.svc_current and not c.ksvc):
                c.svc_current = c.svc_target
                c.layers_changed = 1
        if c.temporal_count > 1 and c.current_temporal != c.target_temporal:
            if keyframe or c.target_temporal < c.current_temporal:
                c.current_temporal = c.target_temporal
                c.layers_changed = 1
            elif c.current_temporal < tid <= c.target_temporal and info.layer_sync:
                c.current_temporal = tid
                c.layers_changed = 1
            elif c.current_temporal >= 0 and (info.switch_mask >> (c.current_temporal + 1)) != 0:
                # AV1: the frame is a switch point (DTI S) of the decode targets of these temporal
                # layers; take the highest one up to the target
                for up in range(c.target_temporal, c.current_temporal, -1):
                    if info.switch_mask & (1 << up):
                        c.current_temporal = up
                        c.layers_changed = 1
                        break
    if c.temporal_count > 1 and tid > c.current_temporal:
        return LAYER_DROP
    if c.svc_layers > 1:
        if sid > c.svc_current:
            return LAYER_DROP
        if c.ksvc and info.inter_predicted and sid != c.svc_current:
            return LAYER_DROP
        if info.ends_frame > 0 and sid == c.svc_current:
            return LAYER_FORWARD_END
    return LAYER_FORWARD
