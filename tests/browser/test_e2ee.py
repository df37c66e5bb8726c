"""End-to-end encryption in Chromium (web/src/e2ee): two people with the room's passphrase see and
hear each other through the server, which still switches simulcast layers on their key frames; a
third person with another passphrase receives the packets but decodes nothing, and is told so; a
server-side participant (the Python SDK, aiortc) without any key gets no picture."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect
from switchyard_client import Room

from tests.browser.conftest import Person, media_flowing

pytestmark = pytest.mark.timeout(180)

PASSPHRASE = "purple-otter-42"

# Mean colour and contrast of what a <video> shows, drawn on a canvas.
PICTURE_JS = """v => {
    const canvas = document.createElement('canvas');
    canvas.width = v.videoWidth; canvas.height = v.videoHeight;
    const g = canvas.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const n = d.length / 4;
    const mean = [0, 0, 0];
    let sum = 0, squares = 0;
    for (let i = 0; i < d.length; i += 4) {
        mean[0] += d[i]; mean[1] += d[i + 1]; mean[2] += d[i + 2];
        const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        sum += y; squares += y * y;
    }
    const luma = sum / n;
    return {width: canvas.width, height: canvas.height, mean: mean.map(c => c / n), luma,
            contrast: Math.sqrt(Math.max(0, squares / n - luma * luma))};
}"""

# inbound-rtp video stats of the receive transport: packets, decoded frames and their height.
INBOUND_VIDEO_JS = """async () => (await window.switchyard.transportStats('recv'))
    .filter(s => s.type === 'inbound-rtp' && s.kind === 'video')
    .map(s => ({packets: s.packetsReceived || 0, frames: s.framesDecoded || 0, height: s.frameHeight || 0}))"""


async def join_encrypted(person: Person, room_path: str, passphrase: str) -> None:
    """The room's page with `?e2ee=`: the pre-join form has encryption on with that passphrase."""
    await person.page.goto(f"{room_path}?e2ee={passphrase}")
    await expect(person.page.get_by_label("End-to-end encryption")).to_be_checked()
    await expect(person.page.get_by_label("Encryption passphrase")).to_have_value(passphrase)
    await person.join()
    await expect(person.page.locator(".e2ee-pill")).to_have_text("Encrypted")


async def picture(person: Person, video) -> dict:
    return await person.page.evaluate(PICTURE_JS, await video.element_handle())


async def wait_inbound_height(person: Person, height: int) -> None:
    """The (one) remote video decodes frames of `height` rows: the layer the server forwards."""
    stats: list = []
    for _ in range(100):
        stats = await person.page.evaluate(INBOUND_VIDEO_JS)
        if any(s["height"] == height for s in stats):
            before = max(s["frames"] for s in stats)
            await asyncio.sleep(0.5)
            after = await person.page.evaluate(INBOUND_VIDEO_JS)
            if max(s["frames"] for s in after) > before:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{person.name} never decoded {height}-row frames: {stats}; {person.console[-10:]}")


