"""The consumer side of RTP negotiation, as mediasoup v3's ortc does it.

A producer's parameters, mapped into router terms, become its "consumable"
parameters; each consumer's parameters are cut from those: one encoding with
fresh SSRCs (all encodings for a pipe), and only the codecs, RTCP feedback
and header extensions the receiving endpoint's RtpCapabilities accept.
"""

from __future__ import annotations

import copy
from typing import Any

from .capabilities import ABS_SEND_TIME_URI, TRANSPORT_WIDE_CC_URI
from .codecs import is_red_codec, is_rtx_codec, match_codecs
from .streams import generate_ssrc, parse_scalability_mode
from .validation import (
    OrtcError,
    RtpCapabilities,
    RtpCodec,
    RtpMapping,
    RtpParameters,
    UnsupportedError,
    validate_rtp_capabilities,
)


def _red_parameters(parameters: dict[str, Any], mapped_payload_type: dict[int, int]) -> dict[str, Any]:
    """RED's fmtp (RFC 2198 §5: "111/111", the payload types of its blocks) in router terms.

    SDP parsers give the bare list as a parameter name ({"111/111": ""}, mediasoup-client); its
    numbers are the producer's payload types and become the router's, which consumers use. A
    list naming a payload type the producer did not map is left out.
    """
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        numbers = name.split("/")
        if not all(n.isdigit() for n in numbers):
            out[name] = value
        elif all(int(n) in mapped_payload_type for n in numbers):
            out["/".join(str(mapped_payload_type[int(n)]) for n in numbers)] = value
    return out


def get_consumable_rtp_parameters(
    kind: str, params: RtpParameters, caps: RtpCapabilities, mapping: RtpMapping
) -> RtpParameters:
    """The producer's parameters in router terms, which every consumer is cut from, as mediasoup does."""
    mapped_payload_type = {
        entry["payloadType"]: entry["mappedPayloadType"] for entry in mapping["codecs"]
    }
    codecs: list[RtpCodec] = []
    for index, codec in enumerate(params["codecs"]):
        if is_rtx_codec(codec):
            continue
        if not codec["mimeType"].lower().startswith(f"{kind}/"):
            raise OrtcError(f"rtpParameters.codecs[{index}].mimeType must be {kind}/<name>")
        cap_codec = next(
            c
            for c in caps["codecs"]
            if c["preferredPayloadType"] == mapped_payload_type[codec["payloadType"]]
        )
        consumable_codec: RtpCodec = {
            "mimeType": cap_codec["mimeType"],
            "payloadType": cap_codec["preferredPayloadType"],
            "clockRate": cap_codec["clockRate"],
        }
        if "channels" in cap_codec:
            consumable_codec["channels"] = cap_codec["channels"]
        # The producer's own fmtp parameters describe the stream that is forwarded.
        consumable_codec["parameters"] = copy.deepcopy(codec["parameters"])
        if is_red_codec(codec):
            consumable_codec["parameters"] = _red_parameters(codec["parameters"], mapped_payload_type)
        consumable_codec["rtcpFeedback"] = copy.deepcopy(cap_codec["rtcpFeedback"])
        codecs.append(consumable_codec)
        cap_rtx_codec = next(
            (
                c
                for c in caps["codecs"]
                if is_rtx_codec(c) and c["parameters"].get("apt") == consumable_codec["payloadType"]
            ),
            None,
        )
        if cap_rtx_codec is not None:
            codecs.append(
                {
                    "mimeType": cap_rtx_codec["mimeType"],
                    "payloadType": cap_rtx_codec["preferredPayloadType"],
                    "clockRate": cap_rtx_codec["clockRate"],
                    "parameters": copy.deepcopy(cap_rtx_codec["parameters"]),
                    "rtcpFeedback": copy.deepcopy(cap_rtx_codec["rtcpFeedback"]),
                }
            )

    header_extensions = [
        {
            "uri": ext["uri"],
            "id": ext["preferredId"],
            "encrypt": ext["preferredEncrypt"],
            "parameters": {},
        }
        for ext in caps["headerExtensions"]
        if ext["kind"] == kind and ext["direction"] in ("sendrecv", "sendonly")
    ]
    encodings: list[dict[str, Any]] = []
    for encoding, mapped in zip(params["encodings"], mapping["encodings"], strict=True):
        consumable_encoding = {
            key: copy.deepcopy(value)
            for key, value in encoding.items()
            if key not in ("rid", "rtx", "codecPayloadType")
        }
        consumable_encoding["ssrc"] = mapped["mappedSsrc"]
        encodings.append(consumable_encoding)
    rtcp: dict[str, Any] = {"reducedSize": True}
    if "cname" in params["rtcp"]:
        rtcp = {"cname": params["rtcp"]["cname"], **rtcp}
    return {
        "codecs": codecs,
        "headerExtensions": header_extensions,
        "encodings": encodings,
        "rtcp": rtcp,
    }


