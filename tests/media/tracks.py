"""Synthetic media for real WebRTC clients in tests: a moving picture, noise and a tone."""

from __future__ import annotations

import fractions
import math

import numpy as np
from aiortc import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

WIDTH, HEIGHT = 320, 240


VIDEO_CLOCK = fractions.Fraction(1, 90000)


def moving_bar(index: int, width: int = WIDTH, height: int = HEIGHT) -> VideoFrame:
    """Frame `index` of a grey picture with a white bar that moves one step per frame."""
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    x = (index * 4) % width
    image[:, x:x + 16] = 255
    frame = VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = index * 3000
    frame.time_base = VIDEO_CLOCK
    return frame


class MovingBarTrack(VideoStreamTrack):
    """A grey picture with a white bar that moves one step per frame, so every frame differs."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        super().__init__()
        self.width = width
        self.height = height
        self.frames = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = moving_bar(self.frames, self.width, self.height)
        self.frames += 1
        frame.pts = pts
        frame.time_base = time_base
        return frame


class NoiseTrack(VideoStreamTrack):
    """Random pixels every frame: an encoder spends every bit it is allowed (rate-control tests)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, seed: int = 7):
        super().__init__()
        self.width = width
        self.height = height
        self.random = np.random.default_rng(seed)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self.random.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8)
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone in 20 ms frames of 48 kHz mono."""

    SAMPLE_RATE = 48000
    SAMPLES = 960

    def __init__(self):
        super().__init__()
        self._phase = 0

    async def recv(self) -> AudioFrame:
        await super().recv()  # paces frames in real time
        t = (np.arange(self.SAMPLES) + self._phase) / self.SAMPLE_RATE
        self._phase += self.SAMPLES
        samples = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.SAMPLE_RATE
        frame.pts = self._phase
        frame.time_base = fractions.Fraction(1, self.SAMPLE_RATE)
        return frame
