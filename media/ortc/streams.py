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


def get_producer_type(params: dict[str, Any]) -> str:
    """The producer (and consumer) type mediasoup reports: simulcast, svc or simple."""
    encodings = params["encodings"]
    if len(encodings) > 1:
        return "simulcast"
    # One encoding carrying several spatial layers is SVC (VP9, AV1 "L3T3" and the like).
    mode = encodings[0].get("scalabilityMode") if encodings else None
    if parse_scalability_mode(mode)["spatialLayers"] > 1:
        return "svc"
    return "simple"
