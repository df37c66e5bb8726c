"""Recording a call through the whole server: aiortc publishers over signaling, REST to start and stop,
`recording-changed` to the room, and the files opened, demuxed and decoded with PyAV."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from pathlib import Path

import aiohttp
import av
import pytest

from tests.media.client import receive_frames
from tests.media.signaled_client import Participant
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, ToneTrack
from tests.signaling_server import ServerProcess, signed_in

pytestmark = pytest.mark.timeout(120)

RECORD_SECONDS = 10


async def rest(sdk, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    """A REST call as the SDK's user; (status, JSON body or raw bytes)."""
    async with aiohttp.ClientSession() as http, http.request(
            method, sdk.base_url + path, json=body, headers={"Authorization": f"Bearer {sdk.token}"}) as response:
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, (response.content_type, raw)


async def hearing_recordings(sdk):
    """A signed-in SDK client that queues `recording-changed`. The SDK lists the event itself; this
    registers it again (python-socketio keeps one handler per event, so it is the same one) for an
    SDK installed from an older checkout than the server's."""
    sdk.sio.on("recording-changed", sdk._handler("recording-changed"))
    return sdk


def inspect_file(path: Path) -> dict:
    """What PyAV finds in a recorded file: per stream kind, codec, first and last time (s), size, and
    how many frames decode."""
    found: dict = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            found[stream.type] = {"codec": stream.codec_context.name, "times": []}
            if stream.type == "video":
                found["video"]["size"] = (stream.codec_context.width, stream.codec_context.height)
        for packet in container.demux():
            if packet.pts is not None:
                found[packet.stream.type]["times"].append(float(packet.pts * packet.time_base))
    with av.open(str(path)) as container:
        if "video" in found:
            frames = list(container.decode(video=0))
            found["video"]["decoded"] = len(frames)
            found["video"]["decoded_size"] = (frames[-1].width, frames[-1].height) if frames else None
    with av.open(str(path)) as container:
        if "audio" in found:
            found["audio"]["decoded"] = sum(1 for _ in container.decode(audio=0))
    for kind in ("audio", "video"):
        if kind in found:
            times = found[kind]["times"]
            found[kind]["start"], found[kind]["end"] = min(times), max(times)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recording")
    process = ServerProcess(f"sqlite+aiosqlite:///{folder}/r.db",
                            extra_env={"SWITCHYARD_RECORDINGS_DIR": str(folder / "recordings"),
                                       "SWITCHYARD_RECORDING_MIN_FREE_BYTES": "1048576"})
    yield process
    err = process.stop()
    assert "Traceback" not in err, err


async def test_a_two_party_call_is_recorded_and_stopped_mid_call(server, tmp_path):
    alice_video, alice_audio, bob_video, bob_audio = MovingBarTrack(), ToneTrack(), MovingBarTrack(), ToneTrack()
    alice = Participant(await signed_in(server.url, "Alice"), [alice_video, alice_audio])
    bob = Participant(await hearing_recordings(await signed_in(server.url, "Bob")), [bob_video, bob_audio])
    room = await alice.sdk.create_room("recorded")
    await alice.join(room["id"])
    await bob.join(room["id"])
    producer = await alice.produce(alice_video)
    await alice.produce(alice_audio)
    consumer, _ = await bob.consume(producer.id)
    base = f"/api/rooms/{room['id']}/recordings"

    status, started = await rest(alice.sdk, "POST", base, {})
    assert status == 201, started
    recording = started["recording"]
    assert recording["state"] == "recording" and recording["producerId"] is None
    changed = await bob.sdk.wait_for("recording-changed")
    assert changed["roomId"] == room["id"] and changed["recording"]["id"] == recording["id"]
    assert changed["recording"]["state"] == "recording"
    # bob starts publishing after the recording began: a room recording takes new producers too
    await bob.produce(bob_video)
    await bob.produce(bob_audio)
    await asyncio.sleep(RECORD_SECONDS)
    status, listed = await rest(bob.sdk, "GET", base)
    assert status == 200 and listed["recordings"][0]["state"] == "recording"
    assert listed["recordings"][0]["sizeBytes"] > 0 and listed["recordings"][0]["durationMs"] > 5000

    # stopped while the call goes on: the files are closed and playable, the call is untouched
    status, stopped = await rest(alice.sdk, "DELETE", f"{base}/{recording['id']}")
    assert status == 200, stopped
    stopped = stopped["recording"]
    assert stopped["state"] == "stopped" and stopped["stopReason"] == "stopped"
    changed = await bob.sdk.wait_for("recording-changed", lambda d: d["recording"]["state"] == "stopped")
    assert changed["recording"]["files"] == stopped["files"]
    assert len(stopped["files"]) == 2, stopped["files"]  # one file per peer: audio and video together
    assert stopped["sizeBytes"] == sum(f["sizeBytes"] for f in stopped["files"])
    assert abs(stopped["durationMs"] - RECORD_SECONDS * 1000) < 2500, stopped
    frames, _ = await receive_frames(consumer.track, 10)
    assert len(frames) == 10

    status, refused = await rest(bob.sdk, "GET", f"{base}/{recording['id']}/file")
    assert status == 403 and refused["error"]["code"] == "forbidden"
    status, (content_type, body) = await rest(alice.sdk, "GET", f"{base}/{recording['id']}/file")
    assert status == 200 and content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(archive.namelist()) == sorted(f["name"] for f in stopped["files"])
        archive.extractall(tmp_path)
    for entry in stopped["files"]:
        found = inspect_file(tmp_path / entry["name"])
        assert entry["name"].endswith(".webm")
        video, audio = found["video"], found["audio"]
        assert video["codec"] == "vp8" and audio["codec"] == "opus"
        assert video["size"] == (WIDTH, HEIGHT) == video["decoded_size"]
        # audio and video start together (the file starts at the first key frame)...
        assert abs(video["start"] - audio["start"]) < 0.1, found
        # ...and last about as long as the recording ran (bob's producers came a moment, two produce
        # requests, after it started)
        earliest = RECORD_SECONDS - (1.5 if entry["name"].startswith("Alice-") else 4)
        for kind in (video, audio):
            assert earliest < kind["end"] - kind["start"] < RECORD_SECONDS + 1.5, found
        # every frame decodes (aiortc sends up to 30 a second, fewer when the machine is busy)
        assert video["decoded"] == len(video["times"]) and video["decoded"] > 5 * earliest
        assert audio["decoded"] > 25 * earliest
    # the stopped recording as listed: its row in the database
    status, listed = await rest(alice.sdk, "GET", base)
    assert listed["recordings"][0] == stopped
    await alice.close()
    await bob.close()