async def test_e2ee_call_decodes_with_the_passphrase_and_not_without(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    bob = await Person.open(browser, server.url, "Bob")
    eve = await Person.open(browser, server.url, "Eve")
    for person in (alice, bob, eve):
        await person.guest()
    room_path = await alice.create_room("Sealed")
    await join_encrypted(alice, room_path, PASSPHRASE)
    await join_encrypted(bob, room_path, PASSPHRASE)

    # Same passphrase: each decodes the other's camera and audio.
    await alice.wait_video_playing("Bob")
    await bob.wait_video_playing("Alice")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)

    # The picture Bob decodes is Alice's fake camera: not black, not flat, the colours of her own
    # preview of the same camera.
    remote = await picture(bob, bob.tile_of("Alice").locator("video"))
    local = await picture(alice, alice.page.locator('figure.tile[data-self="true"][data-source="camera"] video'))
    print(f"Bob sees Alice's camera {remote}; her own view {local}")
    assert remote["luma"] > 20 and remote["contrast"] > 10, remote
    assert all(abs(r - c) < 40 for r, c in zip(remote["mean"], local["mean"], strict=True)), (remote, local)

    # The server still switches layers: it reads the key-frame bit in the clear header. Bob's
    # window shrinks, his tile asks for layer 0 (80x45 of the 320x180 camera), the server moves
    # to it on a key frame and Bob decodes 45-row frames; back to full size, 180 rows again.
    await wait_inbound_height(bob, 180)
    await bob.page.set_viewport_size({"width": 480, "height": 120})
    await wait_inbound_height(bob, 45)
    await bob.page.set_viewport_size({"width": 1280, "height": 800})
    await wait_inbound_height(bob, 180)

    # A screen share is encrypted too (its own producer: the transforms.sender hook runs for it as well).
    await alice.page.get_by_role("button", name="Share screen").click()
    screen = bob.page.locator('figure.tile[data-source="screen"] video')
    await bob.page.wait_for_function("v => v.videoWidth > 0", arg=await screen.element_handle())
    await alice.page.get_by_role("button", name="Share screen").click()
    await expect(bob.page.locator('figure.tile[data-source="screen"]')).to_have_count(0)

    # Eve has another passphrase: packets from both arrive, no frame decodes, and she is told.
    await join_encrypted(eve, room_path, "not-the-passphrase")
    await expect(eve.page.locator(".banner.error")).to_contain_text("cannot be decrypted")
    await expect(eve.tile_of("Alice")).to_be_visible()
    await asyncio.sleep(3)
    inbound = await eve.page.evaluate(INBOUND_VIDEO_JS)
    print(f"Eve's inbound video with the wrong passphrase: {inbound}")
    assert len(inbound) == 2 and all(s["packets"] > 50 for s in inbound), inbound
    assert all(s["frames"] == 0 for s in inbound), inbound
    for name in ("Alice", "Bob"):
        width = await eve.page.evaluate("v => v.videoWidth", await eve.tile_of(name).locator("video").element_handle())
        assert width == 0, (name, width)
    # ... and the others cannot decrypt her either, which their pages say
    await expect(alice.page.locator(".banner.error")).to_contain_text("Eve")
    await expect(alice.page.locator(".banner.error")).to_contain_text("cannot be decrypted")

    # Alice and Bob go on undisturbed, also after Bob's connection drops and the app rejoins (new
    # senders with new key ids, new receivers, the same worker and passphrase).
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)
    await bob.page.evaluate("""() => {
        window.statuses = [];
        const page = document.querySelector('.call-page');
        new MutationObserver(() => window.statuses.push(page.dataset.status))
            .observe(page, {attributes: true, attributeFilter: ['data-status']});
        window.switchyard.simulateNetworkDrop();
    }""")
    await expect(bob.page.locator(".call-page")).to_have_attribute("data-status", "joined")
    assert "reconnecting" in await bob.page.evaluate("window.statuses")
    await alice.wait_video_playing("Bob")
    await bob.wait_video_playing("Alice")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)
    errors = [line for line in alice.console + bob.console if line.startswith(("error", "pageerror"))]
    assert not errors, errors
    for person in (alice, bob, eve):
        await person.close()


def mean_colour(frame) -> list[float]:
    """Mean red, green and blue of a decoded aiortc frame."""
    return [float(c) for c in frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)]


async def test_a_server_side_consumer_without_the_key_gets_no_picture(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    await alice.guest()
    room_path = await alice.create_room("Sealed from bots")
    await join_encrypted(alice, room_path, PASSPHRASE)
    # the control: the colours of Alice's camera as her own page shows it
    own = alice.page.locator('figure.tile[data-self="true"][data-source="camera"] video')
    await alice.page.wait_for_function("v => v.videoWidth > 0", arg=await own.element_handle())
    camera = await picture(alice, own)

    # A Python SDK participant (aiortc underneath, no key) subscribes to Alice's camera.
    bot = await Room.join(server.url, room_path.rsplit("/", 1)[-1], "Bot", auto_subscribe=False)
    try:
        producer = None
        for _ in range(100):
            producer = next((p for p in bot.producers.values() if p.kind == "video"), None)
            if producer:
                break
            await asyncio.sleep(0.1)
        assert producer is not None, bot.producers
        remote = await bot.subscribe(producer.producer_id, layer=2)
        frames = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6
        while loop.time() < deadline and len(frames) < 60:
            try:
                frames.append(await asyncio.wait_for(remote.track.recv(), max(0.1, deadline - loop.time())))
            except TimeoutError:
                break
        assert bot.client is not None
        stats = await bot.client.get_stats(remote.consumer_id)
        sent = max((s.get("packetCount", 0) for s in stats), default=0)
        colours = [mean_colour(f) for f in frames]
        print(f"bot without the key: {len(frames)} frames decoded in 6 s, {[f.width for f in frames][:5]} wide, "
              f"mean colours {[[round(c) for c in m] for m in colours[:20]]}; the camera's {camera['mean']}; "
              f"consumer stats {stats}")
        # the server forwards Alice's camera to the bot as to anyone ...
        assert sent > 50, stats
        # ... but aiortc's VP8 decoder (FFmpeg) refuses most of the ciphertext ("Invalid data found
        # when processing input") and what it does output is grey noise, not the green test pattern
        # of Chromium's fake camera
        assert len(frames) < 45, len(frames)
        for colour in colours:
            assert max(abs(a - b) for a, b in zip(colour, camera["mean"], strict=True)) > 60, (colour, camera)
    finally:
        await bot.leave()
        await alice.close()
