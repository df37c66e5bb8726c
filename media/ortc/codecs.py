"""Codec matching rules of mediasoup v3's ortc: when two RTP codec descriptions name the same format.

Loose matching (mimeType, clock rate, channels) picks a router codec family;
strict matching also compares what changes the bitstream: H.264
packetization-mode and profile (RFC 6184), VP9 profile-id.
"""

from __future__ import annotations

from typing import Any

import h264_profile_level_id as h264

from .validation import RtpCodec


def is_rtx_codec(codec: RtpCodec) -> bool:
    """Whether a codec is an RTX retransmission format (RFC 4588)."""
    return codec["mimeType"].lower().endswith("/rtx")


def is_red_codec(codec: RtpCodec) -> bool:
    """Whether a codec is RED, redundant audio (RFC 2198), a wrapper around another codec."""
    return codec["mimeType"].lower() == "audio/red"


def _numeric_parameter(codec: RtpCodec, name: str, default: Any = 0) -> Any:
    """A codec parameter compared as a number; SDP parsers disagree on "1" versus 1."""
    value = codec.get("parameters", {}).get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _h264_parameters(codec: RtpCodec) -> dict[str, Any]:
    """H.264 parameters for h264_profile_level_id, with profile-level-id as the hex string it expects."""
    params = dict(codec.get("parameters", {}))
    if "profile-level-id" in params:
        params["profile-level-id"] = str(params["profile-level-id"])
    return params


def _match_h264(a: RtpCodec, b: RtpCodec, modify: bool) -> bool:
    """Same packetization-mode and profile, and a level both sides accept (RFC 6184 section 8.2.2)."""
    if _numeric_parameter(a, "packetization-mode") != _numeric_parameter(b, "packetization-mode"):
        return False
    a_params, b_params = _h264_parameters(a), _h264_parameters(b)
    if not h264.isSameProfile(a_params, b_params):
        return False
    try:
        answer = h264.generateProfileLevelIdForAnswer(a_params, b_params)
    except (TypeError, ValueError):
        return False
    if modify:
        if answer:
            a["parameters"]["profile-level-id"] = answer
        else:
            a["parameters"].pop("profile-level-id", None)
    return True


def match_codecs(a: RtpCodec, b: RtpCodec, *, strict: bool = False, modify: bool = False) -> bool:
    """Whether two codecs are the same format, as mediasoup decides; strict also compares profiles."""
    mime_type = a["mimeType"].lower()
    if (
        mime_type != b["mimeType"].lower()
        or a.get("clockRate") != b.get("clockRate")
        or a.get("channels") != b.get("channels")
    ):
        return False
    if mime_type == "audio/multiopus":
        return all(
            _numeric_parameter(a, name, None) == _numeric_parameter(b, name, None)
            for name in ("num_streams", "coupled_streams")
        )
    if not strict:
        return True
    if mime_type in ("video/h264", "video/h264-svc"):
        return _match_h264(a, b, modify)
    if mime_type == "video/vp9":
        return _numeric_parameter(a, "profile-id") == _numeric_parameter(b, "profile-id")
    return True
