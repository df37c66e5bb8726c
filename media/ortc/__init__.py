"""RTP negotiation between producers, a router and consumers, with mediasoup v3's rules and shapes.

A router offers RtpCapabilities built from its media codecs. A producer's
RtpParameters are mapped onto the router's payload types and fresh SSRCs
(the RtpMapping the fast path rewrites with); the result, the "consumable"
parameters, is what every consumer of that producer is cut from, reduced to
what the receiving endpoint's RtpCapabilities accept. All objects are plain
dicts with the camelCase keys of the wire.

This module holds the router and producer side and is the one to import:
it re-exports validation (ortc_validation), codec matching (ortc_codecs),
SSRCs and scalability modes (ortc_streams) and the consumer side (ortc_consumer).
"""

from __future__ import annotations

import copy
from typing import Any

from .capabilities import DEFAULT_MEDIA_CODECS, SUPPORTED_RTP_CAPABILITIES
from .codecs import is_red_codec, is_rtx_codec, match_codecs
from .consumer import (
    can_consume,
    get_consumable_rtp_parameters,
    get_consumer_rtp_parameters,
)
from .streams import generate_ssrc, get_producer_type, parse_scalability_mode
from .validation import (
    OrtcError,
    RtpCapabilities,
    RtpCodec,
    RtpMapping,
    RtpParameters,
    UnsupportedError,
    validate_rtp_capabilities,
    validate_rtp_codec_capability,
    validate_rtp_parameters,
)

__all__ = [
    "OrtcError",
    "RtpCapabilities",
    "RtpCodec",
    "RtpMapping",
    "RtpParameters",
    "UnsupportedError",
    "can_consume",
    "default_media_codecs",
    "generate_router_rtp_capabilities",
    "generate_ssrc",
    "get_consumable_rtp_parameters",
    "get_consumer_rtp_parameters",
    "get_producer_rtp_parameters_mapping",
    "get_producer_type",
    "is_red_codec",
    "is_rtx_codec",
    "match_codecs",
    "parse_scalability_mode",
    "validate_rtp_capabilities",
    "validate_rtp_parameters",
]

# RFC 3551's dynamic range, in mediasoup's order: 100..127 first, 96..99 last.
DYNAMIC_PAYLOAD_TYPES = (*range(100, 128), *range(96, 100))


def default_media_codecs() -> list[RtpCodec]:
    """The router media codecs Switchyard uses unless configured otherwise (a fresh copy)."""
    return copy.deepcopy(DEFAULT_MEDIA_CODECS)


def _take_payload_type(free: list[int]) -> int:
    """Take the next free dynamic payload type."""
    if not free:
        raise OrtcError("cannot allocate more dynamic codec payload types")
    return free.pop(0)


def generate_router_rtp_capabilities(media_codecs: list[RtpCodec] | None = None) -> RtpCapabilities:
    """A router's RtpCapabilities from its media codecs, with an RTX codec per video codec, as mediasoup does."""
    if media_codecs is None:
        media_codecs = DEFAULT_MEDIA_CODECS
    if not isinstance(media_codecs, list):
        raise OrtcError("mediaCodecs must be an array")
    media_codecs = copy.deepcopy(media_codecs)
    supported = copy.deepcopy(SUPPORTED_RTP_CAPABILITIES)
    validate_rtp_capabilities(supported, "supportedRtpCapabilities")
    for index, media_codec in enumerate(media_codecs):
        validate_rtp_codec_capability(media_codec, f"mediaCodecs[{index}]")

    # Payload types the caller chose are reserved before any dynamic pick, so
    # that a codec listed early never takes the number a later one asked for.
    chosen = {c["preferredPayloadType"] for c in media_codecs if "preferredPayloadType" in c}
    free = [pt for pt in DYNAMIC_PAYLOAD_TYPES if pt not in chosen]
    codecs: list[RtpCodec] = []
    for index, media_codec in enumerate(media_codecs):
        supported_codec = next(
            (c for c in supported["codecs"] if match_codecs(media_codec, c)), None
        )
        if supported_codec is None:
            raise UnsupportedError(
                f"mediaCodecs[{index}]: media codec not supported [mimeType:{media_codec['mimeType']}]"
            )
        codec = copy.deepcopy(supported_codec)
        if "preferredPayloadType" in media_codec:
            codec["preferredPayloadType"] = media_codec["preferredPayloadType"]
        else:
            codec["preferredPayloadType"] = _take_payload_type(free)
        if any(c["preferredPayloadType"] == codec["preferredPayloadType"] for c in codecs):
            raise OrtcError(
                f"mediaCodecs[{index}].preferredPayloadType {codec['preferredPayloadType']} is used twice"
            )
        codec["parameters"] = {**codec["parameters"], **media_codec["parameters"]}
        codecs.append(codec)
        if codec["kind"] == "video":
            codecs.append(
                {
                    "kind": "video",
                    "mimeType": "video/rtx",
                    "preferredPayloadType": _take_payload_type(free),
                    "clockRate": codec["clockRate"],
                    "parameters": {"apt": codec["preferredPayloadType"]},
                    "rtcpFeedback": [],
                }
            )
    return {"codecs": codecs, "headerExtensions": supported["headerExtensions"]}


