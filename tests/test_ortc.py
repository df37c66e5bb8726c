"""RTP negotiation (media.ortc): router capabilities, producer mapping, consumer parameters, validation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from media.ortc import (
    OrtcError,
    UnsupportedError,
    can_consume,
    default_media_codecs,
    generate_router_rtp_capabilities,
    generate_ssrc,
    get_consumable_rtp_parameters,
    get_consumer_rtp_parameters,
    get_producer_rtp_parameters_mapping,
    get_producer_type,
    match_codecs,
    parse_scalability_mode,
    validate_rtp_capabilities,
    validate_rtp_parameters,
)
from media.ortc.capabilities import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    DEPENDENCY_DESCRIPTOR_URI,
    MID_URI,
    PLAYOUT_DELAY_URI,
    REPAIRED_RID_URI,
    RID_URI,
    TOFFSET_URI,
    TRANSPORT_WIDE_CC_URI,
    VIDEO_ORIENTATION_URI,
)

VIDEO_FEEDBACK = [
    {"type": "goog-remb", "parameter": ""},
    {"type": "transport-cc", "parameter": ""},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
]


def _ext(uri: str, ext_id: int) -> dict[str, Any]:
    return {"uri": uri, "id": ext_id, "encrypt": False, "parameters": {}}


# What mediasoup-client sends from Chromium for a 3-layer VP8 simulcast track:
# Chromium's own payload types and extension ids, rid-identified encodings.
CHROMIUM_VP8_SIMULCAST: dict[str, Any] = {
    "mid": "1",
    "codecs": [
        {
            "mimeType": "video/VP8",
            "payloadType": 96,
            "clockRate": 90000,
            "parameters": {},
            "rtcpFeedback": VIDEO_FEEDBACK,
        },
        {
            "mimeType": "video/rtx",
            "payloadType": 97,
            "clockRate": 90000,
            "parameters": {"apt": 96},
            "rtcpFeedback": [],
        },
    ],
    "headerExtensions": [
        _ext(MID_URI, 4),
        _ext(RID_URI, 10),
        _ext(REPAIRED_RID_URI, 11),
        _ext(ABS_SEND_TIME_URI, 2),
        _ext(TRANSPORT_WIDE_CC_URI, 3),
        _ext(VIDEO_ORIENTATION_URI, 13),
        _ext(TOFFSET_URI, 14),
        _ext(PLAYOUT_DELAY_URI, 12),
    ],
    "encodings": [
        {
            "active": True,
            "rid": "r0",
            "scalabilityMode": "L1T3",
            "scaleResolutionDownBy": 4,
            "maxBitrate": 150000,
        },
        {
            "active": True,
            "rid": "r1",
            "scalabilityMode": "L1T3",
            "scaleResolutionDownBy": 2,
            "maxBitrate": 500000,
        },
        {
            "active": True,
            "rid": "r2",
            "scalabilityMode": "L1T3",
            "scaleResolutionDownBy": 1,
            "maxBitrate": 1500000,
        },
    ],
    "rtcp": {"cname": "uQ5n4Tm0cHWMrVzX", "reducedSize": True},
}

CHROMIUM_OPUS: dict[str, Any] = {
    "mid": "0",
    "codecs": [
        {
            "mimeType": "audio/opus",
            "payloadType": 111,
            "clockRate": 48000,
            "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1, "usedtx": 1},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}],
        }
    ],
    "headerExtensions": [
        _ext(AUDIO_LEVEL_URI, 1),
        _ext(ABS_SEND_TIME_URI, 2),
        _ext(TRANSPORT_WIDE_CC_URI, 3),
        _ext(MID_URI, 4),
    ],
    "encodings": [{"ssrc": 3861594723, "dtx": False}],
    "rtcp": {"cname": "uQ5n4Tm0cHWMrVzX", "reducedSize": True},
}


def _ssrc_simulcast() -> dict[str, Any]:
    """The same VP8 track with SSRC-identified encodings (SDP a=ssrc-group:SIM, as older clients send)."""
    params = copy.deepcopy(CHROMIUM_VP8_SIMULCAST)
    params["encodings"] = [
        {"ssrc": 1111, "rtx": {"ssrc": 1112}},
        {"ssrc": 2221, "rtx": {"ssrc": 2222}},
        {"ssrc": 3331, "rtx": {"ssrc": 3332}},
    ]
    return params


def _chromium_recv_caps(router_caps: dict[str, Any], with_rtx: bool = True) -> dict[str, Any]:
    """The receive capabilities mediasoup-client computes for Chromium: the router's codecs and ids."""
    codecs = [
        copy.deepcopy(codec)
        for codec in router_caps["codecs"]
        if with_rtx or codec["mimeType"] != "video/rtx"
    ]
    extensions = [
        {"kind": ext["kind"], "uri": ext["uri"], "preferredId": ext["preferredId"]}
        for ext in router_caps["headerExtensions"]
        if ext["direction"] in ("sendrecv", "sendonly")
    ]
    return {"codecs": codecs, "headerExtensions": extensions}


@pytest.fixture
def router_caps() -> dict[str, Any]:
    return generate_router_rtp_capabilities(default_media_codecs())


def _consumable(kind: str, params: dict[str, Any], caps: dict[str, Any]):
    params = copy.deepcopy(params)
    mapping = get_producer_rtp_parameters_mapping(params, caps)
    return params, mapping, get_consumable_rtp_parameters(kind, params, caps, mapping)


