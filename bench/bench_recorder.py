"""What recording one person costs the main process: CPU time of the recorder thread's work per packet.

The fast path's cost of a recording is one more consumer (bench_forward.py measures those); this
measures the other side, the recorder thread in the main process: RTP/RTCP parsing, VP8 frame
assembly, the sender-report clock and PyAV muxing into WebM, per datagram. The input is built
beforehand (not timed): a VP8 camera at 640x360 and 30 fps from aiortc's encoder set to
1.5 Mbit/s (random pixels, so it spends all of it; key frame every 2 s) and 20 ms Opus packets, with a sender report a second for each stream, as
the worker sends them to a recorder. The thread's own loop is bypassed: each datagram goes to the
method its queue would hand it to, so the figure is the work and not the queue's waiting.
CPU time (time.thread_time), not wall-clock time, since this machine is shared; disk writes are to
a temporary folder (page cache).

    .venv/bin/python bench/bench_recorder.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket, RtpPacket
from av import AudioFrame, VideoFrame

from media.recorder.clock import NTP_EPOCH_OFFSET
from media.recorder.thread import RecorderThread

RESULTS = Path(__file__).resolve().parent / "results" / "recorder.json"
VIDEO_SSRC, AUDIO_SSRC = 1111, 2222
VIDEO_BITRATE = 1_500_000


def ntp(unix: float) -> int:
    seconds = unix + NTP_EPOCH_OFFSET
    return (int(seconds) << 32) | int((seconds % 1) * 2**32)


def build_input(seconds: int) -> list[tuple[bytes, float]]:
    """(datagram, arrival time) of one person's camera and microphone, in arrival order."""
    import numpy as np

    video, audio = Vp8Encoder(), OpusEncoder()
    video.target_bitrate = VIDEO_BITRATE
    noise = np.random.default_rng(7)
    start = 1_700_000_000.0
    out: list[tuple[float, bytes]] = []
    seq = 0
    for index in range(seconds * 30):
        at = start + index / 30
        picture = VideoFrame.from_ndarray(noise.integers(0, 256, (360, 640, 3), dtype=np.uint8), format="rgb24")
        picture.pts, picture.time_base = index * 3000, Fraction(1, 90000)
        payloads, timestamp = video.encode(picture, index % 60 == 0)
        for n, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=timestamp,
                               ssrc=VIDEO_SSRC, marker=int(n == len(payloads) - 1), payload=payload)
            seq += 1
            out.append((at, packet.serialize()))
        if index % 30 == 0:
            sr = RtcpSrPacket(ssrc=VIDEO_SSRC, sender_info=RtcpSenderInfo(ntp(at), timestamp, 0, 0))
            out.append((at, bytes(sr)))
    samples = np.zeros((1, 960), dtype=np.int16)
    for index in range(seconds * 50):
        at = start + index / 50
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, index * 960
        payloads, timestamp = audio.encode(frame)
        out.append((at, RtpPacket(payload_type=111, sequence_number=index & 0xFFFF, timestamp=index * 960,
                                  ssrc=AUDIO_SSRC, payload=payloads[0]).serialize()))
        if index % 50 == 0:
            out.append((at, bytes(RtcpSrPacket(ssrc=AUDIO_SSRC,
                                                sender_info=RtcpSenderInfo(ntp(at), index * 960, 0, 0)))))
    out.sort(key=lambda item: item[0])
    return [(data, at) for at, data in out]


def run(seconds: int) -> dict:
    datagrams = build_input(seconds)
    with tempfile.TemporaryDirectory() as folder:
        thread = RecorderThread(folder, 10**12, 0, lambda event, data: None)
        thread._add("v", "person", "video", "video/vp8", VIDEO_SSRC, 96, 90000, 1)
        thread._add("a", "person", "audio", "audio/opus", AUDIO_SSRC, 111, 48000, 2)
        cpu = time.thread_time()
        for data, arrival in datagrams:
            thread._datagram(data, arrival)
        for group in thread.groups.values():
            thread.writer.close_segment(group)
        cpu = time.thread_time() - cpu
        files = thread.writer.sizes()
    media_bytes = sum(len(d) for d, _ in datagrams)
    return {
        "seconds_of_media": seconds,
        "datagrams": len(datagrams),
        "media_kbit_per_s": round(media_bytes * 8 / seconds / 1000, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_datagram": round(cpu / len(datagrams) * 1e6, 2),
        "cpu_share_of_one_core_per_person": round(cpu / seconds, 4),
        "files": [(os.path.basename(p), size) for p, size in files],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    result = run(args.seconds)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
