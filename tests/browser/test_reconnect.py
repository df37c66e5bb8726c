"""A phone between networks: one person's browser goes offline for 5 s in a two-party call
(Playwright's offline mode, Chromium's network emulation). The app says "Reconnecting…" meanwhile,
then reconnects Socket.IO, joins again, makes new transports and publishes again by itself: video
plays both ways again without a reload. While offline it does not hammer the network with joins
that cannot work; the `online` event starts the next one at once. And the server itself dies and
comes back on the same address: both people get back into the room by themselves."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person, media_flowing
from tests.signaling_server import ServerProcess

pytestmark = pytest.mark.timeout(180)

OUTAGE_S = 5.0


async def video_advancing(person: Person, name: str, seconds: float = 1.0) -> None:
    """The other's <video> moves on: its currentTime and decoded frame count grow within 20 s."""
    video = await person.tile_of(name).locator("video").element_handle()
    await person.page.wait_for_function("""async ([v, ms]) => {
        const read = () => [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames];
        const [t0, f0] = read();
        await new Promise(r => setTimeout(r, ms));
        const [t1, f1] = read();
        return t1 > t0 && f1 > f0 && v.videoWidth > 0;
    }""", arg=[video, int(seconds * 1000)], timeout=20_000, polling=100)


async def test_offline_for_five_seconds_then_video_resumes_both_ways(browser, server):
    alice = await Person.open(browser, server.url, "Ada")
    bob = await Person.open(browser, server.url, "Bo")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Train tunnel")
    await alice.join()
    await bob.join(room_path)
    await alice.wait_video_playing("Bo")
    await bob.wait_video_playing("Ada")
    page = bob.page.locator(".call-page")
    loop = asyncio.get_running_loop()

    await bob.page.evaluate("window.beforeOutage = true")
    await bob.context.set_offline(True)
    went_offline = loop.time()
    try:
        # the app notices at once (the browser's offline event), not after a ping timeout
        await expect(page).to_have_attribute("data-status", "reconnecting", timeout=10_000)
        await expect(bob.page.get_by_role("status")).to_have_text("Reconnecting…")
        await expect(bob.page.get_by_role("alert").filter(has_text="Reconnecting")).to_be_visible()
        await asyncio.sleep(max(0.0, OUTAGE_S - (loop.time() - went_offline)))
        # still trying, not given up, while the network is away
        await expect(page).to_have_attribute("data-status", "reconnecting")
    finally:
        await bob.context.set_offline(False)

    came_back = loop.time()
    # While the browser says it is offline the app waits for the network instead of trying every
    # 1, 2, 4 s (three failed joins in 5 s): one try that fails, then nothing until it is back.
    failed_joins = [line for line in bob.console if "join failed, retrying" in line]
    assert len(failed_joins) <= 2, bob.console
    await expect(page).to_have_attribute("data-status", "joined", timeout=30_000)
    print(f"rejoined {loop.time() - came_back:.1f} s after the network came back")
    await expect(bob.page.get_by_role("alert").filter(has_text="Reconnecting")).to_have_count(0)

    # Bo is in the room again as a new peer; the old one is gone: one tile each, video both ways.
    await expect(alice.grid()).to_have_attribute("data-tiles", "2", timeout=30_000)
    await expect(bob.grid()).to_have_attribute("data-tiles", "2")
    await video_advancing(alice, "Bo")
    await video_advancing(bob, "Ada")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)
    # no reload: the page's state from before the outage is still there
    assert await bob.page.evaluate("window.beforeOutage") is True
    await alice.close()
    await bob.close()


async def test_server_restart_both_rejoin(browser, web_dist, tmp_path):
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/s.db", extra_env={"SWITCHYARD_WEB_DIR": str(web_dist)})
    try:
        alice = await Person.open(browser, server.url, "Cy")
        bob = await Person.open(browser, server.url, "Di")
        await alice.guest()
        await bob.guest()
        room_path = await alice.create_room("Rolling update")
        await alice.join()
        await bob.join(room_path)
        await alice.wait_video_playing("Di")
        await bob.wait_video_playing("Cy")

        server.kill()  # a crash, or a restart with no goodbye: every socket and transport gone
        for person in (alice, bob):
            await expect(person.page.locator(".call-page")).to_have_attribute("data-status", "reconnecting",
                                                                              timeout=10_000)
        await asyncio.sleep(2)
        server.restart()  # same port, database (the room, the guests) and token secret
        for person in (alice, bob):
            # the backoff is at most 10 s apart; the join, transports and media take a few more
            await expect(person.page.locator(".call-page")).to_have_attribute("data-status", "joined",
                                                                              timeout=40_000)
        await expect(alice.grid()).to_have_attribute("data-tiles", "2", timeout=30_000)
        await expect(bob.grid()).to_have_attribute("data-tiles", "2", timeout=30_000)
        await video_advancing(alice, "Di")
        await video_advancing(bob, "Cy")
        await media_flowing(alice, video_streams=1, audio_streams=1)
        await media_flowing(bob, video_streams=1, audio_streams=1)
        await alice.close()
        await bob.close()
    finally:
        err = server.stop()
    assert "Traceback" not in err, err
