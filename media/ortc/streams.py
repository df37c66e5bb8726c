"""RTP stream identity and layering: SSRC choice (RFC 3550) and scalability modes (W3C webrtc-svc)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .validation import MAX_SSRC

_SCALABILITY_MODE = re.compile(r"^[LS]([1-9]\d?)T([1-9]\d?)(_KEY)?")


def generate_ssrc(count: int = 1) -> int:
    """A random SSRC (RFC 3550 section 8.1), never 0; the next count-1 values are valid SSRCs too."""
    return secrets.randbelow(MAX_SSRC - count + 1) + 1


def parse_scalability_mode(mode: str | None) -> dict[str, Any]:
    """Spatial and temporal layer counts of a W3C webrtc-svc mode such as "L3T3_KEY"; L1T1 if unknown."""
    match = _SCALABILITY_MODE.match(mode or "")
    if match is None:
        return {"spatialLayers": 1, "temporalLayers": 1, "ksvc": False}
    return {
        "spatialLayers": int(match.group(1)),
        "temporalLayers": int(match.group(2)),
        "ksvc": match.group(3) is not None,
    }


# codecs whose one stream can carry several spatial layers (mediasoup's IsValidTypeForCodec(SVC))
SVC_MIME_TYPES = frozenset({"video/vp9", "video/av1"})


def get_producer_type(params: dict[str, Any]) -> str:
    """The producer (and consumer) type mediasoup reports: simulcast, svc or simple.

    As mediasoup's RtpParameters::GetType: several encodings are simulcast; one encoding with
    more than one spatial or temporal layer is svc for a codec that carries spatial layers in one
    stream (VP9, AV1), else simulcast of one stream (VP8 or H264 "L1T3": its temporal layers are
    chosen as a simulcast consumer's); anything else is simple.
    """
    encodings = params["encodings"]
    if len(encodings) > 1:
        return "simulcast"
    mode = parse_scalability_mode(encodings[0].get("scalabilityMode") if encodings else None)
    if mode["spatialLayers"] == 1 and mode["temporalLayers"] == 1:
        return "simple"
    codecs = [c for c in params.get("codecs", []) if not c["mimeType"].lower().endswith("/rtx")]
    if codecs:
        svc = codecs[0]["mimeType"].lower() in SVC_MIME_TYPES
    else:
        svc = mode["spatialLayers"] > 1  # no codec named: several spatial layers need SVC
    return "svc" if svc else "simulcast"
