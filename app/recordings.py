"""Recordings of rooms: start and stop them on the live room, keep their rows, tell the room.

A room recording takes every producer in the room, and every producer that joins while it runs
(the signaling registry's producer listeners); a producer recording takes one. Each runs a
`media.recorder.Recorder` on the room's router. Its files go to `<recordings_dir>/<roomId>/<id>/`,
one file group per peer (`<name>-<peer>-NNN.webm`), a new segment on a resolution change.
Whatever ends a recording (the owner, the size cap, low disk, the room closing) ends in `_finished`:
the row is updated and the room hears `recording-changed`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from app.errors import ApiError
from app.models import Recording
from app.schemas import iso_utc
from common.log import get_logger
from media.api.errors import SwitchyardError
from media.recorder.session import Recorder
from signaling.handlers.media import announce_layers_needed

if TYPE_CHECKING:
    from app.config import Settings
    from app.store import Store
    from media.api.producer import Producer
    from signaling.peer import Peer
    from signaling.room import Room
    from signaling.server import SignalingServer

log = get_logger("recordings")

# Stop reasons that still leave a good file; anything else marks the recording failed.
CLEAN_ENDS = {"stopped", "size_limit", "disk_full", "room_closed", "server_stopped"}
ZIP_NAME = "recording.zip"


@dataclass(eq=False)
class Active:
    record: Recording
    recorder: Recorder
    directory: str
    groups: dict[str, str] = field(default_factory=dict)  # producer id -> file group


def safe_name(text: str) -> str:
    """A display name as a file name part: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:32] or "peer"


def recording_json(record: Recording, active: Active | None = None) -> dict[str, Any]:
    """The contract's `recording` shape (REST and the `recording-changed` event)."""
    files = json.loads(record.files or "[]")
    size, duration = record.size_bytes, record.duration_ms
    if active is not None:
        media_bytes, seconds = active.recorder.stats
        files = [{"name": os.path.basename(path), "sizeBytes": size}
                 for path, size in active.recorder.file_sizes()]
        size, duration = max(media_bytes, sum(f["sizeBytes"] for f in files)), round(seconds * 1000)
    return {
        "id": record.id,
        "roomId": record.room_id,
        "producerId": record.producer_id,
        "state": record.state,
        "stopReason": record.stop_reason,
        "startedAt": iso_utc(record.started_at),
        "stoppedAt": iso_utc(record.stopped_at) if record.stopped_at else None,
        "sizeBytes": size,
        "durationMs": duration,
        "files": files,
    }


