"""The main-process media API (Worker > Router > Transport > Producer/Consumer) against a real worker process.

Validation that fails before any request needs only a running worker; the
flows that create objects in the worker need its engine and are skipped
until it is there.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import socket
from typing import Any

import pytest
from aioice import stun

from media.api.errors import (
    CannotConsumeError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    SwitchyardError,
    UnsupportedError,
    from_channel,
)
from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets
from media.channel import ChannelRequestError
from media.ortc.capabilities import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
    TRANSPORT_WIDE_CC_URI,
)

EVENT_TIMEOUT = 5.0

VIDEO_FEEDBACK = [
    {"type": "goog-remb"},
    {"type": "transport-cc"},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack"},
    {"type": "nack", "parameter": "pli"},
]


def _ext(uri: str, ext_id: int) -> dict[str, Any]:
    return {"uri": uri, "id": ext_id, "encrypt": False, "parameters": {}}


# What mediasoup-client sends from Chromium: Opus, and VP8 with three rid-identified simulcast layers.
OPUS_PARAMS: dict[str, Any] = {
    "mid": "0",
    "codecs": [{
        "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
        "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc"}],
    }],
    "headerExtensions": [_ext(AUDIO_LEVEL_URI, 1), _ext(ABS_SEND_TIME_URI, 2),
                         _ext(TRANSPORT_WIDE_CC_URI, 3), _ext(MID_URI, 4)],
    "encodings": [{"ssrc": 3861594723}],
    "rtcp": {"cname": "uQ5n4Tm0cHWMrVzX"},
}
VP8_SIMULCAST_PARAMS: dict[str, Any] = {
    "mid": "1",
    "codecs": [
        {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "rtcpFeedback": VIDEO_FEEDBACK},
        {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}},
    ],
    "headerExtensions": [_ext(MID_URI, 4), _ext(RID_URI, 10), _ext(REPAIRED_RID_URI, 11),
                         _ext(ABS_SEND_TIME_URI, 2), _ext(TRANSPORT_WIDE_CC_URI, 3)],
    "encodings": [
        {"rid": "r0", "scalabilityMode": "L1T3", "maxBitrate": 150000},
        {"rid": "r1", "scalabilityMode": "L1T3", "maxBitrate": 500000},
        {"rid": "r2", "scalabilityMode": "L1T3", "maxBitrate": 1500000},
    ],
    "rtcp": {"cname": "uQ5n4Tm0cHWMrVzX"},
}


def recv_caps(router_caps: dict[str, Any], video_mime: str | None = None) -> dict[str, Any]:
    """What mediasoup-client computes for a receiving browser (optionally with one video codec only)."""
    codecs = [copy.deepcopy(c) for c in router_caps["codecs"]]
    if video_mime is not None:
        keep = {c["preferredPayloadType"] for c in codecs if c["mimeType"] == video_mime}
        codecs = [
            c for c in codecs
            if c["kind"] == "audio" or c["preferredPayloadType"] in keep or c["parameters"].get("apt") in keep
        ]
    extensions = [
        {"kind": e["kind"], "uri": e["uri"], "preferredId": e["preferredId"]}
        for e in router_caps["headerExtensions"]
        if e["direction"] in ("sendrecv", "sendonly")
    ]
    return {"codecs": codecs, "headerExtensions": extensions}


class Events:
    """Records what an emitter emits, to wait for and to assert on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple]] = []
        self._changed = asyncio.Event()

    def watch(self, emitter, *names: str, label: str = "") -> None:
        for name in names:
            emitter.on(name, lambda *args, _name=name: self._record(f"{label}{_name}", args))

    def _record(self, name: str, args: tuple) -> None:
        self.seen.append((name, args))
        self._changed.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    async def wait_for(self, name: str) -> tuple:
        async def until_seen() -> tuple:
            while True:
                for seen_name, args in self.seen:
                    if seen_name == name:
                        return args
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(until_seen(), EVENT_TIMEOUT)


