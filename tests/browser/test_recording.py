"""Recording from the web app in Chromium: the owner's Record button, the red dot everyone sees, and the
file of a browser's simulcast camera, recorded from its top layer."""

from __future__ import annotations

import asyncio
import io
import zipfile

import av
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person
from tests.browser.test_call import wait_encodings

pytestmark = pytest.mark.timeout(180)

RECORD_SECONDS = 4


async def test_the_owner_records_everyone_sees_the_dot_and_the_file_has_the_top_layer(browser, server, tmp_path):
    alice = await Person.open(browser, server.url, "Alice")
    bob = await Person.open(browser, server.url, "Bob")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Recorded")
    await alice.join()
    await bob.join(room_path)
    await alice.wait_video_playing("Bob")
    # every simulcast encoding on, so the recording starts on the top layer (were one still off, it
    # would start on the next one down and switch up in a new segment)
    await wait_encodings(alice, {"r0": True, "r1": True, "r2": True})
    await wait_encodings(bob, {"r0": True, "r1": True, "r2": True})

    dot = "This room is being recorded"
    await expect(bob.page.get_by_role("button", name="Record")).to_have_count(0)  # only the owner has it
    await alice.page.get_by_role("button", name="Record").click()
    await expect(alice.page.get_by_role("status", name=dot)).to_be_visible()
    await expect(bob.page.get_by_role("status", name=dot)).to_be_visible()
    await asyncio.sleep(RECORD_SECONDS)
    await alice.page.get_by_role("button", name="Stop recording").click()
    await expect(alice.page.get_by_role("status", name=dot)).to_have_count(0)
    await expect(bob.page.get_by_role("status", name=dot)).to_have_count(0)

    # the stopped recording, downloaded with the owner's token: a file per person
    room_id = room_path.rsplit("/", 1)[1]
    token = await alice.page.evaluate("JSON.parse(localStorage.getItem('switchyard.session')).token")
    headers = {"Authorization": f"Bearer {token}"}
    listed = await (await alice.context.request.get(f"/api/rooms/{room_id}/recordings", headers=headers)).json()
    recording = listed["recordings"][0]
    people = {entry["name"].split("-")[0] for entry in recording["files"]}
    assert recording["state"] == "stopped" and people == {"Alice", "Bob"}, recording
    response = await alice.context.request.get(f"/api/rooms/{room_id}/recordings/{recording['id']}/file",
                                               headers=headers)
    assert response.status == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await response.body())) as archive:
        archive.extractall(tmp_path)
    for person in people:  # each person's last segment (a layer switch would start a new one)
        last = max(e["name"] for e in recording["files"] if e["name"].startswith(person + "-"))
        with av.open(str(tmp_path / last)) as container:
            assert {s.type for s in container.streams} == {"audio", "video"}
            video = container.streams.video[0]
            # the camera is three simulcast encodings (80x45, 160x90, 320x180): the file has the top one
            assert (video.codec_context.width, video.codec_context.height) == (320, 180)
            frames = sum(1 for _ in container.decode(video=0))
            assert frames >= 10
    await alice.close()
    await bob.close()
