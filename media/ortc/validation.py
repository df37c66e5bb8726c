"""Validation and in-place normalisation of RtpCapabilities and RtpParameters (mediasoup v3 shapes).

Defaults are filled in as mediasoup does (channels 1 for audio, empty
parameters and feedback lists, parameter "" for feedback, sendrecv
direction, dtx false, reducedSize true). These objects come from clients, so
beyond mediasoup's type checks every number is range-checked, every string
and list is bounded, and keys outside the shapes are dropped: what passes is
safe to keep, to copy into every consumer and to send to a worker.
Errors name the offending field by its path, e.g. ``rtpParameters.codecs[0].payloadType``.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

# The wire shapes are plain dicts with camelCase keys, as JSON carries them.
RtpCapabilities = dict[str, Any]
RtpParameters = dict[str, Any]
RtpCodec = dict[str, Any]
# {"codecs": [{payloadType, mappedPayloadType}], "encodings": [{ssrc?, rid?, scalabilityMode?, mappedSsrc}]}
RtpMapping = dict[str, list[dict[str, Any]]]


class OrtcError(ValueError):
    """RTP capabilities or parameters that are malformed or inconsistent."""


class UnsupportedError(OrtcError):
    """Well-formed RTP capabilities or parameters that Switchyard cannot route."""


MAX_PAYLOAD_TYPE = 127  # 7-bit PT field (RFC 3550)
MAX_SSRC = 0xFFFFFFFF  # 32-bit SSRC field (RFC 3550)
MAX_EXTENSION_ID = 255  # two-byte header form (RFC 8285); one-byte ids stop at 14
MAX_CLOCK_RATE = 0xFFFFFFFF
MAX_CHANNELS = 255
MAX_CODECS = 128  # a browser's full native list is ~40 entries
MAX_HEADER_EXTENSIONS = 64
MAX_ENCODINGS = 8  # browsers simulcast at most 4 encodings
MAX_RTCP_FEEDBACK = 32
MAX_PARAMETERS = 32
# mid, rid, cname, msid: one SDES item or one extension element (RFC 3550, RFC 8285).
MAX_NAME_LENGTH = 255
MAX_TOKEN_LENGTH = 255  # mimeType, uri, feedback type, parameter names
MAX_VALUE_LENGTH = 1024  # fmtp values; H.264/H.265 sprop parameter sets are the long ones
MAX_SCALABILITY_MODE_LENGTH = 32

# A media type and an RFC 6838 subtype name; matched whole (fullmatch), trailing newline included.
_MIME_TYPE = re.compile(r"(audio|video)/[A-Za-z0-9!#$&^_.+-]+", re.IGNORECASE)
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_PRIORITIES = ("very-low", "low", "medium", "high")

_CODEC_CAPABILITY_KEYS = frozenset(
    {
        "kind",
        "mimeType",
        "preferredPayloadType",
        "clockRate",
        "channels",
        "parameters",
        "rtcpFeedback",
    }
)
_CODEC_PARAMETERS_KEYS = frozenset(
    {"mimeType", "payloadType", "clockRate", "channels", "parameters", "rtcpFeedback"}
)
_HEADER_EXTENSION_KEYS = frozenset({"kind", "uri", "preferredId", "preferredEncrypt", "direction"})
_HEADER_EXTENSION_PARAMETERS_KEYS = frozenset({"uri", "id", "encrypt", "parameters"})
_ENCODING_KEYS = frozenset(
    {
        "ssrc",
        "rid",
        "codecPayloadType",
        "rtx",
        "dtx",
        "scalabilityMode",
        "scaleResolutionDownBy",
        "maxBitrate",
        "maxFramerate",
        "adaptivePtime",
        "priority",
        "networkPriority",
        "active",
    }
)


def _fail(where: str, problem: str) -> NoReturn:
    """Raise an OrtcError naming the field."""
    raise OrtcError(f"{where} {problem}")


def _object(value: Any, where: str) -> dict[str, Any]:
    """Check that a value is a JSON object."""
    if not isinstance(value, dict):
        _fail(where, "must be an object")
    return value


def _keep(obj: dict[str, Any], keys: frozenset[str]) -> None:
    """Drop keys outside the shape, so that nothing unchecked travels further."""
    for key in [key for key in obj if key not in keys]:
        del obj[key]


def _list(
    obj: dict[str, Any], key: str, where: str, limit: int, required: bool = False
) -> list[Any]:
    """Check a bounded array field; a missing optional one becomes []."""
    value = obj.get(key)
    if value is None:
        if required:
            _fail(f"{where}.{key}", "is missing")
        value = obj[key] = []
    if not isinstance(value, list):
        _fail(f"{where}.{key}", "must be an array")
    if len(value) > limit:
        _fail(f"{where}.{key}", f"has more than {limit} entries")
    return value


def _integer(
    obj: dict[str, Any], key: str, where: str, low: int, high: int, required: bool = False
) -> None:
    """Check an integer field in low..high; a missing optional one is removed."""
    value = obj.get(key)
    if value is None:
        if required:
            _fail(f"{where}.{key}", "is missing")
        obj.pop(key, None)
        return
    # bool is an int in Python but never a number on the wire.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(f"{where}.{key}", f"must be an integer in {low}..{high}")


def _number(obj: dict[str, Any], key: str, where: str, low: float) -> None:
    """Check an optional finite number field >= low; a missing one is removed."""
    value = obj.get(key)
    if value is None:
        obj.pop(key, None)
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
    ):
        _fail(f"{where}.{key}", f"must be a number >= {low}")


def _string(obj: dict[str, Any], key: str, where: str, limit: int, required: bool = False) -> None:
    """Check a bounded string field; a missing or empty optional one is removed."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            _fail(f"{where}.{key}", "is missing")
        obj.pop(key, None)
        return
    if not isinstance(value, str):
        _fail(f"{where}.{key}", "must be a string")
    if len(value) > limit:
        _fail(f"{where}.{key}", f"is longer than {limit} characters")