@pytest.fixture
async def worker(free_ports):
    port = free_ports(1)
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    w = Worker(WorkerSettings(0, "127.0.0.1", port, "127.0.0.1"), udp, tcp)
    await w.start()
    yield w
    await w.close()


@pytest.fixture
async def router(worker):
    return await worker.create_router()


@pytest.fixture
async def room(router):
    """A sending and a receiving WebRTC transport, an audio and a simulcast video producer."""
    send = await router.create_webrtc_transport(app_data={"peer": "alice"})
    recv = await router.create_webrtc_transport(app_data={"peer": "bob"})
    audio = await send.produce("audio", OPUS_PARAMS)
    video = await send.produce("video", VP8_SIMULCAST_PARAMS)
    return send, recv, audio, video


def assert_closed_and_empty(*objects) -> None:
    for obj in objects:
        assert obj.closed
        for table in ("transports", "producers", "consumers"):
            assert getattr(obj, table, {}) == {}, (obj, table)


# ---- errors ------------------------------------------------------------------------------


def test_worker_error_codes_become_api_errors():
    assert isinstance(from_channel(ChannelRequestError("not_found", "no such transport")), NotFoundError)
    assert isinstance(from_channel(ChannelRequestError("invalid_state", "again")), InvalidStateError)
    assert isinstance(from_channel(ChannelRequestError("unsupported", "H.265")), InvalidInputError)
    other = from_channel(ChannelRequestError("internal_error", "KeyError: 'x'"))
    assert type(other) is SwitchyardError
    assert (other.code, other.message) == ("internal_error", "KeyError: 'x'")


# ---- validation before any request -------------------------------------------------------


async def test_router_media_codecs_are_validated_before_the_worker_is_asked(worker):
    with pytest.raises(InvalidInputError) as caught:
        await worker.create_router([{"kind": "audio", "mimeType": "audio/opus"}])
    assert caught.value.code == "invalid_input"
    assert "clockRate" in caught.value.message
    with pytest.raises(UnsupportedError) as caught:
        await worker.create_router([{"kind": "video", "mimeType": "video/H265", "clockRate": 90000}])
    assert caught.value.code == "unsupported"
    with pytest.raises(InvalidInputError):
        await worker.create_router(app_data=["not", "a", "dict"])
    assert worker.routers == {}


async def test_closed_worker_refuses_new_routers(worker):
    await worker.close()
    with pytest.raises(InvalidStateError):
        await worker.create_router()
    assert worker.routers == {}


async def test_dead_worker_refuses_new_routers(worker):
    died = asyncio.get_running_loop().create_future()
    worker.once("died", died.set_result)
    worker.process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(died, EVENT_TIMEOUT)
    with pytest.raises(InvalidStateError):
        await worker.create_router()


@pytest.mark.parametrize(
    "change,error,needle",
    [
        (lambda p: p.pop("codecs"), InvalidInputError, "rtpParameters.codecs is missing"),
        (lambda p: p["codecs"][0].update(payloadType=300), InvalidInputError, "payloadType"),
        (lambda p: p["encodings"].append({"ssrc": 3861594723}), InvalidInputError, "used twice"),
        (lambda p: p["codecs"][0].update(mimeType="audio/G7221"), UnsupportedError, "unsupported codec"),
        (lambda p: p.update(encodings="many"), InvalidInputError, "must be an array"),
    ],
)
async def test_bad_rtp_parameters_are_refused_before_the_worker_is_asked(router, change, error, needle):
    transport = await router.create_webrtc_transport()
    params = copy.deepcopy(OPUS_PARAMS)
    change(params)
    before = copy.deepcopy(params)
    with pytest.raises(error) as caught:
        await transport.produce("audio", params)
    assert needle in caught.value.message
    assert params == before  # the caller's object is not normalised behind its back
    assert transport.producers == {} and router.producers == {}


