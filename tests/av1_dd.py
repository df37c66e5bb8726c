"""Building AV1 dependency descriptors (AV1 RTP specification, appendix A) for tests: the writer
mirrors the spec's syntax, field by field, independently of the fast path's reader."""

from __future__ import annotations

from dataclasses import dataclass, field

DD_URI = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
DTI = {"-": 0, "D": 1, "S": 2, "R": 3}


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def f(self, n: int, value: int) -> None:
        assert 0 <= value < (1 << n) or n == 0 and value == 0
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ns(self, n: int, value: int) -> None:
        """ns(n) of A.8.1, inverted."""
        w = n.bit_length()
        m = (1 << w) - n
        if value < m:
            self.f(w - 1, value)
        else:
            self.f(w - 1, (value + m) >> 1)
            self.f(1, (value + m) & 1)

    def bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


@dataclass
class Template:
    sid: int
    tid: int
    dtis: str
    fdiffs: list[int] = field(default_factory=list)
    chains: list[int] = field(default_factory=list)


@dataclass
class Structure:
    templates: list[Template]
    offset: int = 0
    chains: int = 0
    protected_by: list[int] = field(default_factory=list)
    resolutions: list[tuple[int, int]] | None = None

    @property
    def dt_count(self) -> int:
        return len(self.templates[0].dtis)

    def write(self, w: BitWriter) -> None:
        """template_dependency_structure() (A.8.3)."""
        w.f(6, self.offset)
        w.f(5, self.dt_count - 1)
        for a, b in zip(self.templates, [*self.templates[1:], None], strict=True):
            if b is None:
                w.f(2, 3)
            elif (b.sid, b.tid) == (a.sid, a.tid):
                w.f(2, 0)
            elif (b.sid, b.tid) == (a.sid, a.tid + 1):
                w.f(2, 1)
            else:
                assert (b.sid, b.tid) == (a.sid + 1, 0)
                w.f(2, 2)
        for t in self.templates:
            for c in t.dtis:
                w.f(2, DTI[c])
        for t in self.templates:
            for d in t.fdiffs:
                w.f(1, 1)
                w.f(4, d - 1)
            w.f(1, 0)
        w.ns(self.dt_count + 1, self.chains)
        if self.chains:
            for p in self.protected_by:
                w.ns(self.chains, p)
            for t in self.templates:
                for c in t.chains:
                    w.f(4, c)
        w.f(1, self.resolutions is not None)
        for width, height in self.resolutions or []:
            w.f(16, width - 1)
            w.f(16, height - 1)


def descriptor(start: bool, end: bool, template_id: int, frame_number: int,
               structure: Structure | None = None, active: int | None = None,
               custom_dtis: str | None = None, custom_fdiffs: list[int] | None = None,
               custom_chains: list[int] | None = None, dt_count: int = 0) -> bytes:
    """dependency_descriptor() (A.8.1): three bytes, or more with any extended field; dt_count:
    the decode targets of the structure the reader keeps (for an active mask without one)."""
    w = BitWriter()
    w.f(1, start)
    w.f(1, end)
    w.f(6, template_id)
    w.f(16, frame_number)
    if structure or active is not None or custom_dtis or custom_fdiffs is not None or custom_chains:
        w.f(1, structure is not None)
        w.f(1, active is not None)
        w.f(1, custom_dtis is not None)
        w.f(1, custom_fdiffs is not None)
        w.f(1, custom_chains is not None)
        if structure:
            structure.write(w)
        if active is not None:
            w.f(structure.dt_count if structure else dt_count, active)
        if custom_dtis is not None:
            for c in custom_dtis:
                w.f(2, DTI[c])
        if custom_fdiffs is not None:
            for d in custom_fdiffs:
                size = max(1, ((d - 1).bit_length() + 3) // 4)
                w.f(2, size)
                w.f(4 * size, d - 1)
            w.f(2, 0)
        if custom_chains is not None:
            for c in custom_chains:
                w.f(8, c)
    return w.bytes()


# Chromium's structures (libwebrtc modules/video_coding/svc): L1T3, and L3T3_KEY
L1T3 = Structure(
    templates=[
        Template(0, 0, "SSS", [], [0]),
        Template(0, 0, "SSS", [4], [4]),
        Template(0, 1, "-DS", [2], [2]),
        Template(0, 2, "--D", [1], [1]),
        Template(0, 2, "--D", [1], [3]),
    ],
    chains=1, protected_by=[0, 0, 0],
)


def l3t3_key() -> Structure:
    """L3T3_KEY's shape: per spatial layer a T0, T1 and T2 template (decode targets S0T0..S2T2);
    the key picture's upper layers refer to the layer below, later frames to their own layer."""
    per_layer = ("SSS", "-DS", "--D")   # as L1T3, within each spatial layer's three targets
    templates = [Template(s, t, "".join(per_layer[t] if ds == s else "---" for ds in range(3)),
                          [4] if t == 0 else [2 if t == 1 else 1], [4 if ds == s else 0 for ds in range(3)])
                 for s in range(3) for t in range(3)]
    # the key picture's templates: S0 refers to nothing, S1 and S2 to the layer below
    key = [Template(s, 0, "".join("S" if ds >= s else "-" for ds in range(3) for _ in range(3)),
                    [1] if s else [], [0, 0, 0]) for s in range(3)]
    ordered = [key[0], *templates[0:3], key[1], *templates[3:6], key[2], *templates[6:9]]
    return Structure(templates=ordered, chains=3, protected_by=[0, 0, 0, 1, 1, 1, 2, 2, 2],
                     resolutions=[(160, 120), (320, 240), (640, 480)])