def _boolean(obj: dict[str, Any], key: str, where: str, default: bool | None) -> None:
    """Check a boolean field; a missing one gets the default (or is removed if None)."""
    value = obj.get(key)
    if value is None:
        if default is None:
            obj.pop(key, None)
        else:
            obj[key] = default
        return
    if not isinstance(value, bool):
        _fail(f"{where}.{key}", "must be a boolean")


def _choice(
    obj: dict[str, Any], key: str, where: str, choices: tuple[str, ...], default: str | None
) -> None:
    """Check a field with a fixed set of string values; a missing one gets the default."""
    value = obj.get(key)
    if value is None:
        if default is None:
            obj.pop(key, None)
        else:
            obj[key] = default
        return
    if value not in choices:
        _fail(f"{where}.{key}", f"must be one of {', '.join(choices)}")


def _media_kind(codec: dict[str, Any], where: str) -> str:
    """Check mimeType ("audio/..." or "video/...") and return its media kind."""
    _string(codec, "mimeType", where, MAX_TOKEN_LENGTH, required=True)
    match = _MIME_TYPE.fullmatch(codec["mimeType"])
    if match is None:
        _fail(f"{where}.mimeType", "must be audio/<name> or video/<name>")
    return match.group(1).lower()


def _channels(codec: dict[str, Any], kind: str, where: str) -> None:
    """Audio codecs default to one channel; video codecs have none (as mediasoup)."""
    if kind != "audio":
        codec.pop("channels", None)
        return
    if codec.get("channels") is None:
        codec["channels"] = 1
    _integer(codec, "channels", where, 1, MAX_CHANNELS)