async def test_produce_checks_kind_ids_and_stream_identifiers(router):
    transport = await router.create_webrtc_transport()
    with pytest.raises(InvalidInputError, match="kind"):
        await transport.produce("data", OPUS_PARAMS)
    with pytest.raises(InvalidInputError, match="video/<name>|must be video"):
        await transport.produce("video", OPUS_PARAMS)
    audio = await transport.produce("audio", OPUS_PARAMS, producer_id="mic")
    assert audio.id == "mic"
    other = await router.create_webrtc_transport()
    with pytest.raises(InvalidInputError, match="already exists"):
        await other.produce("audio", OPUS_PARAMS, producer_id="mic")

    same_mid = copy.deepcopy(OPUS_PARAMS)
    same_mid["encodings"] = [{"ssrc": 1234}]
    with pytest.raises(InvalidInputError, match="mid '0' is already used"):
        await transport.produce("audio", same_mid)
    same_ssrc = copy.deepcopy(OPUS_PARAMS)
    same_ssrc["mid"] = "5"
    with pytest.raises(InvalidInputError, match="ssrc 3861594723 is already used"):
        await transport.produce("audio", same_ssrc)

    await transport.produce("video", VP8_SIMULCAST_PARAMS)
    no_mid = copy.deepcopy(VP8_SIMULCAST_PARAMS)
    del no_mid["mid"]
    with pytest.raises(InvalidInputError, match="rid 'r0'"):
        await transport.produce("video", no_mid)
    # With a MID of its own a second simulcast track may reuse the RIDs (webcam and screen share).
    screen = copy.deepcopy(VP8_SIMULCAST_PARAMS)
    screen["mid"] = "2"
    await transport.produce("video", screen)
    assert len(transport.producers) == 3 == len(router.producers)


async def test_consume_refusals(router, room):
    send, recv, audio, video = room
    caps = recv_caps(router.rtp_capabilities)
    with pytest.raises(NotFoundError) as caught:
        await recv.consume("no-such-producer", caps)
    assert caught.value.code == "not_found"

    h264_only = recv_caps(router.rtp_capabilities, video_mime="video/H264")
    assert not router.can_consume(video.id, h264_only)
    assert router.can_consume(audio.id, h264_only)
    with pytest.raises(CannotConsumeError) as caught:
        await recv.consume(video.id, h264_only)
    assert caught.value.code == "cannot_consume"

    assert not router.can_consume(video.id, {"codecs": "none"})
    with pytest.raises(InvalidInputError):
        await recv.consume(video.id, {"codecs": "none"})
    with pytest.raises(InvalidInputError):
        await recv.consume(video.id, caps, preferred_layers={"temporalLayer": 1})
    assert recv.consumers == {} and video.consumers == {}


async def test_calls_on_closed_objects_raise_invalid_state(router, room):
    send, recv, audio, video = room
    consumer = await recv.consume(video.id, recv_caps(router.rtp_capabilities))
    await consumer.close()
    await consumer.close()  # a second close is a no-op
    for call in (consumer.pause, consumer.resume, consumer.request_key_frame, consumer.get_stats,
                 lambda: consumer.set_preferred_layers(0)):
        with pytest.raises(InvalidStateError):
            await call()
    await audio.close()
    for call in (audio.pause, audio.resume, audio.get_stats):
        with pytest.raises(InvalidStateError):
            await call()
    await send.close()
    for call in (send.get_stats, send.restart_ice, lambda: send.produce("audio", OPUS_PARAMS),
                 lambda: send.consume(video.id, recv_caps(router.rtp_capabilities)),
                 lambda: send.connect(recv.dtls_parameters)):
        with pytest.raises(InvalidStateError):
            await call()
    await router.close()
    with pytest.raises(InvalidStateError):
        await router.create_webrtc_transport()
    with pytest.raises(InvalidStateError):
        await router.create_plain_transport()
    with pytest.raises(InvalidStateError):
        await router.dump()
    with pytest.raises(InvalidStateError):
        router.can_consume(video.id, recv_caps(router.rtp_capabilities))


# ---- the full flow -----------------------------------------------------------------------


