"""The SDK's examples (sdk/python/examples) run against a real server and do what they say.

A bot plays a WAV of a 440 Hz tone into a room, the echo agent publishes it back half a second
late, and the listener records both to WAV files that hold the tone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from switchyard_client import Room

from tests.signaling_server import serving, signed_in

pytestmark = pytest.mark.timeout(120)
EXAMPLES = Path(__file__).resolve().parent.parent / "sdk" / "python" / "examples"
RATE = 48000
WAIT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("examples"))


def write_tone(path: Path, seconds: float = 2.0, frequency: float = 440.0) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (np.sin(2 * np.pi * frequency * t) * 10000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """The first channel of a 16-bit WAV, and its sample rate."""
    with wave.open(str(path)) as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data.reshape(-1, channels)[:, 0].astype(np.float64), rate


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum[1:]) + 1])


class Example:
    """One example script in a subprocess, its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, name: str):
        self.process = process
        self.name = name
        self.lines: list[str] = []

    @classmethod
    async def start(cls, script: str, *args: str, cwd: Path) -> Example:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / script), *args, cwd=cwd, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return cls(process, script)

    async def wait_for_line(self, text: str) -> str:
        async def scan() -> str:
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"{self.name} exited without printing {text!r}:\n{''.join(self.lines)}")
                self.lines.append(line)
                if text in line:
                    return line
        return await asyncio.wait_for(scan(), WAIT)

    async def finish(self, interrupt: bool = True) -> str:
        """SIGINT (unless it is ending by itself), then its exit status must be 0."""
        if interrupt and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            rest, _ = await asyncio.wait_for(self.process.communicate(), WAIT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"{self.name} did not exit:\n{''.join(self.lines)}") from None
        output = "".join(self.lines) + rest.decode()
        assert self.process.returncode == 0, f"{self.name} exited {self.process.returncode}:\n{output}"
        return output


async def test_bot_echo_agent_and_listener_against_a_real_server(server, tmp_path):
    owner = await signed_in(server.url, "Owner", connect=False)
    room_id = (await owner.create_room("examples"))["id"]
    await owner.close()
    tone = tmp_path / "tone.wav"
    write_tone(tone)
    common = ("--url", server.url, "--room", room_id)
    started: list[Example] = []
    try:
        bot = await Example.start("play_file.py", *common, "--loop", str(tone), cwd=tmp_path)
        started.append(bot)
        echo = await Example.start("echo_agent.py", *common, "--delay", "0.5", cwd=tmp_path)
        started.append(echo)
        await bot.wait_for_line("publishing audio")
        await echo.wait_for_line("echoing Bot")
        listener = await Example.start("record_audio.py", *common, "--duration", "4", "--out", "rec",
                                       cwd=tmp_path)
        started.append(listener)
        await listener.finish(interrupt=False)
        await echo.finish()
        await bot.finish()
    finally:
        for example in started:
            if example.process.returncode is None:
                example.process.kill()
                await example.process.wait()

    recordings = {path.name.split("-")[0]: path for path in (tmp_path / "rec").glob("*.wav")}
    assert set(recordings) == {"Bot", "Echo"}, sorted((tmp_path / "rec").iterdir())
    for who, path in recordings.items():
        samples, rate = read_wav(path)
        assert rate == RATE and len(samples) > RATE, f"{who}: {len(samples)} samples"
        loud = samples[np.abs(samples) > 1000]
        assert len(loud) > RATE // 2, f"{who}'s recording is nearly silent"
        assert abs(dominant_frequency(samples, rate) - 440) < 10, who


async def test_data_echo_bot_answers_over_its_own_data_channel(server, tmp_path):
    owner = await signed_in(server.url, "Owner", connect=False)
    room_id = (await owner.create_room("data example"))["id"]
    await owner.close()
    bot = await Example.start("data_echo.py", "--url", server.url, "--room", room_id, cwd=tmp_path)
    room = None
    try:
        await bot.wait_for_line("echoing data messages")
        room = await Room.join(server.url, room_id, "Ada")
        answers: asyncio.Queue = asyncio.Queue()
        room.on("data", lambda message, peer, label: answers.put_nowait((message, peer.display_name, label)))
        opened: asyncio.Queue = asyncio.Queue()
        room.on("data-channel", opened.put_nowait)
        channel = await room.publish_data("chat")
        assert (await asyncio.wait_for(opened.get(), WAIT)).label == "echo"
        await bot.wait_for_line("subscribed to Ada's channel 'chat'")
        channel.send("hello")
        channel.send(b"\x01\x02")
        assert await asyncio.wait_for(answers.get(), WAIT) == ("echo: hello", "Echo", "echo")
        assert await asyncio.wait_for(answers.get(), WAIT) == (b"\x01\x02", "Echo", "echo")
        await bot.wait_for_line("Ada on 'chat': 'hello'")
    finally:
        if room is not None:
            await room.leave()
        await bot.finish()