async def test_the_size_cap_stops_a_recording_cleanly_and_the_call_goes_on(tmp_path):
    cap = 12_000  # the moving bar is cheap to code: about 2 kB a second
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/c.db",
                           extra_env={"SWITCHYARD_RECORDINGS_DIR": str(tmp_path / "recordings"),
                                      "SWITCHYARD_RECORDING_MAX_BYTES": str(cap),
                                      "SWITCHYARD_RECORDING_MIN_FREE_BYTES": "1048576"})
    try:
        video, audio = MovingBarTrack(), ToneTrack()
        alice = Participant(await signed_in(server.url, "Alice"), [video, audio])
        bob = Participant(await hearing_recordings(await signed_in(server.url, "Bob")))
        room = await alice.sdk.create_room("capped")
        await alice.join(room["id"])
        await bob.join(room["id"])
        producer = await alice.produce(video)
        await alice.produce(audio)
        consumer, _ = await bob.consume(producer.id)
        base = f"/api/rooms/{room['id']}/recordings"
        status, started = await rest(alice.sdk, "POST", base, {"producerId": producer.id})
        assert status == 201 and started["recording"]["producerId"] == producer.id
        changed = await bob.sdk.wait_for("recording-changed", lambda d: d["recording"]["state"] == "stopped",
                                         timeout=30)
        stopped = changed["recording"]
        assert stopped["stopReason"] == "size_limit"
        assert cap <= stopped["sizeBytes"] < cap * 1.5 and len(stopped["files"]) == 1
        status, (content_type, body) = await rest(alice.sdk, "GET", f"{base}/{stopped['id']}/file")
        assert status == 200 and content_type == "video/webm"
        path = tmp_path / stopped["files"][0]["name"]
        path.write_bytes(body)
        found = inspect_file(path)
        assert set(found) == {"video"} and found["video"]["decoded"] > 10
        # the call did not notice
        started_at = time.monotonic()
        frames, _ = await receive_frames(consumer.track, 30)
        assert len(frames) == 30 and time.monotonic() - started_at < 5
        # the cap freed the producer: it can be recorded again
        status, again = await rest(alice.sdk, "POST", base, {"producerId": producer.id})
        assert status == 201, again
        for _ in range(50):  # until its first frames are written
            status, listed = await rest(alice.sdk, "GET", base)
            if listed["recordings"][0]["sizeBytes"] > 0:
                break
            await asyncio.sleep(0.2)
        # everyone leaves: the room's media closes, and the recording with it, its file kept
        await alice.close()
        await bob.close()
        for _ in range(50):
            status, listed = await rest(alice.sdk, "GET", base)
            if listed["recordings"][0]["state"] != "recording":
                break
            await asyncio.sleep(0.2)
        ended = listed["recordings"][0]
        assert ended["id"] == again["recording"]["id"]
        assert (ended["state"], ended["stopReason"], len(ended["files"])) == ("stopped", "room_closed", 1), ended
    finally:
        err = server.stop()
    assert "Traceback" not in err, err