def _check_producer_encodings(params: RtpParameters) -> None:
    """Encodings the fast path can tell apart: at least one, simulcast ones by ssrc or rid, no duplicates."""
    encodings = params["encodings"]
    if not encodings:
        raise OrtcError("rtpParameters.encodings is empty")
    media_payload_types = {c["payloadType"] for c in params["codecs"] if not is_rtx_codec(c)}
    rids: set[str] = set()
    ssrcs: set[int] = set()
    for index, encoding in enumerate(encodings):
        where = f"rtpParameters.encodings[{index}]"
        if len(encodings) > 1 and "ssrc" not in encoding and "rid" not in encoding:
            raise OrtcError(f"{where} needs an ssrc or a rid when there are several encodings")
        if "rid" in encoding:
            if encoding["rid"] in rids:
                raise OrtcError(f"{where}.rid {encoding['rid']!r} is used twice")
            rids.add(encoding["rid"])
        for ssrc in (encoding.get("ssrc"), encoding.get("rtx", {}).get("ssrc")):
            if ssrc is not None:
                if ssrc in ssrcs:
                    raise OrtcError(f"{where}: ssrc {ssrc} is used twice")
                ssrcs.add(ssrc)
        payload_type = encoding.get("codecPayloadType")
        if payload_type is not None and payload_type not in media_payload_types:
            raise OrtcError(
                f"{where}.codecPayloadType {payload_type} is not a media codec's payload type"
            )


def get_producer_rtp_parameters_mapping(params: RtpParameters, caps: RtpCapabilities) -> RtpMapping:
    """Map a producer's payload types onto the router's and its encodings onto fresh SSRCs, as mediasoup does."""
    validate_rtp_parameters(params)
    _check_producer_encodings(params)
    pairs: list[tuple[RtpCodec, RtpCodec]] = []
    router_codec_of: dict[int, RtpCodec] = {}
    for codec in params["codecs"]:
        if is_rtx_codec(codec):
            continue
        # modify: the producer's H.264 profile-level-id becomes the negotiated one.
        cap_codec = next(
            (c for c in caps["codecs"] if match_codecs(codec, c, strict=True, modify=True)), None
        )
        if cap_codec is None:
            raise UnsupportedError(
                f"unsupported codec [mimeType:{codec['mimeType']}, payloadType:{codec['payloadType']}]"
            )
        pairs.append((codec, cap_codec))
        router_codec_of[codec["payloadType"]] = cap_codec
    if not pairs:
        raise OrtcError("rtpParameters.codecs has no media codec")
    for codec in params["codecs"]:
        if not is_rtx_codec(codec):
            continue
        cap_media_codec = router_codec_of.get(codec["parameters"].get("apt"))
        if cap_media_codec is None:
            raise OrtcError(
                f"rtpParameters.codecs: no media codec for RTX payload type {codec['payloadType']}"
            )
        cap_rtx_codec = next(
            (
                c
                for c in caps["codecs"]
                if is_rtx_codec(c)
                and c["parameters"].get("apt") == cap_media_codec["preferredPayloadType"]
            ),
            None,
        )
        if cap_rtx_codec is None:
            raise UnsupportedError(
                f"no RTX codec for router codec {cap_media_codec['preferredPayloadType']}"
            )
        pairs.append((codec, cap_rtx_codec))

    encodings = params["encodings"]
    mapped_ssrc = generate_ssrc(len(encodings))
    mapped_encodings: list[dict[str, Any]] = []
    for offset, encoding in enumerate(encodings):
        entry = {
            key: encoding[key] for key in ("rid", "ssrc", "scalabilityMode") if key in encoding
        }
        entry["mappedSsrc"] = mapped_ssrc + offset
        mapped_encodings.append(entry)
    return {
        "codecs": [
            {"payloadType": codec["payloadType"], "mappedPayloadType": cap["preferredPayloadType"]}
            for codec, cap in pairs
        ],
        "encodings": mapped_encodings,
    }