# Router capabilities


def test_router_caps_have_unique_payload_types_and_an_rtx_per_video_codec(router_caps):
    codecs = router_caps["codecs"]
    payload_types = [codec["preferredPayloadType"] for codec in codecs]
    assert len(payload_types) == len(set(payload_types))
    assert all(96 <= pt <= 127 for pt in payload_types)
    media = [c for c in codecs if c["mimeType"] != "video/rtx"]
    assert [c["mimeType"] for c in media] == [
        "audio/opus",
        "video/VP8",
        "video/VP9",
        "video/VP9",
        "video/H264",
        "video/H264",
        "video/AV1",
        "audio/red",
    ]
    for codec in media:
        rtx = [
            c
            for c in codecs
            if c["mimeType"] == "video/rtx"
            and c["parameters"]["apt"] == codec["preferredPayloadType"]
        ]
        assert len(rtx) == (1 if codec["kind"] == "video" else 0)
    opus = media[0]
    assert opus["channels"] == 2 and opus["rtcpFeedback"] == [
        {"type": "transport-cc", "parameter": ""}
    ]
    vp8 = media[1]
    assert "channels" not in vp8
    assert {(fb["type"], fb["parameter"]) for fb in vp8["rtcpFeedback"]} == {
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    }
    h264 = [c["parameters"] for c in media if c["mimeType"] == "video/H264"]
    assert [p["profile-level-id"] for p in h264] == ["42e01f", "4d001f"]
    assert all(p["packetization-mode"] == 1 and p["level-asymmetry-allowed"] == 1 for p in h264)
    assert [c["parameters"]["profile-id"] for c in media if c["mimeType"] == "video/VP9"] == [0, 2]


def test_router_caps_assign_100_upwards_like_mediasoup(router_caps):
    assert [c["preferredPayloadType"] for c in router_caps["codecs"][:3]] == [100, 101, 102]


def test_router_caps_header_extensions_use_mediasoup_ids(router_caps):
    table = {
        (e["kind"], e["uri"]): (e["preferredId"], e["direction"])
        for e in router_caps["headerExtensions"]
    }
    assert table[("video", MID_URI)] == (1, "sendrecv")
    assert table[("audio", MID_URI)] == (1, "sendrecv")
    assert table[("video", RID_URI)] == (2, "recvonly")
    assert table[("video", REPAIRED_RID_URI)] == (3, "recvonly")
    assert table[("video", ABS_SEND_TIME_URI)] == (4, "sendrecv")
    assert table[("audio", TRANSPORT_WIDE_CC_URI)] == (5, "recvonly")
    assert table[("video", TRANSPORT_WIDE_CC_URI)] == (5, "sendrecv")
    assert table[("audio", AUDIO_LEVEL_URI)] == (10, "sendrecv")
    assert table[("video", VIDEO_ORIENTATION_URI)] == (11, "sendrecv")
    assert table[("video", TOFFSET_URI)] == (12, "sendrecv")
    assert table[("video", PLAYOUT_DELAY_URI)] == (14, "sendrecv")
    assert all(e["preferredEncrypt"] is False for e in router_caps["headerExtensions"])


def test_router_keeps_chosen_payload_types_and_never_hands_them_out_twice():
    codecs = [
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
        {
            "kind": "audio",
            "mimeType": "audio/opus",
            "clockRate": 48000,
            "channels": 2,
            "preferredPayloadType": 101,
        },
    ]
    caps = generate_router_rtp_capabilities(codecs)
    assert [(c["mimeType"], c["preferredPayloadType"]) for c in caps["codecs"]] == [
        ("video/VP8", 100),
        ("video/rtx", 102),
        ("audio/opus", 101),
    ]
    assert "preferredPayloadType" not in codecs[0]  # the caller's list is left alone


def test_router_rejects_unsupported_and_duplicate_codecs():
    with pytest.raises(UnsupportedError, match="audio/PCMU"):
        generate_router_rtp_capabilities(
            [{"kind": "audio", "mimeType": "audio/PCMU", "clockRate": 8000}]
        )
    with pytest.raises(OrtcError, match="used twice"):
        generate_router_rtp_capabilities(
            [
                {
                    "kind": "video",
                    "mimeType": "video/VP8",
                    "clockRate": 90000,
                    "preferredPayloadType": 96,
                },
                {
                    "kind": "video",
                    "mimeType": "video/VP9",
                    "clockRate": 90000,
                    "preferredPayloadType": 96,
                },
            ]
        )
    with pytest.raises(OrtcError, match="mediaCodecs must be an array"):
        generate_router_rtp_capabilities({"mimeType": "video/VP8"})


