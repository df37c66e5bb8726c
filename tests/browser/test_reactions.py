"""Reactions in Chromium: emoji sent over a DataChannel (mediasoup-client's produceData/consumeData on the
server's SCTP) float over the sender's tile in both browsers."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person

pytestmark = pytest.mark.timeout(120)


async def react(person: Person, emoji: str) -> None:
    picker = person.page.get_by_role("group", name="Reactions")
    if not await picker.is_visible():
        await person.page.get_by_role("button", name="React", exact=True).click()
    await picker.get_by_role("button", name=f"React with {emoji}").click()


async def test_reactions_float_over_the_senders_tile_for_everyone(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    bob = await Person.open(browser, server.url, "Bob")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Reactions")
    await alice.join()
    await bob.join(room_path)
    await expect(alice.tile_of("Bob")).to_be_visible()
    await expect(bob.tile_of("Alice")).to_be_visible()

    # the reactions channel opens once each send transport's SCTP association is up
    await expect(alice.page.get_by_role("button", name="React", exact=True)).to_be_enabled()
    sent = False
    for _ in range(50):
        await react(alice, "🎉")
        if await bob.tile_of("Alice").locator('.reaction[data-emoji="🎉"]').count():
            sent = True
            break
        await bob.page.wait_for_timeout(200)
    assert sent, alice.console[-20:] + bob.console[-20:]
    await expect(alice.page.locator('figure.tile[data-self="true"] .reaction[data-emoji="🎉"]').first).to_be_visible()

    await react(bob, "👍")
    await expect(alice.tile_of("Bob").locator('.reaction[data-emoji="👍"]').first).to_be_visible(timeout=10_000)
    # nobody else's tile shows it, and it floats away after a few seconds
    await expect(alice.page.locator('figure.tile[data-self="true"] .reaction[data-emoji="👍"]')).to_have_count(0)
    await expect(alice.tile_of("Bob").locator(".reaction")).to_have_count(0, timeout=10_000)

    transport = (await alice.page.evaluate("async () => window.switchyard.serverTransportStats('send')"))[0]
    assert transport["sctpState"] == "connected"
    for person in (alice, bob):
        assert not [line for line in person.console if "pageerror" in line], person.console
        await person.close()