async def test_webrtc_transport_parameters_and_connect_once(router):
    transport = await router.create_webrtc_transport()
    assert transport.ice_parameters["iceLite"] is True
    assert transport.ice_candidates and transport.ice_candidates[0]["port"] == router.worker.settings.rtc_port
    assert transport.dtls_parameters["fingerprints"]
    assert (transport.ice_state, transport.dtls_state, transport.ice_selected_tuple) == ("new", "new", None)
    with pytest.raises(InvalidInputError):
        await transport.connect({"role": "client", "fingerprints": []})
    client = {"role": "client", "fingerprints": transport.dtls_parameters["fingerprints"]}
    await transport.connect(client)
    assert transport.dtls_parameters["role"] == "server"
    with pytest.raises(InvalidStateError):
        await transport.connect(client)
    old = transport.ice_parameters["usernameFragment"]
    restarted = await transport.restart_ice()
    assert restarted["usernameFragment"] != old and transport.ice_parameters == restarted
    assert isinstance(await transport.get_stats(), list)


async def test_ice_notifications_reach_their_transport(router):
    transport = await router.create_webrtc_transport()
    other = await router.create_webrtc_transport()
    events, other_events = Events(), Events()
    events.watch(transport, "icestatechange", "iceselectedtuplechange")
    other_events.watch(other, "icestatechange", "iceselectedtuplechange")
    params = transport.ice_parameters
    check = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    check.attributes["USERNAME"] = f"{params['usernameFragment']}:peer"
    check.attributes["PRIORITY"] = 1853817087
    check.attributes["ICE-CONTROLLING"] = 42
    check.attributes["USE-CANDIDATE"] = None
    check.add_message_integrity(params["password"].encode("utf8"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.sendto(bytes(check), ("127.0.0.1", router.worker.settings.rtc_port))
        (state,) = await events.wait_for("icestatechange")
        (selected,) = await events.wait_for("iceselectedtuplechange")
        assert state in ("connected", "completed")
        assert transport.ice_state in ("connected", "completed")
        assert selected["remotePort"] == peer.getsockname()[1] == transport.ice_selected_tuple["remotePort"]
    assert other_events.seen == []
    await transport.close()
    assert (transport.ice_state, transport.dtls_state, transport.ice_selected_tuple) == ("closed", "closed", None)


async def test_produce_consume_pause_and_layers(router, room):
    send, recv, audio, video = room
    assert (audio.kind, audio.type, video.type) == ("audio", "simple", "simulcast")
    assert video.rtp_parameters["rtcp"]["cname"] == audio.rtp_parameters["rtcp"]["cname"]
    assert [e["ssrc"] for e in video.consumable_rtp_parameters["encodings"]] == [
        m["mappedSsrc"] for m in video.rtp_mapping["encodings"]
    ]
    caps = recv_caps(router.rtp_capabilities)
    audio_consumer = await recv.consume(audio.id, caps, app_data={"n": 1})
    video_consumer = await recv.consume(video.id, caps, paused=False)
    assert [audio_consumer.rtp_parameters["mid"], video_consumer.rtp_parameters["mid"]] == ["0", "1"]
    assert (audio_consumer.type, audio_consumer.preferred_layers) == ("simple", None)
    assert video_consumer.type == "simulcast"
    assert video_consumer.preferred_layers == {"spatialLayer": 2, "temporalLayer": 2}
    assert (audio_consumer.paused, video_consumer.paused) == (True, False)
    assert audio_consumer.app_data == {"n": 1} and send.app_data == {"peer": "alice"}
    assert recv.consumers == {audio_consumer.id: audio_consumer, video_consumer.id: video_consumer}
    assert video.consumers == {video_consumer.id: video_consumer}

    events = Events()
    events.watch(video_consumer, "producerpause", "producerresume")
    await video.pause()
    assert video.paused and video_consumer.producer_paused
    await video.pause()  # no second event
    late = await recv.consume(video.id, caps, preferred_layers={"spatialLayer": 7, "temporalLayer": 0})
    assert late.producer_paused and late.preferred_layers == {"spatialLayer": 2, "temporalLayer": 0}
    await video.resume()
    assert events.names() == ["producerpause", "producerresume"]
    assert not late.producer_paused

    await video_consumer.set_preferred_layers(0)
    assert video_consumer.preferred_layers == {"spatialLayer": 0, "temporalLayer": 2}
    with pytest.raises(InvalidInputError):
        await video_consumer.set_preferred_layers(-1)
    await audio_consumer.resume()
    assert not audio_consumer.paused
    await audio_consumer.pause()
    assert audio_consumer.paused
    await video_consumer.request_key_frame()
    for obj in (audio, video, audio_consumer, video_consumer):
        assert isinstance(await obj.get_stats(), list)
    dump = await router.dump()
    assert set(dump["transportIds"]) == {send.id, recv.id}
    assert set(dump["producerIds"]) == {audio.id, video.id}


async def _worker_tables(worker: Worker) -> dict[str, int]:
    return (await worker.request("worker.dump"))["tables"]


async def test_producer_close_closes_its_consumers_everywhere(router, room):
    send, recv, audio, video = room
    third = await router.create_webrtc_transport()
    caps = recv_caps(router.rtp_capabilities)
    on_recv = await recv.consume(video.id, caps)
    on_third = await third.consume(video.id, caps)
    kept = await recv.consume(audio.id, caps)
    events = Events()
    events.watch(on_recv, "producerclose", "transportclose", label="recv:")
    events.watch(on_third, "producerclose", "transportclose", label="third:")
    events.watch(video, "transportclose", label="video:")

    await video.close()
    assert video.closed and on_recv.closed and on_third.closed and not kept.closed
    assert sorted(events.names()) == ["recv:producerclose", "third:producerclose"]
    assert video.id not in router.producers and video.id not in send.producers
    assert recv.consumers == {kept.id: kept} and third.consumers == {} and video.consumers == {}
    with pytest.raises(NotFoundError):
        await recv.consume(video.id, caps)
    tables = await _worker_tables(router.worker)
    assert (tables["producers"], tables["consumerObjects"]) == (1, 1)


async def test_transport_close_cascades(router, room):
    send, recv, audio, video = room
    caps = recv_caps(router.rtp_capabilities)
    audio_consumer = await recv.consume(audio.id, caps)
    video_consumer = await recv.consume(video.id, caps)
    back = await send.consume(audio.id, caps)  # a consumer on the producing transport itself
    events = Events()
    for name, obj in (("audio", audio), ("video", video), ("audio_consumer", audio_consumer),
                      ("video_consumer", video_consumer), ("back", back), ("send", send)):
        events.watch(obj, "transportclose", "producerclose", "routerclose", "@close", label=f"{name}:")

    await send.close()
    assert sorted(events.names()) == [
        "audio:transportclose", "audio_consumer:producerclose", "back:transportclose",
        "send:@close", "video:transportclose", "video_consumer:producerclose",
    ]
    assert router.transports == {recv.id: recv} and router.producers == {}
    assert recv.consumers == {} and audio.consumers == {} and video.consumers == {}
    assert_closed_and_empty(send)
    tables = await _worker_tables(router.worker)
    assert (tables["transportObjects"], tables["producers"], tables["consumerObjects"]) == (1, 0, 0)

    # The consuming side closing leaves the producer (and its other consumers) alone.
    other_send = await router.create_webrtc_transport()
    mic = await other_send.produce("audio", OPUS_PARAMS)
    c1 = await recv.consume(mic.id, caps)
    viewer = await router.create_webrtc_transport()
    c2 = await viewer.consume(mic.id, caps)
    events.watch(c1, "transportclose", "producerclose", label="c1:")
    await recv.close()
    assert c1.closed and events.names()[-1] == "c1:transportclose"
    assert mic.consumers == {c2.id: c2} and not mic.closed and not c2.closed


async def test_router_close_cascades_and_empties_every_table(worker, router, room):
    send, recv, audio, video = room
    caps = recv_caps(router.rtp_capabilities)
    consumers = [await recv.consume(audio.id, caps), await recv.consume(video.id, caps)]
    events = Events()
    events.watch(router, "@close", "workerclose", label="router:")
    for obj in (send, recv):
        events.watch(obj, "routerclose", "@close", label="transport:")
    for obj in (audio, video, *consumers):
        events.watch(obj, "transportclose", "producerclose", label="child:")

    await router.close()
    assert sorted(events.names()) == ["child:transportclose"] * 4 + ["router:@close"] + ["transport:routerclose"] * 2
    assert worker.routers == {}
    assert_closed_and_empty(router, send, recv, audio, video, *consumers)
    tables = await _worker_tables(worker)
    assert (tables["routers"], tables["transportObjects"], tables["producers"], tables["consumerObjects"]) == (
        0, 0, 0, 0)
    await router.close()  # no-op


async def test_worker_death_closes_everything_with_events(worker, router, room):
    send, recv, audio, video = room
    consumer = await recv.consume(video.id, recv_caps(router.rtp_capabilities))
    events = Events()
    events.watch(router, "workerclose", "@close", label="router:")
    events.watch(send, "routerclose", label="send:")
    events.watch(recv, "routerclose", label="recv:")
    events.watch(video, "transportclose", label="video:")
    events.watch(consumer, "transportclose", "producerclose", label="consumer:")
    events.watch(worker, "died")

    worker.process.send_signal(signal.SIGKILL)
    await events.wait_for("died")
    assert sorted(events.names()) == [
        "consumer:transportclose", "died", "recv:routerclose", "router:workerclose",
        "send:routerclose", "video:transportclose",
    ]
    assert worker.routers == {}
    assert_closed_and_empty(router, send, recv, audio, video, consumer)
    assert (send.ice_state, send.dtls_state) == ("closed", "closed")
    with pytest.raises(InvalidStateError):
        await consumer.resume()
    await consumer.close()  # closing what is already closed never reaches the dead worker


async def test_worker_close_closes_its_routers(worker, router, room):
    events = Events()
    events.watch(router, "workerclose")
    await worker.close()
    assert events.names() == ["workerclose"]
    assert worker.routers == {}
    assert_closed_and_empty(router, *room)


async def test_plain_transport_arguments_are_checked(router):
    with pytest.raises(InvalidInputError):
        await router.create_plain_transport(srtp_crypto_suite="NULL")
    with pytest.raises(InvalidInputError):
        await router.create_webrtc_transport(enable_udp=False, enable_tcp=False)
    assert router.transports == {}


async def test_plain_transport_connects_once(router):
    transport = await router.create_plain_transport(rtcp_mux=False)
    assert transport.tuple["localPort"] and transport.tuple["protocol"] == "udp"
    with pytest.raises(InvalidInputError):
        await transport.connect(ip="127.0.0.1", port=5004)  # rtcpPort missing without rtcp-mux
    with pytest.raises(InvalidInputError):
        await transport.connect(ip="not-an-ip", port=5004, rtcp_port=5005)
    await transport.connect(ip="127.0.0.1", port=5004, rtcp_port=5005)
    with pytest.raises(InvalidStateError):
        await transport.connect(ip="127.0.0.1", port=5004, rtcp_port=5005)
    audio = await transport.produce("audio", OPUS_PARAMS)
    await transport.close()
    assert audio.closed and router.producers == {} and router.transports == {}


async def test_comedia_plain_transport_learns_its_remote_from_the_first_packet(router):
    transport = await router.create_plain_transport(comedia=True)
    other = await router.create_webrtc_transport()
    events, other_events = Events(), Events()
    events.watch(transport, "tuple")
    other_events.watch(other, "icestatechange", "iceselectedtuplechange", "dtlsstatechange")
    await transport.connect()
    rtp = bytes([0x80, 111, 0, 1, 0, 0, 0, 0]) + (3861594723).to_bytes(4, "big") + bytes(20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ffmpeg:
        ffmpeg.bind(("127.0.0.1", 0))
        ffmpeg.sendto(rtp, ("127.0.0.1", router.worker.settings.rtc_port))
        (learnt,) = await events.wait_for("tuple")
        assert (learnt["remoteIp"], learnt["remotePort"]) == ffmpeg.getsockname()
    assert transport.tuple == learnt and other_events.seen == []