def test_router_runs_out_of_dynamic_payload_types():
    with pytest.raises(OrtcError, match="cannot allocate"):
        generate_router_rtp_capabilities(
            [{"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}] * 17
        )


# Producers


def test_chromium_rid_simulcast_maps_onto_router_payload_types(router_caps):
    params, mapping, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    assert mapping["codecs"] == [
        {"payloadType": 96, "mappedPayloadType": 101},
        {"payloadType": 97, "mappedPayloadType": 102},
    ]
    encodings = mapping["encodings"]
    assert [e["rid"] for e in encodings] == ["r0", "r1", "r2"]
    assert all("ssrc" not in e and e["scalabilityMode"] == "L1T3" for e in encodings)
    base = encodings[0]["mappedSsrc"]
    assert [e["mappedSsrc"] for e in encodings] == [base, base + 1, base + 2]
    assert 0 < base and base + 2 <= 0xFFFFFFFF

    assert [(c["mimeType"], c["payloadType"]) for c in consumable["codecs"]] == [
        ("video/VP8", 101),
        ("video/rtx", 102),
    ]
    assert consumable["codecs"][1]["parameters"] == {"apt": 101}
    assert [e["ssrc"] for e in consumable["encodings"]] == [base, base + 1, base + 2]
    assert all("rid" not in e and "rtx" not in e for e in consumable["encodings"])
    assert consumable["encodings"][2]["maxBitrate"] == 1500000
    # Router ids, and only what the router sends on: rid and repaired-rid are receive-only.
    assert {(e["uri"], e["id"]) for e in consumable["headerExtensions"]} == {
        (MID_URI, 1),
        (ABS_SEND_TIME_URI, 4),
        (TRANSPORT_WIDE_CC_URI, 5),
        (DEPENDENCY_DESCRIPTOR_URI, 8),
        (VIDEO_ORIENTATION_URI, 11),
        (TOFFSET_URI, 12),
        (PLAYOUT_DELAY_URI, 14),
    }
    assert consumable["rtcp"] == {"cname": "uQ5n4Tm0cHWMrVzX", "reducedSize": True}


def test_ssrc_simulcast_maps_each_encoding(router_caps):
    _, mapping, consumable = _consumable("video", _ssrc_simulcast(), router_caps)
    assert [e["ssrc"] for e in mapping["encodings"]] == [1111, 2221, 3331]
    assert all("rid" not in e for e in mapping["encodings"])
    mapped = [e["mappedSsrc"] for e in mapping["encodings"]]
    assert [e["ssrc"] for e in consumable["encodings"]] == mapped
    assert not {1111, 2221, 3331} & set(mapped)


def test_opus_producer_maps(router_caps):
    _, mapping, consumable = _consumable("audio", CHROMIUM_OPUS, router_caps)
    assert mapping["codecs"] == [{"payloadType": 111, "mappedPayloadType": 100}]
    assert mapping["encodings"][0]["ssrc"] == 3861594723
    codec = consumable["codecs"][0]
    assert codec["channels"] == 2 and codec["parameters"]["useinbandfec"] == 1
    # Audio transport-wide CC is receive-only on the router, so consumers do not get it.
    assert {e["uri"] for e in consumable["headerExtensions"]} == {
        MID_URI,
        ABS_SEND_TIME_URI,
        AUDIO_LEVEL_URI,
        PLAYOUT_DELAY_URI,
    }


def test_producer_with_unsupported_codec_is_refused(router_caps):
    params = copy.deepcopy(CHROMIUM_OPUS)
    params["codecs"][0].update(mimeType="audio/PCMU", clockRate=8000, payloadType=0, channels=1)
    with pytest.raises(UnsupportedError, match="PCMU"):
        get_producer_rtp_parameters_mapping(params, router_caps)


def test_h264_producer_needs_a_router_profile_and_packetization_mode(router_caps):
    params = copy.deepcopy(CHROMIUM_VP8_SIMULCAST)
    h264 = {"packetization-mode": 1, "profile-level-id": "42e01f", "level-asymmetry-allowed": 1}
    params["codecs"][0].update(mimeType="video/H264", parameters=h264)
    assert get_producer_rtp_parameters_mapping(copy.deepcopy(params), router_caps)["codecs"][0] == {
        "payloadType": 96,
        "mappedPayloadType": 107,
    }
    params["codecs"][0]["parameters"]["profile-level-id"] = "4d0032"  # Main, level 5
    assert (
        get_producer_rtp_parameters_mapping(copy.deepcopy(params), router_caps)["codecs"][0][
            "mappedPayloadType"
        ]
        == 109
    )
    params["codecs"][0]["parameters"]["packetization-mode"] = 0
    with pytest.raises(UnsupportedError):
        get_producer_rtp_parameters_mapping(params, router_caps)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda p: p["encodings"].clear(), "encodings is empty"),
        (lambda p: p["encodings"][1].update(rid="r0"), "'r0' is used twice"),
        (lambda p: p["encodings"][1].pop("rid"), r"encodings\[1\] needs an ssrc or a rid"),
        (lambda p: p["encodings"][0].update(codecPayloadType=97), "codecPayloadType 97"),
        (
            lambda p: p["codecs"][1]["parameters"].update(apt=55),
            "no media codec for RTX payload type 97",
        ),
        (lambda p: p["codecs"].pop(0), "no media codec"),
    ],
)
def test_inconsistent_producer_parameters_are_refused(router_caps, change, message):
    params = copy.deepcopy(CHROMIUM_VP8_SIMULCAST)
    change(params)
    with pytest.raises(OrtcError, match=message):
        get_producer_rtp_parameters_mapping(params, router_caps)


def test_producer_ssrcs_must_be_distinct(router_caps):
    params = _ssrc_simulcast()
    params["encodings"][2]["rtx"]["ssrc"] = 1111
    with pytest.raises(OrtcError, match="ssrc 1111 is used twice"):
        get_producer_rtp_parameters_mapping(params, router_caps)


