"""The load test's scenario: command-line options, their validation, and each stream's packet shape."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_OUTPUT = "bench/results/loadtest.json"
RTP_HEADER = 12
# bytes the C generator puts in every packet besides the codec payload: send time, stream index, magic
PROBE_TAIL = 16
VP8_OVERHEAD = 6 + 10       # payload descriptor, and a key frame's header
RID_EXTENSION = 12          # MID and RID one-byte header extensions with --rid (RFC 8285)
MAX_FRAME_PACKETS = 64      # loadgen.synth sends one frame with one sendmmsg of at most this
AUDIO_FRAMES_PER_SECOND = 50  # 20 ms Opus frames
# SRTP trailer of AEAD_AES_256_GCM / AES_CM_128_HMAC_SHA1_80 (16 / 10 bytes): size for the larger
SRTP_TRAILER = 16
MAX_CONSUMERS_PER_PEER = 200  # signaling/peer.py
MAX_CONSUMERS = 65536       # loadgen.synth.SyntheticMedia's defaults
MAX_STREAMS = 4096
SIMULCAST_STEP = 4          # each lower simulcast layer carries a quarter of the bitrate above it


LAYER_CHOICES = ("top", "low", "mixed")


class LoadtestError(Exception):
    """A bad option, an unreachable server or a failed scenario: one line for the user."""


@dataclass
class Scenario:
    url: str = DEFAULT_URL
    rooms: int = 1
    participants: int = 3
    senders: int | None = None      # per room; None: every participant sends
    audio: bool = True
    video: bool = True
    audio_bitrate: int = 32_000
    video_bitrate: int = 600_000    # of the top simulcast layer
    fps: float = 30.0
    packet_size: int = 1200         # largest video packet, SRTP included
    simulcast: int = 1
    rid: bool = False               # simulcast encodings told apart by RID (header extensions), not SSRC
    layers: str = "top"             # simulcast layer consumers prefer: top, low, or mixed (by turns)
    keyframe_interval: float = 0.0  # 0: key frames only first and when the SFU asks (PLI/FIR)
    duration: float = 10.0          # measured seconds once everybody has joined
    ramp: float = 0.1               # seconds between joins
    output: str | None = DEFAULT_OUTPUT
    plot: str | None = None
    spawn_server: bool = False
    workers: int = 1                # of a spawned server
    progress: bool = True

    @property
    def senders_per_room(self) -> int:
        return self.participants if self.senders is None else self.senders

    def validate(self) -> Scenario:
        checks = [
            (1 <= self.rooms <= 1000, "--rooms must be in 1..1000"),
            (1 <= self.participants <= 200, "--participants must be in 1..200"),
            (self.senders is None or 0 <= self.senders <= self.participants,
             "--senders must be in 0..--participants"),
            (self.rooms * self.participants <= 2000, "--rooms x --participants must be at most 2000"),
            (self.audio or self.video, "--no-audio and --no-video leave nothing to send"),
            (8_000 <= self.audio_bitrate <= 510_000, "--audio-bitrate must be in 8000..510000"),
            (50_000 <= self.video_bitrate <= 20_000_000, "--video-bitrate must be in 50000..20000000"),
            (1 <= self.fps <= 120, "--fps must be in 1..120"),
            (200 <= self.packet_size <= 1400, "--packet-size must be in 200..1400"),
            (1 <= self.simulcast <= 3, "--simulcast must be 1, 2 or 3"),
            (self.layers in LAYER_CHOICES, f"--layers must be one of {', '.join(LAYER_CHOICES)}"),
            (0 <= self.keyframe_interval <= 60, "--keyframe-interval must be in 0..60"),
            (0.5 <= self.duration <= 3600, "--duration must be in 0.5..3600 seconds"),
            (0 <= self.ramp <= 60, "--ramp must be in 0..60 seconds"),
            (1 <= self.workers <= 64, "--workers must be in 1..64"),
            (self.url.startswith(("http://", "https://")), "--url must start with http:// or https://"),
        ]
        for ok, message in checks:
            if not ok:
                raise LoadtestError(message)
        kinds = int(self.audio) + int(self.video)
        senders = self.senders_per_room
        per_peer = (senders if self.participants > senders else senders - 1) * kinds
        if per_peer > MAX_CONSUMERS_PER_PEER:
            raise LoadtestError(f"a participant would consume {per_peer} producers; the server allows "
                                f"{MAX_CONSUMERS_PER_PEER} consumers per peer (lower --senders)")
        consumers = self.rooms * (self.participants * self.senders_per_room - self.senders_per_room) * kinds
        if consumers > MAX_CONSUMERS:
            raise LoadtestError(f"the scenario has {consumers} consumers; the harness takes at most {MAX_CONSUMERS}")
        streams = self.rooms * self.senders_per_room * (int(self.audio) + self.simulcast * int(self.video))
        if streams > MAX_STREAMS:
            raise LoadtestError(f"the scenario sends {streams} streams; the harness takes at most {MAX_STREAMS}")
        for layer in self.video_layers():
            if layer["frame_packets"] > MAX_FRAME_PACKETS:
                raise LoadtestError(f"--video-bitrate {self.video_bitrate} at --fps {self.fps:g} needs more than "
                                    f"{MAX_FRAME_PACKETS} packets a frame; raise --packet-size or --fps")
        return self

    def audio_stream(self) -> dict:
        """20 ms Opus frames of audio_bitrate: one packet each."""
        payload = max(math.ceil(self.audio_bitrate / 8 / AUDIO_FRAMES_PER_SECOND), PROBE_TAIL + 4)
        return {"fps": AUDIO_FRAMES_PER_SECOND, "frame_packets": 1,
                "packet_size": RTP_HEADER + payload + SRTP_TRAILER}

    def video_layers(self) -> list[dict]:
        """One entry per simulcast encoding, lowest first (mediasoup's order): bitrate and packet shape."""
        layers = []
        header = RTP_HEADER + (RID_EXTENSION if self.rid else 0)
        room = self.packet_size - header - SRTP_TRAILER
        for i in range(self.simulcast):
            bitrate = self.video_bitrate / SIMULCAST_STEP ** (self.simulcast - 1 - i)
            frame_bytes = max(bitrate / 8 / self.fps, VP8_OVERHEAD + PROBE_TAIL + 16)
            packets = math.ceil(frame_bytes / (room - VP8_OVERHEAD - PROBE_TAIL))
            size = header + SRTP_TRAILER + max(math.ceil(frame_bytes / packets), VP8_OVERHEAD + PROBE_TAIL)
            layers.append({"bitrate": int(bitrate), "fps": self.fps, "frame_packets": packets,
                           "packet_size": min(size, self.packet_size)})
        return layers

    def as_dict(self) -> dict:
        return asdict(self)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `switchyard loadtest` options (defaults from Scenario)."""
    d = Scenario()
    p.add_argument("--url", default=d.url, help=f"server base URL (default {d.url})")
    p.add_argument("--spawn-server", action="store_true",
                   help="start a local `switchyard serve` on free ports with a temporary SQLite database, "
                        "and stop it at the end")
    p.add_argument("--workers", type=int, default=d.workers, help="media workers of a spawned server (default 1)")
    p.add_argument("--rooms", type=int, default=d.rooms, help="rooms (default 1)")
    p.add_argument("--participants", type=int, default=d.participants, help="participants per room (default 3)")
    p.add_argument("--senders", type=int, default=None,
                   help="participants per room that send media (default: all); everyone consumes every producer")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="senders send no audio")
    p.add_argument("--no-video", dest="video", action="store_false", help="senders send no video")
    p.add_argument("--audio-bitrate", type=int, default=d.audio_bitrate,
                   help=f"Opus bits/s, 20 ms packets (default {d.audio_bitrate})")
    p.add_argument("--video-bitrate", type=int, default=d.video_bitrate,
                   help=f"VP8 bits/s of the top simulcast layer (default {d.video_bitrate})")
    p.add_argument("--fps", type=float, default=d.fps, help=f"video frames a second (default {d.fps:g})")
    p.add_argument("--packet-size", type=int, default=d.packet_size,
                   help=f"largest video packet in bytes, SRTP included (default {d.packet_size})")
    p.add_argument("--simulcast", type=int, default=d.simulcast,
                   help="video encodings per sender, 1-3, each a quarter of the bitrate of the next (default 1)")
    p.add_argument("--rid", action="store_true",
                   help="signal video encodings by RID with MID and RID header extensions on every packet, "
                        "as browsers do, instead of by SSRC")
    p.add_argument("--layers", default=d.layers, choices=LAYER_CHOICES,
                   help="simulcast layer video consumers prefer (setConsumerPreferredLayers): top (the default, "
                        "no request), low, or mixed (each consumer the next layer in turn)")
    p.add_argument("--keyframe-interval", type=float, default=d.keyframe_interval,
                   help="seconds between video key frames; 0: only the first and on PLI/FIR (default 0)")
    p.add_argument("--duration", type=float, default=d.duration,
                   help=f"seconds measured after the last join (default {d.duration:g})")
    p.add_argument("--ramp", type=float, default=d.ramp, help=f"seconds between joins (default {d.ramp:g})")
    p.add_argument("--output", default=d.output, help=f"JSON report path (default {d.output}; '' for none)")
    p.add_argument("--plot", default=None, help="PNG plot path (needs matplotlib: pip install 'switchyard[bench]')")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress display")


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    fields = Scenario.__dataclass_fields__
    scenario = Scenario(**{name: getattr(args, name) for name in fields if hasattr(args, name)})
    scenario.output = scenario.output or None
    return scenario.validate()
