"""Debian's Chromium driven by Playwright against a real `switchyard serve` that serves the built app.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`make chromium` installs
it). Every participant is a browser context (its own storage, so its own session) with Chromium's
fake camera and microphone; the camera runs at the app's "low" quality (320x180) because the fake
device costs CPU and the tests run four participants on two cores.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import struct
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.signaling_server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "web" / "dist"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it cannot have
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant camera and microphone without a prompt
    "--use-fake-device-for-media-stream",  # a synthetic camera (moving pattern) and microphone
    "--autoplay-policy=no-user-gesture-required",
    # Chrome drops simulcast layers of small captures (320x180 would send r0 only); the tests want
    # all three encodings, as a 720p camera sends them.
    "--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]

VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make chromium` (apt-get install chromium)")
    return CHROMIUM


def write_voice(path: Path, seconds: float = 2.0, rate: int = 48000) -> Path:
    """A loud, speech-like test signal: gliding tones in syllable-sized bursts (not a steady beep,
    which noise suppression would treat as noise). Chromium's own fake microphone beeps too
    briefly for the server's active-speaker threshold."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        envelope = 0.25 + 0.75 * abs(math.sin(math.pi * 3 * t))
        pitch = 220 + 180 * math.sin(2 * math.pi * 0.7 * t)
        sample = envelope * (0.6 * math.sin(2 * math.pi * pitch * t) + 0.3 * math.sin(4 * math.pi * pitch * t))
        frames += struct.pack("<h", int(sample * 0.8 * 32767))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


@pytest.fixture(scope="session")
def voice_file(tmp_path_factory) -> Path:
    return write_voice(tmp_path_factory.mktemp("voice") / "voice.wav")


@pytest.fixture(scope="session")
def web_dist() -> Path:
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail("the web app is not built: run `make web` (npm ci && npm run build in web/)")
    return WEB_DIST


@pytest.fixture(scope="module")
def server(tmp_path_factory, web_dist) -> ServerProcess:
    folder = tmp_path_factory.mktemp('web')
    process = ServerProcess(f"sqlite+aiosqlite:///{folder}/s.db",
                            extra_env={"SWITCHYARD_WEB_DIR": str(web_dist),
                                       "SWITCHYARD_RECORDINGS_DIR": str(folder / "recordings")})
    yield process
    err = process.stop()
    assert "Traceback" not in err, err


@pytest.fixture
async def browser(chromium_path, voice_file) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={voice_file}"]
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=args)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Person:
    """One participant: a browser context and its page, with the steps a person takes in the app."""

    name: str
    base_url: str
    context: BrowserContext
    page: Page
    console: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, browser: Browser, base_url: str, name: str, viewport: dict | None = None,
                   **emulation) -> Person:
        """`emulation`: more of Playwright's context options (device_scale_factor, is_mobile, has_touch)."""
        context = await browser.new_context(viewport=viewport or VIEWPORT, base_url=base_url, **emulation)
        # The quality the pre-join screen remembers: small, to spare the CPU (see the module doc).
        await context.add_init_script("localStorage.setItem('switchyard.videoQuality', 'low')")
        page = await context.new_page()
        page.set_default_timeout(20_000)
        person = cls(name, base_url, context, page)
        page.on("console", lambda m: person.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: person.console.append(f"pageerror: {e}"))
        return person

    async def register(self) -> None:
        await self.page.goto("/")
        await self.page.get_by_role("link", name="Create an account").click()
        await self.page.get_by_label("Display name").fill(self.name)
        await self.page.get_by_label("Email").fill(f"{self.name.lower()}-{uuid.uuid4().hex[:8]}@example.com")
        await self.page.get_by_label("Password").fill(PASSWORD)
        await self.page.get_by_role("button", name="Create account").click()
        await self.page.wait_for_url("**/rooms")

    async def guest(self) -> None:
        await self.page.goto("/")
        await self.page.get_by_label("Your name").fill(self.name)
        await self.page.get_by_role("button", name="Continue as guest").click()
        await self.page.wait_for_url("**/rooms")

    async def create_room(self, name: str) -> str:
        """Create a room from the room list; the app opens its pre-join page. Returns its path."""
        await self.page.get_by_label("Room name").fill(name)
        await self.page.get_by_role("button", name="Create room").click()
        await self.page.wait_for_url("**/rooms/*")
        return self.page.url.removeprefix(self.base_url)

    async def join(self, room_path: str | None = None) -> None:
        if room_path is not None:
            await self.page.goto(room_path)
        join = self.page.get_by_role("button", name="Join room")
        await expect(join).to_be_enabled()
        await join.click()
        await expect(self.page.locator(".call-page")).to_have_attribute("data-status", "joined")

    def tile_of(self, name: str):
        """The tile showing another participant's camera."""
        return self.page.locator('figure.tile[data-self="false"][data-source="camera"]').filter(
            has=self.page.locator(".tile-name", has_text=name))

    def grid(self):
        return self.page.locator(".video-grid")

    async def wait_video_playing(self, name: str) -> None:
        """The other's tile plays video: a decoded frame size on its <video>."""
        video = self.tile_of(name).locator("video")
        await expect(video).to_be_visible()
        await self.page.wait_for_function("v => v.videoWidth > 0 && v.readyState >= 2",
                                          arg=await video.element_handle(), timeout=20_000)

    async def inbound(self) -> dict[str, dict]:
        """inbound-rtp stats of the receive transport by id: kind, packets, frames decoded."""
        stats = await self.page.evaluate("""async () => {
            const call = window.switchyard;
            if (!call) return [];
            return (await call.transportStats('recv')).filter(s => s.type === 'inbound-rtp')
                .map(s => ({id: s.id, kind: s.kind, packetsReceived: s.packetsReceived || 0,
                            framesDecoded: s.framesDecoded || 0}));
        }""")
        return {s["id"]: s for s in stats}

    async def outbound_video(self) -> dict[str, dict]:
        """outbound-rtp video stats of the send transport by rid: active flag and frames encoded."""
        stats = await self.page.evaluate("""async () => {
            const call = window.switchyard;
            if (!call) return [];
            return (await call.transportStats('send')).filter(s => s.type === 'outbound-rtp' && s.kind === 'video')
                .map(s => ({rid: s.rid, active: s.active, framesEncoded: s.framesEncoded || 0,
                            frameHeight: s.frameHeight || 0}));
        }""")
        return {s["rid"]: s for s in stats}

    async def server_recv_transport(self) -> dict:
        """The server's stats of this person's receive transport (bandwidth estimate included)."""
        stats = await self.page.evaluate("async () => window.switchyard.serverTransportStats('recv')")
        return stats[0]

    async def close(self) -> None:
        await self.context.close()


async def media_flowing(person: Person, video_streams: int, audio_streams: int, seconds: float = 1.5) -> None:
    """Every remote video decodes new frames and every remote audio gets new packets, in `seconds`."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        before = await person.inbound()
        await asyncio.sleep(seconds)
        after = await person.inbound()
        videos = [i for i, s in after.items() if s["kind"] == "video"
                  and s["framesDecoded"] > before.get(i, {}).get("framesDecoded", 0)]
        audios = [i for i, s in after.items() if s["kind"] == "audio"
                  and s["packetsReceived"] > before.get(i, {}).get("packetsReceived", 0)]
        if len(videos) >= video_streams and len(audios) >= audio_streams:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{person.name}: media not flowing: {len(videos)} video and {len(audios)} "
                                 f"audio streams progressing; stats {after}; console {person.console[-20:]}")
