"""Two people in Chromium: accounts, a room, video and audio both ways, dynacast, screen sharing, chat,
mute, hand, leave; and a dropped connection that the app recovers from by itself."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person, media_flowing

pytestmark = pytest.mark.timeout(180)


async def wait_encodings(person: Person, active: dict[str, bool]) -> None:
    """The sender's simulcast encodings reach the given active flags (dynacast at work)."""
    for _ in range(100):
        outbound = await person.outbound_video()
        if all(outbound.get(rid, {}).get("active") == flag for rid, flag in active.items()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{person.name}'s encodings never became {active}: {outbound}")


async def test_two_people_talk_chat_and_leave(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    bob = await Person.open(browser, server.url, "Bob")
    await alice.register()
    await bob.register()

    room_path = await alice.create_room("Standup")
    await alice.join()
    await bob.join(room_path)

    # Each sees the other's camera playing, and frames and audio keep arriving.
    await alice.wait_video_playing("Bob")
    await bob.wait_video_playing("Alice")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)
    await expect(alice.grid()).to_have_attribute("data-tiles", "2")

    # The camera goes out as three simulcast encodings, all in use while Bob's tile is large.
    await wait_encodings(alice, {"r0": True, "r1": True, "r2": True})
    # Bob's browser reports what it receives (transport-cc), and the server's estimate reads it.
    transport = await bob.server_recv_transport()
    print(f"Bob's receive transport: {transport['bweFeedbacks']} transport-cc feedbacks, send bitrate "
          f"{transport['sendBitrate']} bit/s, estimate {transport['availableOutgoingBitrate']}")
    assert transport["bweFeedbacks"] > 0 and transport["sendBitrate"] > 0
    # Bob's window shrinks: his tile of Alice asks for layer 0, the server tells Alice that only
    # layer 0 is needed, and her browser turns r1 and r2 off; they come back when Bob's tile grows.
    # (120 px: a window this short gets the slim phone-landscape header and bar, which leave the
    # grid more height than 160 px used to)
    await bob.page.set_viewport_size({"width": 480, "height": 120})
    await wait_encodings(alice, {"r0": True, "r1": False, "r2": False})
    await bob.page.set_viewport_size({"width": 1280, "height": 800})
    await wait_encodings(alice, {"r0": True, "r1": True, "r2": True})

    # Screen sharing: Bob gets a second tile of Alice's, playing her screen; it goes when she stops.
    await alice.page.get_by_role("button", name="Share screen").click()
    await expect(alice.page.get_by_role("button", name="Share screen")).to_have_attribute("aria-pressed", "true")
    screen = bob.page.locator('figure.tile[data-source="screen"]')
    await expect(screen.locator(".tile-name")).to_have_text("Alice (screen)")
    await bob.page.wait_for_function("v => v.videoWidth > 0", arg=await screen.locator("video").element_handle())
    await expect(bob.grid()).to_have_attribute("data-tiles", "3")
    await alice.page.get_by_role("button", name="Share screen").click()
    await expect(screen).to_have_count(0)

    # Chat: Alice writes, Bob sees an unread count, opens the panel and answers.
    await alice.page.get_by_role("button", name="Chat").click()
    await alice.page.get_by_role("textbox", name="Message").fill("hello from Alice")
    await alice.page.get_by_role("textbox", name="Message").press("Enter")
    await expect(bob.page.get_by_role("button", name="Chat")).to_contain_text("1")
    await bob.page.get_by_role("button", name="Chat").click()
    bob_messages = bob.page.get_by_role("list", name="Messages")
    await expect(bob_messages).to_contain_text("hello from Alice")
    await bob.page.get_by_role("textbox", name="Message").fill("hi Alice, Bob here")
    await bob.page.get_by_role("button", name="Send message").click()
    await expect(alice.page.get_by_role("list", name="Messages")).to_contain_text("hi Alice, Bob here")

    # Mute, camera off and a raised hand show on the other side.
    await alice.page.get_by_role("button", name="Mute").click()
    await expect(alice.page.get_by_role("button", name="Mute")).to_have_attribute("aria-pressed", "true")
    alice_tile = bob.tile_of("Alice")
    await expect(alice_tile).to_have_attribute("data-audio-muted", "true")
    await expect(alice_tile).to_have_attribute("aria-label", re.compile(r"^Alice: microphone muted"))
    await alice.page.get_by_role("button", name="Raise hand").click()
    await expect(alice_tile).to_have_attribute("data-hand-raised", "true")
    await expect(alice_tile.get_by_text("Hand raised")).to_be_attached()
    await alice.page.get_by_role("button", name="Raise hand").click()
    await expect(alice_tile).to_have_attribute("data-hand-raised", "false")
    await alice.page.get_by_role("button", name="Stop video").click()
    await expect(alice_tile).to_have_attribute("data-video-off", "true")
    await alice.page.get_by_role("button", name="Stop video").click()
    await expect(alice_tile).to_have_attribute("data-video-off", "false")
    await alice.page.get_by_role("button", name="Mute").click()
    await expect(alice_tile).to_have_attribute("data-audio-muted", "false")

    # Bob leaves: he is back on the room list, and his tile is gone from Alice's grid.
    await bob.page.get_by_role("button", name="Leave").click()
    await bob.page.wait_for_url("**/rooms")
    await expect(alice.grid()).to_have_attribute("data-tiles", "1")
    await expect(alice.tile_of("Bob")).to_have_count(0)

    errors = [line for line in alice.console + bob.console if line.startswith(("error", "pageerror"))]
    assert not errors, errors
    await alice.close()
    await bob.close()


async def test_reconnects_after_the_connection_drops(browser, server):
    alice = await Person.open(browser, server.url, "Ann")
    bob = await Person.open(browser, server.url, "Ben")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Flaky network")
    await alice.join()
    await bob.join(room_path)
    await alice.wait_video_playing("Ben")

    # Record every status Ben's page goes through, then cut his signaling connection.
    await bob.page.evaluate("""() => {
        window.statuses = [];
        const page = document.querySelector('.call-page');
        new MutationObserver(() => window.statuses.push(page.dataset.status))
            .observe(page, {attributes: true, attributeFilter: ['data-status']});
        window.switchyard.simulateNetworkDrop();
    }""")
    await expect(bob.page.locator(".call-page")).to_have_attribute("data-status", "joined")
    statuses = await bob.page.evaluate("window.statuses")
    assert "reconnecting" in statuses, statuses

    # Ben is back in the room as a new peer: both see and hear each other again.
    await alice.wait_video_playing("Ben")
    await bob.wait_video_playing("Ann")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)
    await expect(alice.grid()).to_have_attribute("data-tiles", "2")
    await alice.close()
    await bob.close()