def test_producer_of_the_wrong_kind_is_refused(router_caps):
    params = copy.deepcopy(CHROMIUM_OPUS)
    mapping = get_producer_rtp_parameters_mapping(params, router_caps)
    with pytest.raises(OrtcError, match=r"codecs\[0\].mimeType must be video/<name>"):
        get_consumable_rtp_parameters("video", params, router_caps, mapping)


# Consumers


def test_can_consume_with_a_matching_codec(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    assert can_consume(consumable, _chromium_recv_caps(router_caps))


def test_cannot_consume_without_a_matching_codec(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    caps = _chromium_recv_caps(router_caps)
    caps["codecs"] = [
        c for c in caps["codecs"] if c["mimeType"] in ("audio/opus", "video/H264", "video/rtx")
    ]
    assert not can_consume(consumable, caps)  # an RTX match alone is no match
    assert not can_consume(consumable, {"codecs": [], "headerExtensions": []})


def test_cannot_consume_h264_of_another_profile(router_caps):
    params = copy.deepcopy(CHROMIUM_VP8_SIMULCAST)
    params["codecs"][0].update(
        mimeType="video/H264",
        parameters={
            "packetization-mode": 1,
            "profile-level-id": "42e01f",
            "level-asymmetry-allowed": 1,
        },
    )
    _, _, consumable = _consumable("video", params, router_caps)
    main_only = {
        "codecs": [
            {
                "kind": "video",
                "mimeType": "video/H264",
                "preferredPayloadType": 109,
                "clockRate": 90000,
                "parameters": {"packetization-mode": 1, "profile-level-id": "4d001f"},
            }
        ]
    }
    assert not can_consume(consumable, main_only)
    main_only["codecs"][0]["parameters"]["profile-level-id"] = "42e01f"
    assert can_consume(consumable, main_only)


def test_consumer_gets_one_encoding_with_fresh_ssrcs_and_layers(router_caps):
    params, mapping, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    consumer = get_consumer_rtp_parameters(consumable, _chromium_recv_caps(router_caps))
    assert [(c["mimeType"], c["payloadType"]) for c in consumer["codecs"]] == [
        ("video/VP8", 101),
        ("video/rtx", 102),
    ]
    (encoding,) = consumer["encodings"]
    assert encoding["ssrc"] not in {e["mappedSsrc"] for e in mapping["encodings"]}
    assert encoding["rtx"] == {"ssrc": encoding["ssrc"] + 1}
    assert encoding["scalabilityMode"] == "L3T3"
    assert encoding["maxBitrate"] == 1500000
    # Transport-wide CC is negotiated, so REMB is dropped.
    feedback = {(fb["type"], fb["parameter"]) for fb in consumer["codecs"][0]["rtcpFeedback"]}
    assert ("transport-cc", "") in feedback and ("goog-remb", "") not in feedback
    assert ("nack", "") in feedback and ("nack", "pli") in feedback
    assert consumer["rtcp"]["cname"] == params["rtcp"]["cname"]
    assert "mid" not in consumer  # the transport gives each consumer its mid


def test_consumer_ssrcs_differ_between_consumers(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    caps = _chromium_recv_caps(router_caps)
    ssrcs = {
        get_consumer_rtp_parameters(consumable, caps)["encodings"][0]["ssrc"] for _ in range(50)
    }
    assert len(ssrcs) == 50


def test_consumer_without_remote_rtx_has_no_rtx_ssrc(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    consumer = get_consumer_rtp_parameters(
        consumable, _chromium_recv_caps(router_caps, with_rtx=False)
    )
    assert [c["mimeType"] for c in consumer["codecs"]] == ["video/VP8"]
    assert "rtx" not in consumer["encodings"][0]


def test_consumer_with_rtx_disabled_drops_rtx_and_plain_nack(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    consumer = get_consumer_rtp_parameters(
        consumable, _chromium_recv_caps(router_caps), enable_rtx=False
    )
    assert [c["mimeType"] for c in consumer["codecs"]] == ["video/VP8"]
    feedback = {(fb["type"], fb["parameter"]) for fb in consumer["codecs"][0]["rtcpFeedback"]}
    assert ("nack", "") not in feedback and ("nack", "pli") in feedback
    assert "rtx" not in consumer["encodings"][0]


def test_consumer_header_extensions_follow_the_remote(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    caps = _chromium_recv_caps(router_caps)
    caps["headerExtensions"] = [
        e for e in caps["headerExtensions"] if e["uri"] in (MID_URI, ABS_SEND_TIME_URI)
    ] + [{"kind": "video", "uri": TOFFSET_URI, "preferredId": 7}]  # id differs: not usable
    consumer = get_consumer_rtp_parameters(consumable, caps)
    assert {(e["uri"], e["id"]) for e in consumer["headerExtensions"]} == {
        (MID_URI, 1),
        (ABS_SEND_TIME_URI, 4),
    }
    # With abs-send-time but no transport-wide CC, REMB is the bandwidth feedback.
    feedback = {fb["type"] for fb in consumer["codecs"][0]["rtcpFeedback"]}
    assert "goog-remb" in feedback and "transport-cc" not in feedback


def test_single_stream_consumer_keeps_the_producer_scalability_mode(router_caps):
    params = copy.deepcopy(CHROMIUM_VP8_SIMULCAST)
    params["encodings"] = [{"ssrc": 42, "scalabilityMode": "L1T2"}]
    _, _, consumable = _consumable("video", params, router_caps)
    consumer = get_consumer_rtp_parameters(consumable, _chromium_recv_caps(router_caps))
    assert consumer["encodings"][0]["scalabilityMode"] == "L1T2"
    _, _, audio = _consumable("audio", CHROMIUM_OPUS, router_caps)
    assert (
        "scalabilityMode"
        not in get_consumer_rtp_parameters(audio, _chromium_recv_caps(router_caps))["encodings"][0]
    )


def test_pipe_consumer_keeps_every_encoding(router_caps):
    _, mapping, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    consumer = get_consumer_rtp_parameters(consumable, router_caps, pipe=True)
    encodings = consumer["encodings"]
    assert len(encodings) == 3
    assert [e["ssrc"] - encodings[0]["ssrc"] for e in encodings] == [0, 1, 2]
    assert [e["rtx"]["ssrc"] - encodings[0]["rtx"]["ssrc"] for e in encodings] == [0, 1, 2]
    assert [e["scaleResolutionDownBy"] for e in encodings] == [4, 2, 1]


def test_consumer_without_compatible_codec_is_unsupported(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    with pytest.raises(UnsupportedError, match="no compatible media codecs"):
        get_consumer_rtp_parameters(consumable, {"codecs": [], "headerExtensions": []})


# RED (RFC 2198) and Opus in-band FEC

# What mediasoup-client sends from Chromium for Opus with RED first (red/48000/2 at 63, "a=fmtp:63
# 111/111", which sdp-transform parses to a parameter name without a value).
CHROMIUM_RED_OPUS: dict[str, Any] = {
    **copy.deepcopy(CHROMIUM_OPUS),
    "codecs": [
        {
            "mimeType": "audio/red",
            "payloadType": 63,
            "clockRate": 48000,
            "channels": 2,
            "parameters": {"111/111": ""},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}],
        },
        copy.deepcopy(CHROMIUM_OPUS["codecs"][0]),
    ],
}


def _without_red(caps: dict[str, Any]) -> dict[str, Any]:
    """An endpoint that does not speak RED (aiortc, Firefox)."""
    return {**caps, "codecs": [c for c in caps["codecs"] if c["mimeType"] != "audio/red"]}


def test_router_caps_offer_opus_with_fec_and_red_last(router_caps):
    codecs = router_caps["codecs"]
    opus = next(c for c in codecs if c["mimeType"] == "audio/opus")
    assert opus["parameters"] == {"useinbandfec": 1}
    red = codecs[-1]
    assert (red["mimeType"], red["clockRate"], red["channels"]) == ("audio/red", 48000, 2)
    assert red["rtcpFeedback"] == [{"type": "transport-cc", "parameter": ""}]
    # after every other codec, so none of theirs moved: mediasoup-client sends the first audio
    # codec it shares with the router, which stays Opus
    assert red["preferredPayloadType"] == max(c["preferredPayloadType"] for c in codecs)
    assert [c["mimeType"] for c in codecs if c["kind"] == "audio"] == ["audio/opus", "audio/red"]


def test_red_producer_is_consumed_as_red_by_a_red_endpoint(router_caps):
    _, mapping, consumable = _consumable("audio", CHROMIUM_RED_OPUS, router_caps)
    red_pt, opus_pt = (next(c["preferredPayloadType"] for c in router_caps["codecs"] if c["mimeType"] == m)
                       for m in ("audio/red", "audio/opus"))
    assert mapping["codecs"] == [
        {"payloadType": 63, "mappedPayloadType": red_pt},
        {"payloadType": 111, "mappedPayloadType": opus_pt},
    ]
    red, opus = consumable["codecs"]
    # the fmtp names the blocks' payload types, which are the router's to a consumer
    assert (red["mimeType"], red["payloadType"], red["parameters"]) == (
        "audio/red", red_pt, {f"{opus_pt}/{opus_pt}": ""})
    assert opus["parameters"] == {"minptime": 10, "useinbandfec": 1, "usedtx": 1}
    caps = _chromium_recv_caps(router_caps)
    assert can_consume(consumable, caps)
    consumer = get_consumer_rtp_parameters(consumable, caps)
    assert [(c["mimeType"], c["payloadType"]) for c in consumer["codecs"]] == [
        ("audio/red", red_pt), ("audio/opus", opus_pt)]


def test_red_producer_is_consumed_as_opus_with_fec_by_an_endpoint_without_red(router_caps):
    _, _, consumable = _consumable("audio", CHROMIUM_RED_OPUS, router_caps)
    caps = _without_red(_chromium_recv_caps(router_caps))
    assert can_consume(consumable, caps)
    consumer = get_consumer_rtp_parameters(consumable, caps)
    assert [c["mimeType"] for c in consumer["codecs"]] == ["audio/opus"]
    assert consumer["codecs"][0]["parameters"]["useinbandfec"] == 1
    assert len(consumer["encodings"]) == 1 and "rtx" not in consumer["encodings"][0]


def test_red_alone_carries_nothing_an_endpoint_can_decode(router_caps):
    _, _, consumable = _consumable("audio", CHROMIUM_RED_OPUS, router_caps)
    caps = _chromium_recv_caps(router_caps)
    caps["codecs"] = [c for c in caps["codecs"] if c["mimeType"] != "audio/opus"]
    assert not can_consume(consumable, caps)
    with pytest.raises(UnsupportedError, match="no compatible media codecs"):
        get_consumer_rtp_parameters(consumable, caps)


async def test_pymediasoup_receives_a_red_producer_as_opus(router_caps):
    from pymediasoup import AiortcHandler, Device
    from pymediasoup.ortc import canReceive
    from pymediasoup.rtp_parameters import RtpCapabilities, RtpParameters

    device = Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))
    await device.load(RtpCapabilities.model_validate(copy.deepcopy(router_caps)))
    recv_caps = device.rtpCapabilities.model_dump()
    assert "audio/red" not in {c["mimeType"].lower() for c in recv_caps["codecs"]}  # aiortc has no RED
    _, _, consumable = _consumable("audio", CHROMIUM_RED_OPUS, router_caps)
    assert can_consume(consumable, copy.deepcopy(recv_caps))
    consumer = get_consumer_rtp_parameters(consumable, copy.deepcopy(recv_caps))
    assert [c["mimeType"] for c in consumer["codecs"]] == ["audio/opus"]
    assert canReceive(RtpParameters.model_validate(consumer), device._extendedRtpCapabilities)


def test_pipe_consumer_keeps_red(router_caps):
    _, _, consumable = _consumable("audio", CHROMIUM_RED_OPUS, router_caps)
    consumer = get_consumer_rtp_parameters(consumable, router_caps, pipe=True)
    assert [c["mimeType"] for c in consumer["codecs"]] == ["audio/red", "audio/opus"]


def test_red_fmtp_keeps_other_parameters_and_drops_unmapped_lists(router_caps):
    params = copy.deepcopy(CHROMIUM_RED_OPUS)
    params["codecs"][0]["parameters"] = {"111/111/111": "", "96/96": "", "x-custom": 7}
    _, _, consumable = _consumable("audio", params, router_caps)
    opus_pt = consumable["codecs"][1]["payloadType"]
    assert consumable["codecs"][0]["parameters"] == {f"{opus_pt}/{opus_pt}/{opus_pt}": "", "x-custom": 7}


# Helpers


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("L1T3", (1, 3, False)),
        ("L3T3_KEY", (3, 3, True)),
        ("S2T1", (2, 1, False)),
        ("L10T12", (10, 12, False)),
        (None, (1, 1, False)),
        ("", (1, 1, False)),
        ("bogus", (1, 1, False)),
        ("L0T1", (1, 1, False)),
    ],
)
def test_parse_scalability_mode(mode, expected):
    parsed = parse_scalability_mode(mode)
    assert (parsed["spatialLayers"], parsed["temporalLayers"], parsed["ksvc"]) == expected


def test_producer_type():
    assert get_producer_type(CHROMIUM_VP8_SIMULCAST) == "simulcast"
    assert get_producer_type(CHROMIUM_OPUS) == "simple"
    assert get_producer_type({"encodings": [{"ssrc": 1, "scalabilityMode": "L1T1"}]}) == "simple"
    assert get_producer_type({"encodings": [{"ssrc": 1, "scalabilityMode": "L3T3_KEY"}]}) == "svc"
    # as mediasoup: one VP8 (or H264) stream with temporal layers is consumed like simulcast,
    # one VP9 or AV1 stream with any layers as SVC
    for mime, mode, expected in (("video/VP8", "L1T3", "simulcast"), ("video/H264", "L1T2", "simulcast"),
                                 ("video/VP9", "L1T3", "svc"), ("video/VP9", "L3T3_KEY", "svc"),
                                 ("video/AV1", "L3T3", "svc"), ("video/VP8", "L1T1", "simple")):
        params = {"codecs": [{"mimeType": mime}, {"mimeType": "video/rtx"}],
                  "encodings": [{"ssrc": 1, "scalabilityMode": mode}]}
        assert get_producer_type(params) == expected, (mime, mode)


def test_generate_ssrc_is_32_bit_and_never_zero():
    values = [generate_ssrc() for _ in range(2000)]
    assert all(1 <= v <= 0xFFFFFFFF for v in values)
    assert len(set(values)) > 1990
    assert all(generate_ssrc(3) + 2 <= 0xFFFFFFFF for _ in range(2000))


def test_match_codecs_rules():
    vp9 = {"mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": 2}}
    assert match_codecs(
        vp9,
        {"mimeType": "video/vp9", "clockRate": 90000, "parameters": {"profile-id": "2"}},
        strict=True,
    )
    assert not match_codecs(
        vp9, {"mimeType": "video/VP9", "clockRate": 90000, "parameters": {}}, strict=True
    )
    assert match_codecs(vp9, {"mimeType": "video/VP9", "clockRate": 90000, "parameters": {}})
    opus = {"mimeType": "audio/opus", "clockRate": 48000, "channels": 2, "parameters": {}}
    assert not match_codecs(opus, {**opus, "channels": 1})
    assert not match_codecs(opus, {**opus, "clockRate": 16000})
    # Level asymmetry off on one side: the answer takes the lower level.
    offer = {
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {"packetization-mode": 1, "profile-level-id": "42e034"},
    }
    router = {
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {"packetization-mode": "1", "profile-level-id": "42e01f"},
    }
    assert match_codecs(offer, router, strict=True, modify=True)
    assert offer["parameters"]["profile-level-id"] == "42e01f"