class Recordings:
    """The node's running recordings, by id."""

    def __init__(self, settings: Settings, store: Store, signaling: SignalingServer):
        self.settings = settings
        self.store = store
        self.signaling = signaling
        self.registry = signaling.registry
        self.active: dict[str, Active] = {}
        self.registry.producer_listeners.append(self._producer_added)

    async def emit(self, data: dict[str, Any], room_id: str) -> None:
        """`recording-changed` to everyone in the room."""
        await self.signaling.sio.emit("recording-changed", data, room=room_id)

    def directory(self, record: Recording) -> str:
        return os.path.join(self.settings.recordings_dir, record.room_id, record.id)

    def check_disk(self) -> None:
        """Refuse to start when the recordings' disk has less free space than the configured minimum."""
        os.makedirs(self.settings.recordings_dir, exist_ok=True)
        free = shutil.disk_usage(self.settings.recordings_dir).free
        if free < self.settings.recording_min_free_bytes:
            raise ApiError(507, "insufficient_storage",
                           f"only {free} bytes free where recordings are written; "
                           f"at least {self.settings.recording_min_free_bytes} are needed to start one")

    def running_in(self, room_id: str) -> list[Active]:
        return [a for a in self.active.values() if a.record.room_id == room_id]

    async def start(self, room_id: str, user_id: str, producer_id: str | None) -> Recording:
        live = self.registry.rooms.get(room_id)
        if live is None:
            raise ApiError(409, "invalid_state", "nobody is in this room on this node: a recording starts "
                                                  "once the call has begun")
        owner = None
        if producer_id is not None:
            owner = live.producer_owner(producer_id)
            if owner is None:
                raise ApiError(404, "not_found", "no such producer in this room")
        for active in self.running_in(room_id):
            if active.record.producer_id is None or active.record.producer_id == producer_id:
                raise ApiError(409, "conflict", f"recording {active.record.id} already records "
                                                + ("this room" if active.record.producer_id is None else "this producer"))
        record = await self.store.create_recording(room_id=room_id, started_by=user_id, producer_id=producer_id)
        directory = self.directory(record)
        recorder = Recorder(live.router, directory, max_bytes=self.settings.recording_max_bytes,
                            min_free_bytes=self.settings.recording_min_free_bytes)
        active = Active(record, recorder, directory)
        recorder.on_done = lambda summary: self._finished(active, summary)
        self.active[record.id] = active
        try:
            await recorder.start()
            if owner is not None:
                await self._add(active, owner, owner.producers[producer_id])
            else:
                for peer in list(live.peers.values()):
                    for producer in list(peer.producers.values()):
                        await self._add(active, peer, producer)
        except SwitchyardError as exc:  # the room closed meanwhile
            await recorder.stop("error")
            raise ApiError(409, "invalid_state", f"the recording could not start: {exc.message}") from None
        except OSError as exc:  # the recordings folder cannot be written (its thread never started)
            self.active.pop(record.id, None)
            await self.store.recording_stopped(record.id, state="failed", stop_reason="error", size_bytes=0,
                                               duration_ms=0, files="[]")
            log.error("recording %s could not start: %s", record.id, exc)
            raise ApiError(500, "internal_error", "the recordings folder cannot be written") from None
        log.info("recording %s of room %s started (%s)", record.id, room_id, producer_id or "every producer")
        await self.emit({"roomId": room_id, "recording": recording_json(record, active)}, room_id)
        return record

    async def _add(self, active: Active, peer: Peer, producer: Producer) -> None:
        """One producer into the recording: a peer's first audio and first video share a file."""
        base = (f"producer-{producer.id[:8]}" if active.record.producer_id
                else f"{safe_name(peer.display_name)}-{peer.peer_id[:8]}")
        taken = {g for pid, g in active.groups.items()
                 if pid in active.recorder.consumers and active.recorder.consumers[pid].kind == producer.kind}
        group = base if base not in taken else f"{base}-{producer.id[:8]}"
        try:
            # a spread room's producer of another worker is piped to the recorder's router first
            await self.registry.placement.pipe_for(producer, active.recorder.router)
            consumer = await active.recorder.add(producer, group)
        except SwitchyardError as exc:  # the producer closed meanwhile, or its codec cannot be recorded
            log.warning("recording %s: producer %s not recorded: %s", active.record.id, producer.id, exc.message)
            return
        if consumer is not None:
            active.groups[producer.id] = group
            if producer.type == "simulcast":
                # its top layer is wanted now: a publisher that turns off unused layers turns it on
                await announce_layers_needed(self.signaling, peer, producer.id)

    async def _producer_added(self, room: Room, peer: Peer, producer: Producer) -> None:
        for active in self.running_in(room.id):
            if active.record.producer_id is None and active.recorder.active:
                await self._add(active, peer, producer)

    async def stop(self, record: Recording) -> Recording:
        active = self.active.get(record.id)
        if active is None:
            if record.state == "recording":  # with many nodes: running on the node hosting the room
                raise ApiError(409, "invalid_state", "this recording runs on another node: send the request "
                                                      "to the node that hosts the room")
            return record
        await active.recorder.stop("stopped")
        return await self.store.recording(record.room_id, record.id) or record

    async def stop_all(self, *_: Any) -> None:
        """At shutdown: every file closed and every row written before the database goes."""
        await asyncio.gather(*(a.recorder.stop("server_stopped") for a in list(self.active.values())),
                             return_exceptions=True)

    async def abandon_stale(self, *_: Any) -> None:
        """At startup on a single node: rows a killed run left `recording` are stopped."""
        if not self.settings.redis_url:
            count = await self.store.abandon_recordings()
            if count:
                log.warning("%d recording(s) of an earlier run were left running: marked stopped", count)

    async def _finished(self, active: Active, summary: dict) -> None:
        self.active.pop(active.record.id, None)
        live = self.registry.rooms.get(active.record.room_id)
        for producer_id in active.groups if live is not None else ():
            owner = live.producer_owner(producer_id)
            if owner is not None:  # the top layer may be needed no more: dynacast can turn it off
                await announce_layers_needed(self.signaling, owner, producer_id)
        files = [{"name": os.path.basename(path), "sizeBytes": size} for path, size in summary["files"]]
        reason = summary["reason"]
        record = await self.store.recording_stopped(
            active.record.id, state="stopped" if reason in CLEAN_ENDS else "failed", stop_reason=reason,
            size_bytes=sum(f["sizeBytes"] for f in files), duration_ms=round(summary["duration"] * 1000),
            files=json.dumps(files))
        log.info("recording %s stopped (%s): %d file(s), %d bytes, %.1f s", active.record.id, reason, len(files),
                 sum(f["sizeBytes"] for f in files), summary["duration"])
        if record is not None:
            await self.emit({"roomId": record.room_id, "recording": recording_json(record)}, record.room_id)

    def json(self, record: Recording) -> dict[str, Any]:
        return recording_json(record, self.active.get(record.id))

    async def download(self, record: Recording) -> web.StreamResponse:
        """The single file as it is (video/webm or video/x-matroska), or several in a zip."""
        if record.id in self.active or record.state == "recording":
            raise ApiError(409, "invalid_state", "the recording is still running: stop it first")
        directory = self.directory(record)
        names = [f["name"] for f in json.loads(record.files or "[]")]
        paths = [os.path.join(directory, name) for name in names if os.path.isfile(os.path.join(directory, name))]
        if not paths:
            raise ApiError(404, "not_found", "this recording has no files")
        if len(paths) == 1:
            kind = "video/webm" if paths[0].endswith(".webm") else "video/x-matroska"
            return web.FileResponse(paths[0], headers={
                "Content-Type": kind, "Content-Disposition": f'attachment; filename="{os.path.basename(paths[0])}"'})
        archive = os.path.join(directory, ZIP_NAME)
        if not os.path.isfile(archive):
            await asyncio.get_running_loop().run_in_executor(None, write_zip, archive, paths)
        return web.FileResponse(archive, headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="recording-{record.id[:8]}.zip"'})


def write_zip(archive: str, paths: list[str]) -> None:
    """Stored, not deflated (the media is compressed already); written aside, then renamed into place."""
    partial = archive + ".part"
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as out:
        for path in paths:
            out.write(path, os.path.basename(path))
    os.replace(partial, archive)


RECORDINGS = web.AppKey("recordings", Recordings)
