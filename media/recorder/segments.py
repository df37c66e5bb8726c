"""A recording's files: one per group of tracks (a peer's audio and video), cut into segments, written
with PyAV (FFmpeg's muxers; packets go in as they came, nothing is decoded or encoded).

A segment is one file: WebM for VP8/VP9 and Opus, Matroska for H264. It starts at the first video key
frame of the group (or at the first audio frame of an audio-only group), so every stream in it starts
within a frame of the others; its timestamps are milliseconds of wall-clock time (RFC 3550 §6.4.1
mapping, see clock.py) since that start. A new segment begins when a video track's resolution changes
(a key frame of another size) or a track joins a group whose segment is open: a Matroska track's
size and codec are fixed in its header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import av

from common.log import get_logger
from media.recorder.depacketize import Frame

log = get_logger("media.recorder")

MS = Fraction(1, 1000)
# How long a group waits for its video's first key frame before it starts without video.
VIDEO_WAIT_SECONDS = 3.0
# How long a group collects before it opens, so that tracks added one after the other (a peer's
# camera, then its microphone, each a produce request) start in one segment. Nothing is lost by
# waiting: what arrives meanwhile is held and written once the file opens.
SETTLE_SECONDS = 1.0
# Audio held while the group waits (50 Opus packets a second).
MAX_PENDING_FRAMES = 600
# A video stream may start this much before the audio's first frame (one Opus packet).
AV_TOLERANCE = 0.02
MUX_CODECS = {"video/vp8": "vp8", "video/vp9": "vp9", "video/h264": "h264", "audio/opus": "libopus"}


@dataclass(eq=False)
class Track:
    """One consumer's stream in the recording."""

    track_id: str
    kind: str  # "audio" | "video"
    mime: str  # lower case, e.g. "video/vp8"
    channels: int = 2
    ended: bool = False
    width: int = 0  # of the key frame that started the current segment's stream
    height: int = 0
    last_pts: int = -1


@dataclass(eq=False)
class Segment:
    path: str
    container: object  # av.container.OutputContainer
    start: float  # Unix seconds at pts 0
    streams: dict[Track, object]  # track -> its av stream
    last_pts: int = 0


@dataclass(eq=False)
class Group:
    """A file's worth of tracks: at most one audio and one video (a peer's microphone and camera)."""

    name: str  # file name prefix
    tracks: list[Track] = field(default_factory=list)
    segment: Segment | None = None
    count: int = 0  # segments so far
    pending: list[tuple[Track, Frame, float]] = field(default_factory=list)
    waiting_since: float | None = None

    def has(self, kind: str) -> bool:
        return any(t.kind == kind and not t.ended for t in self.tracks)


