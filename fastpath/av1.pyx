# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The AV1 dependency descriptor (AV1 RTP specification, appendix A), read for layer selection.

Every read is bounds checked against the extension's length: a descriptor that runs past it, or
names a template its structure does not have, is an error code the caller drops and counts.
Per packet the usual cost is three bytes (A.8.2's mandatory fields) and a table lookup; the
template structure (A.8.3) is parsed only on the key frames that carry it.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fastpath.rtp cimport find_extension, parse_rtp


cdef struct BitReader:
    const unsigned char* p
    int bits
    int pos
    bint overrun


cdef inline uint32_t _f(BitReader* r, int n) noexcept nogil:
    """f(n) of A.8.1: n bits, most significant first; past the end sets overrun and reads 0."""
    cdef uint32_t v = 0
    cdef int i
    if r.pos + n > r.bits:
        r.overrun = 1
        r.pos = r.bits
        return 0
    for i in range(n):
        v = (v << 1) | ((r.p[r.pos >> 3] >> (7 - (r.pos & 7))) & 1)
        r.pos += 1
    return v


cdef inline uint32_t _ns(BitReader* r, uint32_t n) noexcept nogil:
    """ns(n) of A.8.1: a non-symmetric unsigned value below n (n >= 1)."""
    cdef int w = 0
    cdef uint32_t x = n, m, v
    while x != 0:
        x >>= 1
        w += 1
    m = (1u << w) - n
    v = _f(r, w - 1)
    if v < m:
        return v
    return (v << 1) - m + _f(r, 1)


cdef inline uint32_t _switch_mask(const DdStructure* s, uint64_t dtis) noexcept nogil:
    """Bit t set: the frame is a switch point (DTI S) of a decode target of temporal id t, so a
    receiver of that target's temporal layer decodes everything from this frame on."""
    cdef uint32_t mask = 0
    cdef int dt
    for dt in range(s.dt_count):
        if ((dtis >> (2 * dt)) & 3) == DTI_SWITCH:
            mask |= 1u << s.dt_tid[dt]
    return mask


cdef int _read_structure(BitReader* r, DdStructure* s) noexcept nogil:
    """template_dependency_structure() (A.8.3) into s, with decode_target_layers() derived."""
    cdef int sid = 0, tid = 0, count = 0, idc, t, dt, c, k
    cdef uint64_t dtis
    s.template_id_offset = _f(r, 6)
    s.dt_count = _f(r, 5) + 1
    s.max_temporal_id = 0
    # template_layers(): each template's ids, as steps from the previous template's
    while True:
        if count >= DD_MAX_TEMPLATES:
            return DD_ERR_INVALID
        s.template_sid[count] = sid
        s.template_tid[count] = tid
        count += 1
        idc = _f(r, 2)
        if r.overrun:
            return DD_ERR_TRUNCATED
        if idc == 1:
            tid += 1
            if tid > s.max_temporal_id:
                s.max_temporal_id = tid
        elif idc == 2:
            tid = 0
            sid += 1
        elif idc == 3:
            break
        if sid >= DD_MAX_SPATIAL_IDS or tid > 7:
            return DD_ERR_INVALID   # AV1's OBU extension has 2 bits of spatial id, 3 of temporal id
    s.template_count = count
    s.max_spatial_id = sid
    # template_dtis()
    for t in range(count):
        dtis = 0
        for dt in range(s.dt_count):
            dtis |= (<uint64_t>_f(r, 2)) << (2 * dt)
        s.template_dtis[t] = dtis
    # template_fdiffs(): not needed to pick layers, but they must be stepped over
    for t in range(count):
        k = 0
        while _f(r, 1):
            _f(r, 4)
            k += 1
            if r.overrun or k > 15:
                return DD_ERR_TRUNCATED if r.overrun else DD_ERR_INVALID
    # template_chains()
    s.chain_count = _ns(r, s.dt_count + 1)
    if s.chain_count:
        for dt in range(s.dt_count):
            _ns(r, s.chain_count)
        for t in range(count):
            for c in range(s.chain_count):
                _f(r, 4)
    if r.overrun:
        return DD_ERR_TRUNCATED
    # decode_target_layers(): a target's ids are the highest of the templates it includes
    for dt in range(s.dt_count):
        s.dt_sid[dt] = 0
        s.dt_tid[dt] = 0
        for t in range(count):
            if (s.template_dtis[t] >> (2 * dt)) & 3:
                if s.template_sid[t] > s.dt_sid[dt]:
                    s.dt_sid[dt] = s.template_sid[t]
                if s.template_tid[t] > s.dt_tid[dt]:
                    s.dt_tid[dt] = s.template_tid[t]
    for t in range(count):
        s.template_switch[t] = _switch_mask(s, s.template_dtis[t])
    # render_resolutions()
    memset(s.render_width, 0, sizeof(s.render_width))
    memset(s.render_height, 0, sizeof(s.render_height))
    if _f(r, 1):
        for k in range(sid + 1):
            s.render_width[k] = _f(r, 16) + 1
            s.render_height[k] = _f(r, 16) + 1
    if r.overrun:
        return DD_ERR_TRUNCATED
    s.active_decode_targets = 0xFFFFFFFF if s.dt_count == 32 else (1u << s.dt_count) - 1
    return DD_OK


cdef int dd_parse(const unsigned char* p, int length, const DdStructure* known,
                  DdStructure* scratch, DdFrame* out) noexcept nogil:
    """dependency_descriptor(sz) (A.8.1) of one packet.

    `known` is the stream's structure (template_count 0: none yet). A structure the packet carries
    is read into `scratch` and used for this packet; the caller keeps it. DD_OK or a DD_ERR_*.
    """
    cdef BitReader r
    cdef const DdStructure* s = known
    cdef int custom_dtis = 0, custom_fdiffs = 0, custom_chains = 0, template_present, active_present
    cdef int idx, dt, size, k
    cdef uint64_t dtis
    out.structure_present = 0
    out.active_present = 0
    if p == NULL or length < 3:
        return DD_ERR_TRUNCATED
    # mandatory_descriptor_fields()
    out.start_of_frame = p[0] >> 7
    out.end_of_frame = (p[0] >> 6) & 1
    out.template_id = p[0] & 0x3F
    out.frame_number = (p[1] << 8) | p[2]
    r.p = p
    r.bits = length * 8
    r.pos = 24
    r.overrun = 0
    if length > 3:
        # extended_descriptor_fields()
        template_present = _f(&r, 1)
        active_present = _f(&r, 1)
        custom_dtis = _f(&r, 1)
        custom_fdiffs = _f(&r, 1)
        custom_chains = _f(&r, 1)
        if template_present:
            k = _read_structure(&r, scratch)
            if k < 0:
                return k
            s = scratch
            out.structure_present = 1
        if active_present:
            if s.template_count == 0:
                return DD_ERR_NO_STRUCTURE
            out.active_decode_targets = _f(&r, s.dt_count)
            out.active_present = 1
    if s.template_count == 0:
        return DD_ERR_NO_STRUCTURE
    # frame_dependency_definition()
    idx = (out.template_id + 64 - s.template_id_offset) % 64
    if idx >= s.template_count:
        return DD_ERR_INVALID
    out.spatial_id = s.template_sid[idx]
    out.temporal_id = s.template_tid[idx]
    if custom_dtis:
        dtis = 0
        for dt in range(s.dt_count):
            dtis |= (<uint64_t>_f(&r, 2)) << (2 * dt)
        out.dtis = dtis
        out.switch_mask = _switch_mask(s, dtis)
    else:
        out.dtis = s.template_dtis[idx]
        out.switch_mask = s.template_switch[idx]
    if custom_fdiffs:
        size = _f(&r, 2)
        while size and not r.overrun:
            _f(&r, 4 * size)
            size = _f(&r, 2)
    if custom_chains:
        for k in range(s.chain_count):
            _f(&r, 8)
    if r.overrun:
        return DD_ERR_TRUNCATED
    return DD_OK


cdef int dd_apply(DdStream* st, int ext_id, const unsigned char* data, const RtpHeader* h,
                  PayloadInfo* info, bint update) noexcept nogil:
    """Take a packet's layers and frame bounds from its descriptor into `info`, and keep a new
    structure or active decode target mask in `st`. 1: mapped; 0: no descriptor, or none usable
    before a structure (info keeps what the OBU headers said); a DD_ERR_*: drop the packet.

    A key frame is the first packet of a spatial-layer-0 frame that starts a coded video sequence
    (the aggregation header's N bit) or brings a structure; frames sharing its timestamp are its
    upper spatial layers, the rest are predicted from earlier pictures (what K-SVC switches need).
    update 0 (a resend from history): `st` is read, never changed.
    """
    cdef DdStructure scratch
    cdef DdFrame f
    cdef int offset = 0, length, rc
    length = find_extension(data, h, ext_id, &offset) if ext_id > 0 else -1
    if length < 0:
        if update:
            st.unmapped += 1
        return 0
    scratch.template_count = 0
    rc = dd_parse(data + offset, length, &st.structure, &scratch, &f)
    if rc == DD_ERR_NO_STRUCTURE:
        if update:
            st.unmapped += 1
        return 0
    if rc < 0:
        if update:
            st.malformed += 1
        return rc
    info.spatial_id = f.spatial_id
    info.temporal_id = f.temporal_id
    info.begins_frame = f.start_of_frame
    info.ends_frame = f.end_of_frame
    info.switch_mask = f.switch_mask
    info.is_keyframe = f.start_of_frame and f.spatial_id == 0 and (info.is_keyframe > 0 or f.structure_present)
    if not update:
        info.inter_predicted = not (st.keyframe_seen and h.timestamp == st.keyframe_timestamp)
        return 1
    if f.structure_present:
        memcpy(&st.structure, &scratch, sizeof(DdStructure))
        st.structures += 1
    if f.active_present:
        st.structure.active_decode_targets = f.active_decode_targets
    st.mapped += 1
    if info.is_keyframe:
        st.keyframe_timestamp = h.timestamp
        st.keyframe_seen = 1
    info.inter_predicted = not (st.keyframe_seen and h.timestamp == st.keyframe_timestamp)
    return 1


# ---------------------------------------------------------------------------
# Python view, for tests and the control plane.

cdef class DependencyDescriptorReader:
    """One stream's descriptor state; read() parses a descriptor as the fast path does."""
    cdef DdStream st

    def __cinit__(self):
        memset(&self.st, 0, sizeof(DdStream))

    def read(self, const unsigned char[:] descriptor):
        """The frame a descriptor describes as a dict (the structure it carries kept), or a DD_ERR_*."""
        cdef DdStructure scratch
        cdef DdFrame f
        cdef int length = descriptor.shape[0]
        cdef int rc
        scratch.template_count = 0
        rc = dd_parse(&descriptor[0] if length > 0 else NULL, length, &self.st.structure, &scratch, &f)
        if rc < 0:
            return rc
        if f.structure_present:
            memcpy(&self.st.structure, &scratch, sizeof(DdStructure))
        if f.active_present:
            self.st.structure.active_decode_targets = f.active_decode_targets
        return {
            "start_of_frame": bool(f.start_of_frame), "end_of_frame": bool(f.end_of_frame),
            "template_id": f.template_id, "frame_number": f.frame_number,
            "spatial_id": f.spatial_id, "temporal_id": f.temporal_id,
            "dtis": [(f.dtis >> (2 * dt)) & 3 for dt in range(self.st.structure.dt_count)],
            "switch_mask": f.switch_mask, "structure_present": bool(f.structure_present),
        }

    def apply(self, const unsigned char[:] packet, int ext_id, int codec):
        """dd_apply() on a whole RTP packet after its payload descriptor: (result, PayloadInfo dict)."""
        from fastpath.codecs import parse as parse_payload_py
        cdef RtpHeader h
        cdef PayloadInfo info
        cdef int rc
        if parse_rtp(&packet[0] if packet.shape[0] else NULL, packet.shape[0], &h) < 0:
            raise ValueError("not an RTP packet")
        parsed = parse_payload_py(codec, packet[h.header_len:h.header_len + h.payload_len])
        if isinstance(parsed, int):
            return parsed, None
        info = parsed
        rc = dd_apply(&self.st, ext_id, &packet[0], &h, &info, 1)
        return rc, info

    @property
    def structure(self):
        """The structure kept: None before one, else its templates' and decode targets' layers."""
        cdef DdStructure* s = &self.st.structure
        if s.template_count == 0:
            return None
        return {
            "template_id_offset": s.template_id_offset,
            "templates": [(s.template_sid[t], s.template_tid[t]) for t in range(s.template_count)],
            "decode_targets": [(s.dt_sid[dt], s.dt_tid[dt]) for dt in range(s.dt_count)],
            "chains": s.chain_count,
            "active_decode_targets": s.active_decode_targets,
            "resolutions": [(s.render_width[k], s.render_height[k]) for k in range(s.max_spatial_id + 1)],
        }

    @property
    def counters(self):
        return {"mapped": self.st.mapped, "unmapped": self.st.unmapped,
                "malformed": self.st.malformed, "structures": self.st.structures}
