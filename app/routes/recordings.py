"""`/api/rooms/{roomId}/recordings`: start, stop, list and download a room's recordings (docs/rest.md)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from app.api import Call, Endpoint, reply
from app.errors import ApiError
from app.models import ID_LENGTH, Recording, Room
from app.recordings import RECORDINGS, Recordings
from app.routes.rooms import live_room
from app.schemas import Answer, Body, Timestamp


class StartRecordingBody(Body):
    producer_id: str | None = Field(None, max_length=ID_LENGTH,
                                    description="Record this producer only; without it, the whole room.")


class RecordingFile(Answer):
    name: str
    size_bytes: int


class RecordingOut(Answer):
    """A recording: `recording` while it runs (size and duration so far), then `stopped` or `failed`."""

    id: str
    room_id: str
    producer_id: str | None
    state: Literal["recording", "stopped", "failed"]
    stop_reason: str | None = Field(description="`stopped` (by the owner), `size_limit`, `disk_full`, "
                                                "`room_closed`, `server_stopped` or `error`.")
    started_at: Timestamp
    stopped_at: Timestamp | None
    size_bytes: int
    duration_ms: int
    files: list[RecordingFile]


class RecordingAnswer(Answer):
    recording: RecordingOut


class RecordingsAnswer(Answer):
    recordings: list[RecordingOut] = Field(description="Newest first.")


def service(call: Call) -> Recordings:
    return call.request.app[RECORDINGS]


def owner_only(call: Call, room: Room, what: str) -> None:
    if room.owner_id != call.me.id:
        raise ApiError(403, "forbidden", f"only the room's owner can {what}")


async def the_recording(call: Call, room: Room) -> Recording:
    record = await call.store.recording(room.id, call.request.match_info["recordingId"])
    if record is None:
        raise ApiError(404, "not_found", "no such recording in this room")
    return record


def out(call: Call, record: Recording) -> RecordingOut:
    return RecordingOut.model_validate(service(call).json(record))


async def start_recording(call: Call):
    room = await live_room(call)
    owner_only(call, room, "record it")
    body: StartRecordingBody = call.body
    recordings = service(call)
    recordings.check_disk()
    record = await recordings.start(room.id, call.me.id, body.producer_id)
    return reply(RecordingAnswer(recording=out(call, record)), status=201)


async def stop_recording(call: Call):
    room = await live_room(call)
    owner_only(call, room, "stop a recording")
    record = await service(call).stop(await the_recording(call, room))
    return reply(RecordingAnswer(recording=out(call, record)))


async def list_recordings(call: Call):
    room = await live_room(call)
    records = await call.store.recordings(room.id)
    return reply(RecordingsAnswer(recordings=[out(call, r) for r in records]))


async def download_recording(call: Call) -> web.StreamResponse:
    room = await live_room(call)
    owner_only(call, room, "download its recordings")
    return await service(call).download(await the_recording(call, room))


ENDPOINTS = [
    Endpoint("POST", "/api/rooms/{roomId}/recordings", start_recording, "Start recording", "recordings",
             status=201, answer=RecordingAnswer, body=StartRecordingBody,
             errors=(400, 401, 403, 404, 409, 413, 415, 422, 507),
             description="Owner only. Records every producer of the room, and each that joins later, or "
                         "`producerId` only. The call must have begun on this node (409 `invalid_state`); "
                         "one room recording, or one per producer, at a time (409 `conflict`); refused with "
                         "507 `insufficient_storage` when the disk has less free space than configured."),
    Endpoint("GET", "/api/rooms/{roomId}/recordings", list_recordings, "List a room's recordings", "recordings",
             answer=RecordingsAnswer, errors=(401, 404),
             description="Anyone signed in (the web app shows a red dot while one runs). A running "
                         "recording shows its size and duration so far."),
    Endpoint("DELETE", "/api/rooms/{roomId}/recordings/{recordingId}", stop_recording, "Stop a recording",
             "recordings", answer=RecordingAnswer, errors=(401, 403, 404, 409),
             description="Owner only. The files are closed and playable when this answers; stopping a "
                         "stopped recording answers it as it is. 409 `invalid_state`: it runs on "
                         "another node (the one hosting the room)."),
    Endpoint("GET", "/api/rooms/{roomId}/recordings/{recordingId}/file", download_recording,
             "Download a recording", "recordings", answer=None, errors=(401, 403, 404, 409),
             media_type="application/octet-stream",
             description="Owner only, once stopped. One file: that file (`video/webm`, or "
                         "`video/x-matroska` for H264). Several (a peer each, or segments): a zip of them "
                         "(`application/zip`, stored uncompressed)."),
]
