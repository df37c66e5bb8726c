"""The recorder's own thread: datagrams in, files out, off the event loop and off the worker.

The event loop only queues each datagram (a bounded queue: when the thread falls behind, datagrams
are dropped and counted, and video waits for its next key frame; the call never waits for the disk).
Everything else happens here: RTP/RTCP parsing, frame assembly, the wall-clock mapping from sender
reports, muxing, and the disk limits. PyAV releases the GIL while FFmpeg writes.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket

from common.log import get_logger
from media.recorder.clock import RtpClock
from media.recorder.depacketize import DEPACKETIZERS, Depacketizer
from media.recorder.segments import Group, SegmentWriter, Track

log = get_logger("media.recorder")

MAX_QUEUED_DATAGRAMS = 4096  # about 4 s of a 2.5 Mbit/s call's packets
TICK_SECONDS = 0.2
DISK_CHECK_SECONDS = 1.0
KEY_FRAME_INTERVAL = 1.0  # at most one key frame request per track and second
# Stop reasons (the REST `stopReason`)
STOPPED = "stopped"
SIZE_LIMIT = "size_limit"
DISK_FULL = "disk_full"
FAILED = "error"


@dataclass(eq=False)
class Incoming:
    track: Track
    group: Group
    payload_type: int
    depacketizer: Depacketizer
    clock: RtpClock
    key_asked: float = 0.0


class RecorderThread(threading.Thread):
    """`notify(event, data)` is called from this thread: the owner hands it to its event loop.
    Events: `keyframe` (track id), `done` (a summary dict: reason, files, bytes, duration)."""

    def __init__(self, directory: str, max_bytes: int, min_free_bytes: int,
                 notify: Callable[[str, object], None]):
        super().__init__(name="recorder", daemon=True)
        self.directory = directory
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.notify = notify
        self.inbox: queue.Queue = queue.Queue(maxsize=MAX_QUEUED_DATAGRAMS)
        self.control: queue.SimpleQueue = queue.SimpleQueue()  # never dropped, read before each datagram
        self.by_ssrc: dict[int, Incoming] = {}
        self.groups: dict[str, Group] = {}
        self.writer = SegmentWriter(directory)
        self.writer.want_key = self._want_key
        self.queue_drops = 0
        self.reason: str | None = None
        self._tracks: dict[str, Incoming] = {}

    # ---- from the event loop ------------------------------------------------------------------

    def feed(self, data: bytes, arrival: float) -> None:
        try:
            self.inbox.put_nowait((data, arrival))
        except queue.Full:
            self.queue_drops += 1

    def add_track(self, track_id: str, group: str, kind: str, mime: str, ssrc: int, payload_type: int,
                  clock_rate: int, channels: int = 2) -> None:
        self.control.put(("track", (track_id, group, kind, mime, ssrc, payload_type, clock_rate, channels)))

    def end_track(self, track_id: str) -> None:
        self.control.put(("end", track_id))

    def stop(self, reason: str = STOPPED) -> None:
        self.control.put(("stop", reason))

    @property
    def stats(self) -> tuple[int, float]:
        """(media bytes written, seconds covered) so far; read from any thread (plain numbers)."""
        return self.writer.media_bytes, self.writer.duration

    # ---- the thread -----------------------------------------------------------------------------

    def run(self) -> None:
        next_check = 0.0
        try:
            while self.reason is None:
                self._control()
                if self.reason is not None:
                    break
                try:
                    data, arrival = self.inbox.get(timeout=TICK_SECONDS)
                except queue.Empty:
                    data = None
                if data is not None:
                    self._datagram(data, arrival)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + DISK_CHECK_SECONDS
                    self._check_limits()
                    wall = time.time()
                    for group in self.groups.values():
                        self.writer.try_open(group, wall)
                elif self.writer.media_bytes >= self.max_bytes:
                    self._check_limits()
        except OSError as exc:  # the disk refused a write: keep what is written, stop cleanly
            log.error("recording in %s stopped: %s", self.directory, exc)
            self.reason = DISK_FULL if exc.errno == 28 else FAILED
        except Exception:
            log.exception("recording in %s failed", self.directory)
            self.reason = FAILED
        finally:
            for group in self.groups.values():
                self.writer.close_segment(group)
            bytes_written, duration = self.stats
            self.notify("done", {"reason": self.reason or FAILED, "files": self.writer.sizes(),
                                 "bytes": bytes_written, "duration": duration, "queueDrops": self.queue_drops})

    def _control(self) -> None:
        while True:
            try:
                command, value = self.control.get_nowait()
            except queue.Empty:
                return
            if command == "track":
                self._add(*value)
            elif command == "end":
                self._end(value)
            elif command == "stop":
                self.reason = value
                return

    def _add(self, track_id: str, group_name: str, kind: str, mime: str, ssrc: int, payload_type: int,
             clock_rate: int, channels: int) -> None:
        group = self.groups.get(group_name)
        if group is None:
            group = self.groups[group_name] = Group(group_name)
        track = Track(track_id, kind, mime, channels)
        group.tracks.append(track)
        incoming = Incoming(track, group, payload_type, DEPACKETIZERS[mime](), RtpClock(clock_rate))
        self.by_ssrc[ssrc] = incoming
        self._tracks[track_id] = incoming

    def _end(self, track_id: str) -> None:
        incoming = self._tracks.pop(track_id, None)
        if incoming is None:
            return
        incoming.track.ended = True
        group = incoming.group
        if all(t.ended for t in group.tracks):
            self.writer.close_segment(group)
            group.pending.clear()

    def _datagram(self, data: bytes, arrival: float) -> None:
        if len(data) < 12:
            return
        if 192 <= data[1] <= 223:  # RTCP (RFC 5761 §4): sender reports anchor the clocks
            try:
                packets = RtcpPacket.parse(data)
            except ValueError:
                return
            for packet in packets:
                if isinstance(packet, RtcpSrPacket) and packet.ssrc in self.by_ssrc:
                    info = packet.sender_info
                    self.by_ssrc[packet.ssrc].clock.on_sender_report(info.rtp_timestamp, info.ntp_timestamp)
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        incoming = self.by_ssrc.get(packet.ssrc)
        if incoming is None or incoming.track.ended or packet.payload_type != incoming.payload_type:
            return  # RTX, or a stream not (or no longer) recorded
        incoming.clock.on_packet(packet.timestamp, arrival)
        depacketizer = incoming.depacketizer
        was_waiting = depacketizer.waiting_key
        frame = depacketizer.push(packet.sequence_number, packet.timestamp, bool(packet.marker), packet.payload)
        if depacketizer.video and depacketizer.waiting_key and not was_waiting:
            self._want_key(incoming.track)  # a frame was lost: nothing decodes until the next key frame
        if frame is None:
            if depacketizer.video and depacketizer.waiting_key:
                self._want_key(incoming.track)
            return
        wall = incoming.clock.wall_time(frame.timestamp)
        if wall is not None:
            self.writer.write(incoming.group, incoming.track, frame, wall)

    def _want_key(self, track: Track) -> None:
        incoming = self._tracks.get(track.track_id)
        now = time.monotonic()
        if incoming is not None and now - incoming.key_asked >= KEY_FRAME_INTERVAL:
            incoming.key_asked = now
            self.notify("keyframe", track.track_id)

    def _check_limits(self) -> None:
        if self.writer.media_bytes >= self.max_bytes:
            log.warning("recording in %s reached its size cap (%d bytes): stopping", self.directory, self.max_bytes)
            self.reason = SIZE_LIMIT
            return
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return
        if free < self.min_free_bytes:
            log.warning("recording in %s: %d bytes free, under the minimum of %d: stopping",
                        self.directory, free, self.min_free_bytes)
            self.reason = DISK_FULL