def _parameters(obj: dict[str, Any], where: str) -> None:
    """Check a codec (fmtp) or extension parameter map: names to strings or numbers."""
    where = f"{where}.parameters"
    params = obj.get("parameters")
    if params is None:
        params = obj["parameters"] = {}
    if not isinstance(params, dict):
        _fail(where, "must be an object")
    if len(params) > MAX_PARAMETERS:
        _fail(where, f"has more than {MAX_PARAMETERS} entries")
    for key in list(params):
        if not isinstance(key, str) or not 0 < len(key) <= MAX_TOKEN_LENGTH:
            _fail(where, f"has a name that is not a string of 1..{MAX_TOKEN_LENGTH} characters")
        value = params[key]
        if value is None:
            params[key] = ""
        elif isinstance(value, str):
            if len(value) > MAX_VALUE_LENGTH:
                _fail(f"{where}.{key}", f"is longer than {MAX_VALUE_LENGTH} characters")
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            _fail(f"{where}.{key}", "must be a string or a number")


def _rtcp_feedback(codec: dict[str, Any], where: str) -> None:
    """Check RTCP feedback entries (RFC 4585 rtcp-fb); a missing parameter becomes ""."""
    for index, fb in enumerate(_list(codec, "rtcpFeedback", where, MAX_RTCP_FEEDBACK)):
        fb_where = f"{where}.rtcpFeedback[{index}]"
        _keep(_object(fb, fb_where), frozenset({"type", "parameter"}))
        _string(fb, "type", fb_where, MAX_TOKEN_LENGTH, required=True)
        _string(fb, "parameter", fb_where, MAX_TOKEN_LENGTH)
        fb.setdefault("parameter", "")


def _apt(codec: dict[str, Any], where: str) -> None:
    """The RTX apt parameter (RFC 4588) must be a payload type number, as mediasoup requires."""
    params = codec["parameters"]
    if "apt" in params:
        _integer(params, "apt", f"{where}.parameters", 0, MAX_PAYLOAD_TYPE, required=True)


def validate_rtp_codec_capability(codec: Any, where: str = "codec") -> None:
    """Validate and normalise one RtpCodecCapability; kind is taken from mimeType, as mediasoup does."""
    _keep(_object(codec, where), _CODEC_CAPABILITY_KEYS)
    kind = _media_kind(codec, where)
    codec["kind"] = kind
    _integer(codec, "preferredPayloadType", where, 0, MAX_PAYLOAD_TYPE)
    _integer(codec, "clockRate", where, 1, MAX_CLOCK_RATE, required=True)
    _channels(codec, kind, where)
    _parameters(codec, where)
    _apt(codec, where)
    _rtcp_feedback(codec, where)


def validate_rtp_header_extension(ext: Any, where: str = "headerExtension") -> None:
    """Validate and normalise one RtpHeaderExtension (capability); an empty kind means any kind."""
    _keep(_object(ext, where), _HEADER_EXTENSION_KEYS)
    _choice(ext, "kind", where, ("audio", "video", ""), "")
    _string(ext, "uri", where, MAX_TOKEN_LENGTH, required=True)
    _integer(ext, "preferredId", where, 1, MAX_EXTENSION_ID, required=True)
    _boolean(ext, "preferredEncrypt", where, False)
    _choice(ext, "direction", where, _DIRECTIONS, "sendrecv")


def validate_rtp_capabilities(caps: Any, where: str = "rtpCapabilities") -> None:
    """Validate and normalise RtpCapabilities in place, as mediasoup does; raise OrtcError."""
    _keep(_object(caps, where), frozenset({"codecs", "headerExtensions"}))
    for index, codec in enumerate(_list(caps, "codecs", where, MAX_CODECS)):
        validate_rtp_codec_capability(codec, f"{where}.codecs[{index}]")
    for index, ext in enumerate(_list(caps, "headerExtensions", where, MAX_HEADER_EXTENSIONS)):
        validate_rtp_header_extension(ext, f"{where}.headerExtensions[{index}]")


def _codec_parameters(codec: Any, where: str) -> None:
    """Validate and normalise one RtpCodecParameters."""
    _keep(_object(codec, where), _CODEC_PARAMETERS_KEYS)
    kind = _media_kind(codec, where)
    _integer(codec, "payloadType", where, 0, MAX_PAYLOAD_TYPE, required=True)
    _integer(codec, "clockRate", where, 1, MAX_CLOCK_RATE, required=True)
    _channels(codec, kind, where)
    _parameters(codec, where)
    _apt(codec, where)
    _rtcp_feedback(codec, where)


