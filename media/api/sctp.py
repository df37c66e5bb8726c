"""mediasoup's SCTP parameter rules (its ortc.validateSctp*), checked before anything reaches the worker."""

from __future__ import annotations

from typing import Any

from media.api.errors import InvalidInputError

# RFC 8831 section 6.6: stream 65535 is reserved.
MAX_STREAM_ID = 65534
# what any label or protocol string may be (RFC 8832 section 5.1 gives each 16 bits of length)
MAX_LABEL_LENGTH = 1024
# mediasoup's defaults for createWebRtcTransport({enableSctp: true})
NUM_SCTP_STREAMS = 1024
MAX_SCTP_MESSAGE_SIZE = 262144


def _optional_count(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    # bool is an int in Python but never a count on the wire.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise InvalidInputError(f"sctpStreamParameters.{name} must be an integer from 0 to 4294967295")
    return value


def validate_sctp_stream_parameters(params: Any, num_streams: int) -> dict[str, Any]:
    """A clean SctpStreamParameters {streamId, ordered, maxPacketLifeTime?, maxRetransmits?} (mediasoup's rules).

    At most one of maxPacketLifeTime and maxRetransmits (RFC 8831 section 6.1); either makes the
    stream unordered unless `ordered` says otherwise, and an explicit `ordered: true` with a non-zero
    one is refused, as mediasoup refuses it.
    """
    if not isinstance(params, dict):
        raise InvalidInputError("sctpStreamParameters must be an object")
    stream_id = params.get("streamId")
    if isinstance(stream_id, bool) or not isinstance(stream_id, int) or not 0 <= stream_id < num_streams:
        raise InvalidInputError(f"sctpStreamParameters.streamId must be an integer from 0 to {num_streams - 1}")
    ordered = params.get("ordered")
    if ordered is not None and not isinstance(ordered, bool):
        raise InvalidInputError("sctpStreamParameters.ordered must be a boolean")
    lifetime = _optional_count(params, "maxPacketLifeTime")
    retransmits = _optional_count(params, "maxRetransmits")
    if lifetime is not None and retransmits is not None:
        raise InvalidInputError("sctpStreamParameters: maxPacketLifeTime and maxRetransmits are exclusive")
    partial = lifetime is not None or retransmits is not None
    if ordered and (lifetime or retransmits):
        raise InvalidInputError("sctpStreamParameters: ordered cannot go with maxPacketLifeTime or maxRetransmits")
    clean: dict[str, Any] = {"streamId": stream_id, "ordered": (not partial) if ordered is None else ordered}
    if lifetime is not None:
        clean["maxPacketLifeTime"] = lifetime
    if retransmits is not None:
        clean["maxRetransmits"] = retransmits
    return clean


def validate_label(value: Any, name: str) -> str:
    """A DataChannel label or protocol (RFC 8831 section 6.4): a string, '' when not given."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_LABEL_LENGTH:
        raise InvalidInputError(f"{name} must be a string of at most {MAX_LABEL_LENGTH} characters")
    return value


def sctp_request(enable: bool, num_streams: dict[str, int] | None, max_message_size: int) -> dict[str, Any]:
    """The SCTP fields of router.createWebRtcTransport: one stream count for both ways, as the worker uses it."""
    if not enable:
        return {}
    streams = num_streams or {"OS": NUM_SCTP_STREAMS, "MIS": NUM_SCTP_STREAMS}
    counts = [streams.get(key) if isinstance(streams, dict) else None for key in ("OS", "MIS")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_STREAM_ID + 1 for n in counts):
        raise InvalidInputError(f"numSctpStreams must be {{OS, MIS}} of 1..{MAX_STREAM_ID + 1}")
    if isinstance(max_message_size, bool) or not isinstance(max_message_size, int) or max_message_size < 1:
        raise InvalidInputError("maxSctpMessageSize must be a positive integer")
    return {"enableSctp": True, "numSctpStreams": min(counts), "maxSctpMessageSize": max_message_size}