# Validation


def _valid_params() -> dict[str, Any]:
    return copy.deepcopy(CHROMIUM_VP8_SIMULCAST)


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda p: p.update(codecs="VP8"), "rtpParameters.codecs must be an array"),
        (lambda p: p.pop("codecs"), "rtpParameters.codecs is missing"),
        (lambda p: p["codecs"][0].pop("mimeType"), r"codecs\[0\].mimeType is missing"),
        (
            lambda p: p["codecs"][0].update(mimeType="text/plain"),
            r"codecs\[0\].mimeType must be audio",
        ),
        (
            lambda p: p["codecs"][0].update(payloadType="96"),
            r"codecs\[0\].payloadType must be an integer",
        ),
        (
            lambda p: p["codecs"][0].update(payloadType=128),
            r"payloadType must be an integer in 0..127",
        ),
        (
            lambda p: p["codecs"][0].update(payloadType=-1),
            r"payloadType must be an integer in 0..127",
        ),
        (
            lambda p: p["codecs"][1].update(payloadType=96),
            r"codecs\[1\].payloadType 96 is used twice",
        ),
        (
            lambda p: p["codecs"][0].update(clockRate=True),
            r"codecs\[0\].clockRate must be an integer",
        ),
        (
            lambda p: p["codecs"][0].update(parameters=[]),
            r"codecs\[0\].parameters must be an object",
        ),
        (
            lambda p: p["codecs"][0]["parameters"].update(x={"a": 1}),
            r"parameters.x must be a string or a number",
        ),
        (
            lambda p: p["codecs"][1]["parameters"].update(apt="96"),
            r"parameters.apt must be an integer",
        ),
        (
            lambda p: p["codecs"][0]["rtcpFeedback"].append({"parameter": "pli"}),
            r"rtcpFeedback\[5\].type is missing",
        ),
        (
            lambda p: p["headerExtensions"][0].update(id=0),
            r"headerExtensions\[0\].id must be an integer in 1..255",
        ),
        (
            lambda p: p["headerExtensions"][1].update(id=4),
            r"headerExtensions\[1\].id 4 is used twice",
        ),
        (lambda p: p["headerExtensions"][0].update(encrypt="no"), r"encrypt must be a boolean"),
        (
            lambda p: p["encodings"][0].update(ssrc=2**32),
            r"encodings\[0\].ssrc must be an integer in 0..4294967295",
        ),
        (lambda p: p["encodings"][0].update(rtx={}), r"encodings\[0\].rtx.ssrc is missing"),
        (lambda p: p["encodings"][0].update(rid=7), r"encodings\[0\].rid must be a string"),
        (lambda p: p["encodings"][0].update(maxBitrate=-5), r"maxBitrate must be a number >= 0"),
        (
            lambda p: p["encodings"][0].update(maxBitrate=float("nan")),
            r"maxBitrate must be a number",
        ),
        (lambda p: p["encodings"][0].update(priority="urgent"), r"priority must be one of"),
        (
            lambda p: p.update(encodings=[{"ssrc": i} for i in range(9)]),
            r"encodings has more than 8 entries",
        ),
        (lambda p: p.update(rtcp="x"), r"rtpParameters.rtcp must be an object"),
        (lambda p: p.update(mid="m" * 1_000_000), r"rtpParameters.mid is longer than 255"),
        (
            lambda p: p["codecs"][0].update(mimeType="video/" + "x" * 1_000_000),
            r"mimeType is longer than 255",
        ),
        (
            lambda p: p["codecs"][0]["parameters"].update(x="v" * 1_000_000),
            r"parameters.x is longer than 1024",
        ),
        (
            lambda p: p["codecs"][0]["parameters"].update({"k" * 1_000_000: 1}),
            r"has a name that is not a string",
        ),
        (lambda p: p["rtcp"].update(cname="c" * 1_000_000), r"rtcp.cname is longer than 255"),
    ],
)
def test_bad_rtp_parameters_are_refused_naming_the_field(change, field):
    params = _valid_params()
    change(params)
    with pytest.raises(OrtcError, match=field):
        validate_rtp_parameters(params)