def _header_extension_parameters(ext: Any, where: str) -> None:
    """Validate and normalise one RtpHeaderExtensionParameters (RFC 8285 extmap)."""
    _keep(_object(ext, where), _HEADER_EXTENSION_PARAMETERS_KEYS)
    _string(ext, "uri", where, MAX_TOKEN_LENGTH, required=True)
    _integer(ext, "id", where, 1, MAX_EXTENSION_ID, required=True)
    _boolean(ext, "encrypt", where, False)
    _parameters(ext, where)


def _encoding(encoding: Any, where: str) -> None:
    """Validate and normalise one RtpEncodingParameters."""
    _keep(_object(encoding, where), _ENCODING_KEYS)
    _integer(encoding, "ssrc", where, 0, MAX_SSRC)
    _string(encoding, "rid", where, MAX_NAME_LENGTH)
    _integer(encoding, "codecPayloadType", where, 0, MAX_PAYLOAD_TYPE)
    if encoding.get("rtx") is None:
        encoding.pop("rtx", None)
    else:
        _keep(_object(encoding["rtx"], f"{where}.rtx"), frozenset({"ssrc"}))
        _integer(encoding["rtx"], "ssrc", f"{where}.rtx", 0, MAX_SSRC, required=True)
    _boolean(encoding, "dtx", where, False)
    _string(encoding, "scalabilityMode", where, MAX_SCALABILITY_MODE_LENGTH)
    _number(encoding, "scaleResolutionDownBy", where, 1)
    _number(encoding, "maxBitrate", where, 0)
    _number(encoding, "maxFramerate", where, 0)
    _boolean(encoding, "adaptivePtime", where, None)
    _boolean(encoding, "active", where, None)
    _choice(encoding, "priority", where, _PRIORITIES, None)
    _choice(encoding, "networkPriority", where, _PRIORITIES, None)


def _rtcp(params: dict[str, Any], where: str) -> None:
    """Validate and normalise RtcpParameters; reduced-size RTCP (RFC 5506) by default."""
    if params.get("rtcp") is None:
        params["rtcp"] = {}
    where = f"{where}.rtcp"
    rtcp = _object(params["rtcp"], where)
    _keep(rtcp, frozenset({"cname", "reducedSize", "mux"}))
    _string(rtcp, "cname", where, MAX_NAME_LENGTH)
    _boolean(rtcp, "reducedSize", where, True)
    _boolean(rtcp, "mux", where, None)


def _unique(values: list[tuple[int, Any]], where: str, field: str) -> None:
    """Reject a value used by two entries of one list (payload types, extension ids)."""
    seen: set[Any] = set()
    for index, value in values:
        if value in seen:
            _fail(f"{where}[{index}].{field}", f"{value} is used twice")
        seen.add(value)


def validate_rtp_parameters(params: Any, where: str = "rtpParameters") -> None:
    """Validate and normalise RtpParameters in place, as mediasoup does; raise OrtcError."""
    _keep(
        _object(params, where),
        frozenset({"mid", "msid", "codecs", "headerExtensions", "encodings", "rtcp"}),
    )
    _string(params, "mid", where, MAX_NAME_LENGTH)
    _string(params, "msid", where, MAX_NAME_LENGTH)
    codecs = _list(params, "codecs", where, MAX_CODECS, required=True)
    for index, codec in enumerate(codecs):
        _codec_parameters(codec, f"{where}.codecs[{index}]")
    _unique([(i, c["payloadType"]) for i, c in enumerate(codecs)], f"{where}.codecs", "payloadType")
    extensions = _list(params, "headerExtensions", where, MAX_HEADER_EXTENSIONS)
    for index, ext in enumerate(extensions):
        _header_extension_parameters(ext, f"{where}.headerExtensions[{index}]")
    _unique([(i, e["id"]) for i, e in enumerate(extensions)], f"{where}.headerExtensions", "id")
    for index, encoding in enumerate(_list(params, "encodings", where, MAX_ENCODINGS)):
        _encoding(encoding, f"{where}.encodings[{index}]")
    _rtcp(params, where)
