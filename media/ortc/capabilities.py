"""What Switchyard can route: codecs and RTP header extensions, in mediasoup v3's RtpCapabilities shape.

SUPPORTED_RTP_CAPABILITIES lists codec families (a router's media codecs are
matched against it loosely, then given their own parameters);
DEFAULT_MEDIA_CODECS is the router codec list Switchyard uses unless told
otherwise. Header extension ids and directions are mediasoup's, so that
clients tuned for mediasoup negotiate the same ids with Switchyard.
"""

from __future__ import annotations

from typing import Any

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_WIDE_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
# the router's id for it, which mediasoup-client numbers its packets with
TRANSPORT_WIDE_CC_ID = 5
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
VIDEO_ORIENTATION_URI = "urn:3gpp:video-orientation"
TOFFSET_URI = "urn:ietf:params:rtp-hdrext:toffset"
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
# AV1 RTP specification appendix A: frame dependencies and layers of AV1 (and any codec's) frames
DEPENDENCY_DESCRIPTOR_URI = (
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
)

_AUDIO_FEEDBACK = [{"type": "transport-cc"}]
# NACK (RFC 4585), PLI (RFC 4585), FIR (RFC 5104), REMB and transport-wide CC.
_VIDEO_FEEDBACK = [
    {"type": "nack"},
    {"type": "nack", "parameter": "pli"},
    {"type": "ccm", "parameter": "fir"},
    {"type": "goog-remb"},
    {"type": "transport-cc"},
]


def _video(mime_type: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A video codec capability at the 90 kHz RTP clock (RFC 3551) with Switchyard's feedback."""
    return {
        "kind": "video",
        "mimeType": mime_type,
        "clockRate": 90000,
        "parameters": dict(parameters or {}),
        "rtcpFeedback": [dict(fb) for fb in _VIDEO_FEEDBACK],
    }


def _extension(
    kind: str, uri: str, preferred_id: int, direction: str = "sendrecv"
) -> dict[str, Any]:
    """A header extension capability (RFC 8285), never encrypted (as mediasoup: no RFC 6904)."""
    return {
        "kind": kind,
        "uri": uri,
        "preferredId": preferred_id,
        "preferredEncrypt": False,
        "direction": direction,
    }


SUPPORTED_RTP_CAPABILITIES: dict[str, Any] = {
    "codecs": [
        {
            "kind": "audio",
            "mimeType": "audio/opus",
            "clockRate": 48000,
            "channels": 2,
            "parameters": {},
            "rtcpFeedback": [dict(fb) for fb in _AUDIO_FEEDBACK],
        },
        # RED (RFC 2198) carrying Opus, as Chrome sends it (red/48000/2). mediasoup has no RED;
        # here it is forwarded to consumers that negotiated it and cut to its primary Opus
        # encoding for the others (fastpath/red.pyx).
        {
            "kind": "audio",
            "mimeType": "audio/red",
            "clockRate": 48000,
            "channels": 2,
            "parameters": {},
            "rtcpFeedback": [dict(fb) for fb in _AUDIO_FEEDBACK],
        },
        _video("video/VP8"),
        _video("video/VP9"),
        _video("video/H264", {"level-asymmetry-allowed": 1}),
        _video("video/AV1"),
    ],
    "headerExtensions": [
        _extension("audio", MID_URI, 1),
        _extension("video", MID_URI, 1),
        # rid and repaired-rid identify incoming simulcast streams; consumers get
        # one stream with its own SSRC, so Switchyard never sends them.
        _extension("video", RID_URI, 2, "recvonly"),
        _extension("video", REPAIRED_RID_URI, 3, "recvonly"),
        _extension("audio", ABS_SEND_TIME_URI, 4),
        _extension("video", ABS_SEND_TIME_URI, 4),
        # Audio consumers are not counted in the send-side bandwidth estimate,
        # as in mediasoup: transport-wide CC is only received for audio.
        _extension("audio", TRANSPORT_WIDE_CC_URI, TRANSPORT_WIDE_CC_ID, "recvonly"),
        _extension("video", TRANSPORT_WIDE_CC_URI, TRANSPORT_WIDE_CC_ID),
        # mediasoup's id; received to pick an AV1 stream's layers (fastpath/av1.pyx) and
        # forwarded unchanged, so receivers can tell which frames a reduced stream still needs
        _extension("video", DEPENDENCY_DESCRIPTOR_URI, 8),
        _extension("audio", AUDIO_LEVEL_URI, 10),
        _extension("video", VIDEO_ORIENTATION_URI, 11),
        _extension("video", TOFFSET_URI, 12),
        _extension("audio", PLAYOUT_DELAY_URI, 14),
        _extension("video", PLAYOUT_DELAY_URI, 14),
    ],
}

# VP8 comes first among the video codecs: clients send the router's first video
# codec they share, and VP8 simulcast is what every browser does best. Opus offers
# in-band FEC (RFC 7587 useinbandfec), so a publisher's encoder adds it. RED comes
# last: mediasoup-client sends only the first audio codec it shares with the router,
# and RED without Opus beside it is nothing a browser can send; being last also keeps
# every other codec's payload type where it was.
DEFAULT_MEDIA_CODECS: list[dict[str, Any]] = [
    {
        "kind": "audio",
        "mimeType": "audio/opus",
        "clockRate": 48000,
        "channels": 2,
        "parameters": {"useinbandfec": 1},
    },
    {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
    {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": 0}},
    {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": 2}},
    {
        "kind": "video",
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {
            "packetization-mode": 1,
            "profile-level-id": "42e01f",
            "level-asymmetry-allowed": 1,
        },
    },
    {
        "kind": "video",
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {
            "packetization-mode": 1,
            "profile-level-id": "4d001f",
            "level-asymmetry-allowed": 1,
        },
    },
    {"kind": "video", "mimeType": "video/AV1", "clockRate": 90000},
    {"kind": "audio", "mimeType": "audio/red", "clockRate": 48000, "channels": 2},
]
