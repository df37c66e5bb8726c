"""The client package on its own: its example page (web/packages/client/example, no React and no app
code; `make web` builds it beside the app, so `switchyard serve` serves it at /sdk-example.html) joins a
room in Chromium next to a person in the web app; video goes both ways, and the package's data channels
(publishData, the `data` event) talk to the app's reactions."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person

pytestmark = pytest.mark.timeout(120)


async def test_example_page_joins_a_room_and_shows_video(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    sam = await Person.open(browser, server.url, "Sam")
    await alice.guest()
    room_path = await alice.create_room("SDK example")
    room_id = room_path.rsplit("/", 1)[1]
    await alice.join()

    await sam.page.goto(f"/sdk-example.html?room={room_id}&name=Sam")
    await sam.page.get_by_role("button", name="Join").click()
    try:
        await expect(sam.page.locator("#status")).to_have_text("joined")
    except AssertionError as error:
        raise AssertionError(f"{error}\nconsole: {sam.console[-20:]}") from None

    # Sam's page plays Alice's camera; Alice's app plays Sam's.
    remote = sam.page.locator("#videos figure[data-peer] video")
    await expect(remote).to_have_count(1)
    await sam.page.wait_for_function("v => v.videoWidth > 0 && v.readyState >= 2",
                                     arg=await remote.element_handle(), timeout=20_000)
    await expect(sam.page.locator("#videos figure[data-peer] figcaption")).to_have_text("Alice")
    await alice.wait_video_playing("Sam")

    # A data channel of the package reaches the app's reactions, and the app's reach the package.
    await sam.page.evaluate("""() => {
        window.received = [];
        window.switchyard.on('data', (m) => window.received.push([m.label, m.data]));
        window.reactions = window.switchyard.publishData('reactions', {ordered: false, maxPacketLifeTime: 2000});
    }""")
    shown = False
    for _ in range(50):
        await sam.page.evaluate("""() => window.reactions.send(JSON.stringify({emoji: '🎉'}))""")
        if await alice.tile_of("Sam").locator('.reaction[data-emoji="🎉"]').count():
            shown = True
            break
        await alice.page.wait_for_timeout(200)
    assert shown, sam.console[-20:] + alice.console[-20:]

    got = "window.received.some(([label, data]) => label === 'reactions' && JSON.parse(data).emoji === '👍')"
    picker = alice.page.get_by_role("group", name="Reactions")
    for _ in range(50):
        if not await picker.is_visible():
            await alice.page.get_by_role("button", name="React", exact=True).click()
        await picker.get_by_role("button", name="React with 👍").click()
        if await sam.page.evaluate(got):
            break
        await sam.page.wait_for_timeout(200)
    assert await sam.page.evaluate(got), sam.console[-20:]

    # Leaving from the page takes Sam out of Alice's grid.
    await sam.page.get_by_role("button", name="Leave").click()
    await expect(sam.page.locator("#status")).to_have_text("left")
    await expect(alice.grid()).to_have_attribute("data-tiles", "1")
    for person in (alice, sam):
        assert not [line for line in person.console if "pageerror" in line], person.console
        await person.close()


# An encoded transform that passes frames through and reports how many it saw, per side.
COUNTING_TRANSFORM = """
onrtctransform = (event) => {
  const transformer = event.transformer;
  const side = transformer.options.side;
  let frames = 0;
  transformer.readable.pipeThrough(new TransformStream({
    transform(frame, controller) {
      frames += 1;
      if (frames % 5 === 1) self.postMessage({side, frames});
      controller.enqueue(frame);
    },
  })).pipeTo(transformer.writable);
};
"""


async def test_transform_hooks_see_every_sender_and_receiver_before_media(browser, server):
    """The seam for end-to-end encryption: `transforms.sender` and `.receiver` get each RTCRtpSender
    and RTCRtpReceiver before negotiation (mediasoup-client's onRtpSender/onRtpReceiver), and an
    RTCRtpScriptTransform set there carries every frame both ways."""
    alice = await Person.open(browser, server.url, "Alice")
    eve = await Person.open(browser, server.url, "Eve")
    await alice.guest()
    room_path = await alice.create_room("Transforms")
    await alice.join()

    await eve.page.goto("/sdk-example.html")
    status = await eve.page.evaluate("""async ([roomId, code]) => {
        const session = await (await fetch('/api/auth/guest', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({displayName: 'Eve'})})).json();
        const worker = new Worker(URL.createObjectURL(new Blob([code], {type: 'text/javascript'})));
        window.frames_ = {send: 0, recv: 0};
        worker.onmessage = (e) => { window.frames_[e.data.side] = Math.max(window.frames_[e.data.side], e.data.frames); };
        window.hooked = [];
        const stream = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 180}});
        const client = new window.RoomClient({
            url: location.origin, token: session.token, roomId, displayName: 'Eve',
            media: {mic: null, camera: stream.getVideoTracks()[0]},
            transforms: {
                sender: (sender, info) => {
                    window.hooked.push(['send', info.source, info.kind, sender.transform === null]);
                    sender.transform = new RTCRtpScriptTransform(worker, {side: 'send'});
                },
                receiver: (receiver, info) => {
                    window.hooked.push(['recv', info.source, info.kind, info.peerId !== client.state.selfPeerId]);
                    receiver.transform = new RTCRtpScriptTransform(worker, {side: 'recv'});
                },
            },
        });
        window.eve = client;
        await client.join();
        return client.state.status;
    }""", [room_path.rsplit("/", 1)[1], COUNTING_TRANSFORM])
    assert status == "joined", eve.console[-20:]

    # Eve's camera went through her sender transform and plays in Alice's app; Alice's camera and
    # microphone came through Eve's receiver transforms.
    await alice.wait_video_playing("Eve")
    await eve.page.wait_for_function("window.frames_.send > 10 && window.frames_.recv > 10", timeout=20_000)
    hooked = await eve.page.evaluate("window.hooked")
    assert ["send", "camera", "video", True] in hooked, hooked
    assert sorted(h for h in hooked if h[0] == "recv") == [["recv", "camera", "video", True],
                                                          ["recv", "mic", "audio", True]], hooked
    decoded = await eve.page.evaluate("""async () => (await window.eve.transportStats('recv'))
        .filter(s => s.type === 'inbound-rtp' && s.kind === 'video').map(s => s.framesDecoded || 0)""")
    assert decoded and decoded[0] > 0, decoded
    await eve.page.evaluate("window.eve.leave()")
    for person in (alice, eve):
        assert not [line for line in person.console if "pageerror" in line], person.console
        await person.close()