def can_consume(consumable_params: RtpParameters, caps: RtpCapabilities) -> bool:
    """Whether an endpoint with these RtpCapabilities can receive the producer; caps are validated first."""
    validate_rtp_capabilities(caps)
    matching = [
        codec
        for codec in consumable_params["codecs"]
        if not is_red_codec(codec)
        and any(match_codecs(cap, codec, strict=True) for cap in caps["codecs"])
    ]
    # RED alone is not enough: it wraps a codec the endpoint must decode (Opus)
    return bool(matching) and not is_rtx_codec(matching[0])


def _reduce_congestion_feedback(
    codecs: list[RtpCodec], header_extensions: list[dict[str, Any]]
) -> None:
    """Keep one bandwidth feedback: transport-cc if its extension is on, else REMB with abs-send-time."""
    uris = {ext["uri"] for ext in header_extensions}
    if TRANSPORT_WIDE_CC_URI in uris:
        dropped = {"goog-remb"}
    elif ABS_SEND_TIME_URI in uris:
        dropped = {"transport-cc"}
    else:
        dropped = {"transport-cc", "goog-remb"}
    for codec in codecs:
        codec["rtcpFeedback"] = [fb for fb in codec["rtcpFeedback"] if fb["type"] not in dropped]


def _consumer_encodings(
    consumable_params: RtpParameters, rtx: bool, pipe: bool
) -> list[dict[str, Any]]:
    """One encoding with fresh SSRCs (all of them, renumbered, for a pipe), as mediasoup does."""
    consumable_encodings = consumable_params["encodings"]
    if pipe:
        encodings = copy.deepcopy(consumable_encodings)
        ssrc = generate_ssrc(len(encodings))
        rtx_ssrc = generate_ssrc(len(encodings))
        for offset, encoding in enumerate(encodings):
            encoding["ssrc"] = ssrc + offset
            encoding.pop("rtx", None)
            if rtx:
                encoding["rtx"] = {"ssrc": rtx_ssrc + offset}
        return encodings

    ssrc = generate_ssrc(2)
    encoding: dict[str, Any] = {"ssrc": ssrc}
    if rtx:
        encoding["rtx"] = {"ssrc": ssrc + 1}
    mode = next(
        (e["scalabilityMode"] for e in consumable_encodings if e.get("scalabilityMode")), None
    )
    # Simulcast streams reach the consumer as one stream whose spatial layers are the encodings.
    if len(consumable_encodings) > 1:
        mode = f"L{len(consumable_encodings)}T{parse_scalability_mode(mode)['temporalLayers']}"
    if mode:
        encoding["scalabilityMode"] = mode
    max_bitrate = max((e.get("maxBitrate") or 0 for e in consumable_encodings), default=0)
    if max_bitrate:
        encoding["maxBitrate"] = max_bitrate
    return [encoding]


def get_consumer_rtp_parameters(
    consumable_params: RtpParameters,
    remote_caps: RtpCapabilities,
    pipe: bool = False,
    enable_rtx: bool = True,
) -> RtpParameters:
    """A consumer's RtpParameters: codecs, feedback and extensions the remote accepts, as mediasoup does."""
    validate_rtp_capabilities(remote_caps)
    codecs: list[RtpCodec] = []
    for codec in copy.deepcopy(consumable_params["codecs"]):
        if not enable_rtx and is_rtx_codec(codec):
            continue
        cap_codec = next(
            (c for c in remote_caps["codecs"] if match_codecs(c, codec, strict=True)), None
        )
        if cap_codec is None:
            continue
        # Feedback both sides handle; plain NACK only with retransmissions on.
        ours = {(fb["type"], fb["parameter"]) for fb in codec["rtcpFeedback"]}
        codec["rtcpFeedback"] = [
            fb
            for fb in copy.deepcopy(cap_codec["rtcpFeedback"])
            if (fb["type"], fb["parameter"]) in ours
            and (enable_rtx or fb["type"] != "nack" or fb["parameter"])
        ]
        codecs.append(codec)
    # RED (RFC 2198) only beside a codec its blocks can carry; without RED a consumer of a RED
    # producer gets that codec, and the fast path cuts each RED packet to its primary block.
    if all(is_red_codec(c) or is_rtx_codec(c) for c in codecs):
        codecs = [c for c in codecs if not is_red_codec(c)]
    media_payload_types = {c["payloadType"] for c in codecs if not is_rtx_codec(c)}
    codecs = [
        c
        for c in codecs
        if not is_rtx_codec(c) or c["parameters"].get("apt") in media_payload_types
    ]
    if not codecs or is_rtx_codec(codecs[0]):
        raise UnsupportedError("no compatible media codecs")
    rtx = any(is_rtx_codec(c) for c in codecs)

    remote_extensions = {
        (ext["uri"], ext["preferredId"]) for ext in remote_caps["headerExtensions"]
    }
    header_extensions = [
        copy.deepcopy(ext)
        for ext in consumable_params["headerExtensions"]
        if (ext["uri"], ext["id"]) in remote_extensions
    ]
    _reduce_congestion_feedback(codecs, header_extensions)
    return {
        "codecs": codecs,
        "headerExtensions": header_extensions,
        "encodings": _consumer_encodings(consumable_params, rtx, pipe),
        "rtcp": copy.deepcopy(consumable_params["rtcp"]),
    }