class SegmentWriter:
    """Frames in (already mapped to wall-clock time), files out. Runs in the recorder's thread."""

    def __init__(self, directory: str):
        self.directory = directory
        self.files: list[str] = []  # every segment's path, in the order opened
        self.media_bytes = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.refused = 0  # packets the muxer refused
        self.want_key = lambda track: None  # set by the owner: ask this video track for a key frame

    # ---- frames -------------------------------------------------------------------------------

    def write(self, group: Group, track: Track, frame: Frame, wall: float) -> None:
        segment = group.segment
        if segment is not None and track in segment.streams:
            if track.kind == "video" and frame.key and frame.width and (
                    (frame.width, frame.height) != (track.width, track.height)):
                log.info("recording %s: %dx%d -> %dx%d, new segment", group.name, track.width, track.height,
                         frame.width, frame.height)
                self.close_segment(group)
                self._hold(group, track, frame, wall)
                self.try_open(group, wall)
                return
            self._mux(segment, track, frame, wall)
            return
        if segment is not None:
            # a track that is not in the open segment: a new one, once it can start (a key frame)
            if track.kind == "video" and not frame.key:
                return
            self.close_segment(group)
        self._hold(group, track, frame, wall)
        self.try_open(group, wall)

    def _hold(self, group: Group, track: Track, frame: Frame, wall: float) -> None:
        if group.waiting_since is None:
            group.waiting_since = wall
        group.pending.append((track, frame, wall))
        if len(group.pending) > MAX_PENDING_FRAMES:
            del group.pending[:len(group.pending) - MAX_PENDING_FRAMES]

    def try_open(self, group: Group, now: float) -> None:
        """Open the group's next segment if it can start: each live track has something held (a video
        track a key frame no earlier than the audio's first frame, so both start together), or the
        wait is over."""
        if group.segment is not None or not group.pending:
            return
        videos = [t for t in group.tracks if t.kind == "video" and not t.ended]
        live_audio = [t for t in group.tracks if t.kind == "audio" and not t.ended]
        first: dict[Track, float] = {}
        for track, _, wall in group.pending:
            first.setdefault(track, wall)
        audio = [t for t in live_audio if t in first]
        waited = now - (group.waiting_since or now)
        patient = waited < VIDEO_WAIT_SECONDS
        audio_from = max((first[t] for t in audio), default=None)
        keys: dict[Track, tuple[float, Frame]] = {}  # where each video stream starts
        for track, frame, wall in group.pending:
            if track.kind == "video" and frame.key and frame.width and track not in keys and (
                    audio_from is None or wall >= audio_from - AV_TOLERANCE or not patient):
                keys[track] = (wall, frame)
        if patient and (len(keys) < len(videos) or len(audio) < len(live_audio) or waited < SETTLE_SECONDS):
            # wait for every track (a producer added a moment after another), up to a limit: one
            # that is paused or never sends must not hold back the others for good
            for track in videos:
                if track not in keys:
                    self.want_key(track)
            return
        tracks = [*keys, *audio]
        if not tracks:
            group.pending.clear()
            group.waiting_since = None
            return
        start = max(wall for wall, _ in keys.values()) if keys else min(first[t] for t in audio)
        self._open(group, tracks, start, {t: frame for t, (_, frame) in keys.items()})
        pending, group.pending, group.waiting_since = group.pending, [], None
        for track, frame, wall in pending:
            if track in group.segment.streams and wall >= start - 0.001:
                if track.kind == "video" and track.last_pts < 0 and not frame.key:
                    continue
                self._mux(group.segment, track, frame, wall)

    def _open(self, group: Group, tracks: list[Track], start: float, keys: dict[Track, Frame]) -> None:
        group.count += 1
        h264 = any(t.mime == "video/h264" for t in tracks)
        extension, fmt = ("mkv", "matroska") if h264 else ("webm", "webm")
        path = os.path.join(self.directory, f"{group.name}-{group.count:03d}.{extension}")
        container = av.open(path, "w", format=fmt)
        streams = {}
        for track in sorted(tracks, key=lambda t: t.kind != "video"):
            if track.kind == "video":
                frame = keys[track]
                track.width, track.height = frame.width, frame.height
                stream = container.add_mux_stream(MUX_CODECS[track.mime], width=frame.width, height=frame.height)
            else:
                # an Opus stream needs its OpusHead (RFC 7845 §5.1) in the header: the encoder context
                # writes it when the muxer opens it; it never encodes anything here
                stream = container.add_stream(MUX_CODECS[track.mime], rate=48000,
                                              layout="stereo" if track.channels == 2 else "mono")
            stream.time_base = MS
            track.last_pts = -1
            streams[track] = stream
        group.segment = Segment(path, container, start, streams)
        self.files.append(path)
        log.info("recording %s: segment %s (%s)", group.name, os.path.basename(path),
                 ", ".join(f"{t.mime} {t.width}x{t.height}" if t.kind == "video" else t.mime for t in streams))

    def _mux(self, segment: Segment, track: Track, frame: Frame, wall: float) -> None:
        pts = round((wall - segment.start) * 1000)
        if pts <= track.last_pts:
            pts = track.last_pts + 1  # a report moved the clock back a little: keep time going forward
        packet = av.Packet(frame.data)
        packet.stream = segment.streams[track]
        packet.time_base = MS
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.key
        try:
            segment.container.mux(packet)
        except av.FFmpegError as exc:
            if isinstance(exc, OSError):
                raise  # the disk: the recording stops (thread.py)
            # one packet the muxer refuses (FFmpeg checks timestamps and sizes): drop it, keep the file
            self.refused += 1
            if self.refused == 1:
                log.warning("recording %s: the muxer refused a packet: %s", segment.path, exc)
            return
        track.last_pts = pts
        segment.last_pts = max(segment.last_pts, pts)
        self.media_bytes += len(frame.data)
        self.first_time = wall if self.first_time is None else min(self.first_time, wall)
        self.last_time = wall if self.last_time is None else max(self.last_time, wall)

    # ---- closing --------------------------------------------------------------------------------

    def close_segment(self, group: Group) -> None:
        segment, group.segment = group.segment, None
        if segment is None:
            return
        try:
            segment.container.close()  # writes the cues and durations: the file is playable
        except Exception:
            log.exception("recording %s: closing %s failed", group.name, segment.path)
        for track in segment.streams:
            track.last_pts = -1

    @property
    def duration(self) -> float:
        if self.first_time is None or self.last_time is None:
            return 0.0
        return self.last_time - self.first_time

    def sizes(self) -> list[tuple[str, int]]:
        out = []
        for path in self.files:
            try:
                out.append((path, os.path.getsize(path)))
            except OSError:
                out.append((path, 0))
        return out