def test_rtp_parameters_must_be_an_object():
    with pytest.raises(OrtcError, match="rtpParameters must be an object"):
        validate_rtp_parameters(["codecs"])
    assert issubclass(OrtcError, ValueError)


def test_validation_fills_defaults_and_drops_unknown_keys():
    params = {
        "codecs": [
            {"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "junk": "x" * 100},
            {
                "mimeType": "video/VP8",
                "payloadType": 96,
                "clockRate": 90000,
                "channels": None,
                "rtcpFeedback": [{"type": "nack", "parameter": None}],
            },
        ],
        "encodings": [
            {
                "ssrc": 5,
                "rid": None,
                "rtx": None,
                "dtx": None,
                "scalabilityMode": None,
                "active": True,
            }
        ],
        "rtcp": None,
        "extra": {"nested": 1},
    }
    validate_rtp_parameters(params)
    assert params["codecs"][0] == {
        "mimeType": "audio/opus",
        "payloadType": 111,
        "clockRate": 48000,
        "channels": 1,
        "parameters": {},
        "rtcpFeedback": [],
    }
    assert "channels" not in params["codecs"][1]
    assert params["codecs"][1]["rtcpFeedback"] == [{"type": "nack", "parameter": ""}]
    assert params["encodings"] == [{"ssrc": 5, "dtx": False, "active": True}]
    assert params["headerExtensions"] == []
    assert params["rtcp"] == {"reducedSize": True}
    assert "extra" not in params
    before = copy.deepcopy(params)
    validate_rtp_parameters(params)
    assert params == before  # idempotent


@pytest.mark.parametrize(
    "caps,field",
    [
        ("caps", "rtpCapabilities must be an object"),
        ({"codecs": {}}, "rtpCapabilities.codecs must be an array"),
        ({"codecs": [{"mimeType": "video/VP8"}]}, r"codecs\[0\].clockRate is missing"),
        ({"codecs": [{"clockRate": 90000}]}, r"codecs\[0\].mimeType is missing"),
        (
            {
                "codecs": [
                    {"mimeType": "video/VP8", "clockRate": 90000, "preferredPayloadType": 300}
                ]
            },
            "preferredPayloadType must be",
        ),
        (
            {"codecs": [{"mimeType": "audio/opus", "clockRate": 48000, "channels": 0}]},
            r"channels must be an integer in 1..255",
        ),
        (
            {"headerExtensions": [{"kind": "data", "uri": MID_URI, "preferredId": 1}]},
            r"headerExtensions\[0\].kind must be one of",
        ),
        ({"headerExtensions": [{"kind": "video", "uri": MID_URI}]}, r"preferredId is missing"),
        (
            {
                "headerExtensions": [
                    {"kind": "video", "uri": MID_URI, "preferredId": 1, "direction": "up"}
                ]
            },
            r"direction must be one of",
        ),
        (
            {"headerExtensions": [{"kind": "video", "uri": "u" * 1_000_000, "preferredId": 1}]},
            r"uri is longer than 255",
        ),
        (
            {"codecs": [{"mimeType": "video/VP8", "clockRate": 90000}] * 129},
            "has more than 128 entries",
        ),
    ],
)
def test_bad_rtp_capabilities_are_refused_naming_the_field(caps, field):
    with pytest.raises(OrtcError, match=field):
        validate_rtp_capabilities(copy.deepcopy(caps))


def test_can_consume_validates_the_capabilities(router_caps):
    _, _, consumable = _consumable("video", CHROMIUM_VP8_SIMULCAST, router_caps)
    with pytest.raises(OrtcError, match="rtpCapabilities.codecs must be an array"):
        can_consume(consumable, {"codecs": "VP8"})


def test_capabilities_defaults():
    caps = {
        "codecs": [
            {"kind": "audio", "mimeType": "video/VP8", "clockRate": 90000, "channels": None}
        ],
        "headerExtensions": [{"kind": None, "uri": MID_URI, "preferredId": 1}],
        "fecMechanisms": [],
    }
    validate_rtp_capabilities(caps)
    assert caps == {
        "codecs": [
            {
                "kind": "video",
                "mimeType": "video/VP8",
                "clockRate": 90000,
                "parameters": {},
                "rtcpFeedback": [],
            }
        ],
        "headerExtensions": [
            {
                "kind": "",
                "uri": MID_URI,
                "preferredId": 1,
                "preferredEncrypt": False,
                "direction": "sendrecv",
            }
        ],
    }


# pymediasoup, the Python mediasoup-client, against Switchyard's router capabilities


async def test_pymediasoup_device_loads_router_caps_and_round_trips(router_caps):
    from pymediasoup import AiortcHandler, Device
    from pymediasoup.ortc import canReceive, getSendingRtpParameters, reduceCodecs
    from pymediasoup.rtp_parameters import (
        RTX,
        RtpCapabilities,
        RtpEncodingParameters,
        RtpParameters,
    )

    device = Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))
    await device.load(RtpCapabilities.model_validate(copy.deepcopy(router_caps)))
    assert device.canProduce("audio") and device.canProduce("video")

    extended = device._extendedRtpCapabilities
    recv_caps = device.rtpCapabilities.model_dump()
    for kind, ssrc in (("audio", 11111111), ("video", 22222222)):
        # What pymediasoup's send transport would put in a produce request.
        sending = getSendingRtpParameters(kind, extended)
        sending.codecs = reduceCodecs(sending.codecs)
        sending.mid = "0"
        sending.rtcp.cname = "pymediasoup-test"
        rtx = RTX(ssrc=ssrc + 1) if kind == "video" else None
        sending.encodings = [RtpEncodingParameters(ssrc=ssrc, rtx=rtx)]
        # Over the wire as JSON, with pydantic's null for every unset optional field.
        params = json.loads(sending.model_dump_json())
        assert params["encodings"][0]["rid"] is None

        mapping = get_producer_rtp_parameters_mapping(params, router_caps)
        consumable = get_consumable_rtp_parameters(kind, params, router_caps, mapping)
        assert can_consume(consumable, copy.deepcopy(recv_caps))
        consumer = get_consumer_rtp_parameters(consumable, copy.deepcopy(recv_caps))
        assert consumer["encodings"][0]["ssrc"] != ssrc
        # aiortc advertises RTX for video, so a video consumer gets an RTX stream.
        expected = ["video/VP8", "video/rtx"] if kind == "video" else ["audio/opus"]
        assert [c["mimeType"] for c in consumer["codecs"]] == expected
        assert ("rtx" in consumer["encodings"][0]) == (kind == "video")
        # The client accepts what Switchyard would send it.
        assert canReceive(RtpParameters.model_validate(consumer), extended)
