"""Four people in Chromium: the grid, the active speaker, chat history; and the README's screenshots
(SWITCHYARD_SCREENSHOTS=1 writes them to docs/screenshots)."""

from __future__ import annotations

import asyncio
import os

import pytest
from playwright.async_api import expect

from tests.browser.conftest import SCREENSHOTS, Person, media_flowing

pytestmark = pytest.mark.timeout(240)

NAMES = ["Ada", "Grace", "Linus", "Margaret"]


async def create_room_by_api(person: Person, name: str, is_public: bool = True) -> None:
    """A room made through the REST API with the person's stored session (no page change)."""
    await person.page.evaluate("""async ([name, isPublic]) => {
        const {token} = JSON.parse(localStorage.getItem('switchyard.session'));
        const answer = await fetch('/api/rooms', {method: 'POST',
            headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`},
            body: JSON.stringify({name, isPublic})});
        if (answer.status !== 201) throw new Error(`create room: ${answer.status}`);
    }""", [name, is_public])


async def self_peer_id(person: Person) -> str:
    return await person.page.locator('figure.tile[data-self="true"][data-source="camera"]').get_attribute("data-peer-id")


async def expect_speaker(people: list[Person], speaker: Person) -> None:
    """Exactly one tile is marked as the active speaker on every screen: the speaker's."""
    peer_id = await self_peer_id(speaker)
    for person in people:
        marked = person.page.locator('figure.tile[data-active-speaker="true"]')
        await expect(marked).to_have_count(1)
        await expect(marked).to_have_attribute("data-peer-id", peer_id)


async def test_four_people_grid_and_active_speaker(browser, server, tmp_path):
    # The README's screenshots are rewritten only when asked, so a test run leaves the tree clean.
    shots = SCREENSHOTS if os.environ.get("SWITCHYARD_SCREENSHOTS") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    # The sign-in page, as a newcomer sees it.
    visitor = await Person.open(browser, server.url, "Visitor")
    await visitor.page.goto("/")
    await visitor.page.wait_for_url("**/login")
    await expect(visitor.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await visitor.page.screenshot(path=shots / "login.png")

    people = [await Person.open(browser, server.url, name) for name in NAMES]
    await asyncio.gather(*(person.guest() for person in people))
    ada = people[0]
    room_path = await ada.create_room("Design review")
    await ada.join()
    # Written before the others come: they find it in the history the app loads on join.
    await ada.page.get_by_role("button", name="Chat").click()
    await ada.page.get_by_role("textbox", name="Message").fill("Agenda: the new onboarding flow")
    await ada.page.get_by_role("textbox", name="Message").press("Enter")
    await expect(ada.page.get_by_role("list", name="Messages")).to_contain_text("Agenda")
    for person in people[1:]:
        await person.join(room_path)

    for person in people:
        await expect(person.grid()).to_have_attribute("data-tiles", "4")
        for other in NAMES:
            if other != person.name:
                await person.wait_video_playing(other)
    await asyncio.gather(*(media_flowing(person, video_streams=3, audio_streams=3) for person in people))

    # The active speaker: everyone but Ada mutes, so Ada is marked on every screen; then Ada mutes
    # and Grace speaks, and the marker moves to Grace everywhere.
    ada, grace, linus, margaret = people
    for person in (grace, linus, margaret):
        await person.page.get_by_role("button", name="Mute").click()
    await expect_speaker(people, ada)
    await ada.page.get_by_role("button", name="Mute").click()
    await grace.page.get_by_role("button", name="Mute").click()
    await expect_speaker(people, grace)

    # History: Margaret joined after Ada wrote, and reads it in the chat panel.
    await margaret.page.get_by_role("button", name="Chat").click()
    await expect(margaret.page.get_by_role("list", name="Messages")).to_contain_text("Agenda: the new onboarding flow")
    await margaret.page.get_by_role("textbox", name="Message").fill("Sounds good, I have the mockups")
    await margaret.page.get_by_role("textbox", name="Message").press("Enter")
    await expect(ada.page.get_by_role("list", name="Messages")).to_contain_text("I have the mockups")

    # A raised hand, for the screenshot of a four-person room (Grace speaking, the others muted).
    await margaret.page.get_by_role("button", name="Raise hand").click()
    await expect(ada.tile_of("Margaret")).to_have_attribute("data-hand-raised", "true")
    await expect(ada.tile_of("Linus")).to_have_attribute("data-audio-muted", "true")
    await ada.page.wait_for_timeout(500)
    await ada.page.screenshot(path=shots / "room-four.png")

    # The room list, with live participant counts, from someone who is not in the call.
    await visitor.register()
    await create_room_by_api(visitor, "Weekly planning")
    await create_room_by_api(visitor, "1:1 with Ada", is_public=False)
    await visitor.page.get_by_role("button", name="Refresh").click()
    design = visitor.page.locator("li.room-row").filter(has_text="Design review")
    await expect(design).to_contain_text("4 people")
    await expect(visitor.page.locator("li.room-row").filter(has_text="1:1 with Ada")).to_contain_text("Private")
    await visitor.page.screenshot(path=shots / "rooms.png")

    # One leaves: the others go down to three tiles.
    await people[3].page.get_by_role("button", name="Leave").click()
    for person in people[:3]:
        await expect(person.grid()).to_have_attribute("data-tiles", "3")

    for person in [visitor, *people]:
        await person.close()
