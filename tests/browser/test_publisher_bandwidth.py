"""A Chromium publisher grows past its start bitrate on the server's transport-cc feedback.

Without feedback, Chrome's sender-side estimator (GoogCC) stays at its start rate,
reports `qualityLimitationReason: "bandwidth"` and turns off every simulcast
encoding above the lowest. With it, all three encodings of a 640x360 camera flow
and a viewer's layer choice changes the picture it decodes.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import Person

pytestmark = pytest.mark.timeout(180)


async def send_side(person: Person) -> dict:
    """The publisher's view: its estimate, and per encoding whether it flows and why it is limited."""
    return await person.page.evaluate("""async () => {
        const stats = await window.switchyard.transportStats('send');
        const pairs = stats.filter(s => s.type === 'candidate-pair' && s.availableOutgoingBitrate);
        const encodings = {};
        for (const s of stats.filter(s => s.type === 'outbound-rtp' && s.kind === 'video')) {
            encodings[s.rid] = {active: s.active, width: s.frameWidth || 0, fps: s.framesPerSecond || 0,
                                limited: s.qualityLimitationReason, bytes: s.bytesSent || 0};
        }
        return {available: Math.max(0, ...pairs.map(p => p.availableOutgoingBitrate)), encodings};
    }""")


async def decoded_width(viewer: Person, name: str) -> int:
    video = viewer.tile_of(name).locator("video")
    return await video.evaluate("v => v.videoWidth")


async def wait_width(viewer: Person, name: str, check, seconds: float = 20) -> int:
    width = 0
    for _ in range(int(seconds / 0.25)):
        width = await decoded_width(viewer, name)
        if check(width):
            return width
        await asyncio.sleep(0.25)
    return width


async def test_a_browser_publisher_gets_feedback_and_sends_every_layer(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    # a 640x360 camera: three encodings of 160, 320 and 640 pixels wide
    await alice.context.add_init_script("localStorage.setItem('switchyard.videoQuality', 'standard')")
    bob = await Person.open(browser, server.url, "Bob")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Bandwidth")
    await alice.join()
    await bob.join(room_path)
    await bob.wait_video_playing("Alice")

    # within 10 s of media the publisher's estimate passes 1.5 Mbit/s and nothing limits it
    side = {}
    for _ in range(60):
        side = await send_side(alice)
        flowing = [e for e in side["encodings"].values() if e["active"] and e["width"] > 0]
        if side["available"] > 1_500_000 and len(flowing) == 3 and \
                all(e["limited"] == "none" for e in side["encodings"].values()):
            break
        await asyncio.sleep(0.25)
    print(f"Alice send side: {side}")
    assert side["available"] > 1_500_000, f"the publisher's estimate stayed at {side['available']}"
    assert sorted(e["width"] for e in side["encodings"].values()) == [160, 320, 640], side
    assert all(e["limited"] == "none" for e in side["encodings"].values()), side
    server_side = (await alice.page.evaluate(
        "async () => window.switchyard.serverTransportStats('send')"))[0]
    assert server_side["incomingFeedbacks"] > 0

    # Bob's large tile takes the top layer (640 wide); a small window takes layer 0 (160), and back
    assert await wait_width(bob, "Alice", lambda w: w >= 640) >= 640
    await bob.page.set_viewport_size({"width": 480, "height": 120})
    assert await wait_width(bob, "Alice", lambda w: 0 < w <= 160) <= 160
    await bob.page.set_viewport_size({"width": 1280, "height": 800})
    assert await wait_width(bob, "Alice", lambda w: w >= 640) >= 640
    await alice.close()
    await bob.close()
