"""The media worker under a two-party Chromium call dies (kill -9): the server respawns it on the
same port, the web app gets `room-closed` with `reason: "worker_died"`, says "Reconnecting…" and
joins again by itself, and video plays both ways again, on the new worker, without a reload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person, media_flowing
from tests.browser.test_reconnect import video_advancing
from tests.signaling_server import ServerProcess

pytestmark = pytest.mark.timeout(150)

# every value the call page's data-status takes from now on, in order
WATCH_STATUS = """() => {
    window.statusLog = [];
    new MutationObserver((changes) => {
        for (const change of changes) window.statusLog.push(change.target.getAttribute('data-status'));
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-status']});
}"""


def worker_health(url: str) -> dict:
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=5) as response:
            return json.loads(response.read())["workers"][0]
    except urllib.error.HTTPError as error:  # 503 while the worker is down: the same shape
        return json.loads(error.read())["workers"][0]


async def test_worker_killed_during_a_call_both_rejoin_on_the_respawned_worker(browser, web_dist, tmp_path):
    # one worker: the room can only come back on the respawned process
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path}/s.db", extra_env={"SWITCHYARD_WEB_DIR": str(web_dist)})
    try:
        alice = await Person.open(browser, server.url, "Eu")
        bob = await Person.open(browser, server.url, "Fa")
        await alice.guest()
        await bob.guest()
        room_path = await alice.create_room("Crash course")
        await alice.join()
        await bob.join(room_path)
        await alice.wait_video_playing("Fa")
        await bob.wait_video_playing("Eu")
        await bob.page.evaluate("window.beforeCrash = true")
        for person in (alice, bob):  # the "reconnecting" spell may be shorter than a poll of expect()
            await person.page.evaluate(WATCH_STATUS)
        before = worker_health(server.url)

        os.kill(before["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        for person in (alice, bob):
            await person.page.wait_for_function(
                "window.statusLog.includes('reconnecting') && "
                "document.querySelector('.call-page').dataset.status === 'joined'", timeout=30_000, polling=100)
        await expect(alice.grid()).to_have_attribute("data-tiles", "2", timeout=30_000)
        await expect(bob.grid()).to_have_attribute("data-tiles", "2", timeout=30_000)
        await video_advancing(alice, "Fa")
        await video_advancing(bob, "Eu")
        print(f"video both ways again {time.monotonic() - killed_at:.1f} s after the kill")
        await media_flowing(alice, video_streams=1, audio_streams=1)
        await media_flowing(bob, video_streams=1, audio_streams=1)
        after = await asyncio.to_thread(worker_health, server.url)
        assert after["pid"] != before["pid"] and after["rtcPort"] == before["rtcPort"], (before, after)
        assert (after["status"], after["restarts"], after["rooms"]) == ("ok", 1, 1), after
        assert await bob.page.evaluate("window.beforeCrash") is True  # no reload
        await alice.close()
        await bob.close()
    finally:
        err = server.stop()
    assert "Traceback" not in err, err
