"""The app on a phone: Chromium's device emulation (390x844 CSS px at 3x, touch, mobile viewport)
in portrait and, turned, in landscape (844x390), in a real two-party call. Every control is inside
the screen and takes a tap, nothing scrolls sideways, the chat opens as a sheet over the call and a
message sent from it arrives, the other's video plays. Screenshots phone-*.png, written to
docs/screenshots with SWITCHYARD_SCREENSHOTS=1 (else to a temporary folder: a run leaves the tree clean)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import SCREENSHOTS, Person

pytestmark = pytest.mark.timeout(180)

PORTRAIT = {"width": 390, "height": 844}
LANDSCAPE = {"width": 844, "height": 390}
PHONE = {"device_scale_factor": 3, "is_mobile": True, "has_touch": True}
# a thumb needs about 44 CSS px (Apple HIG) to 48 (Material); the bar's buttons may not be smaller
MIN_TARGET = 40


async def assert_no_sideways_scroll(page: Page, where: str) -> None:
    widths = await page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
        body: document.body.scrollWidth, viewport: window.innerWidth})""")
    assert widths["scroll"] <= widths["viewport"] and widths["body"] <= widths["viewport"], (where, widths)


async def assert_inside(page: Page, locator, where: str) -> dict:
    viewport = page.viewport_size
    box = await locator.bounding_box()
    assert box is not None, where
    assert box["x"] >= 0 and box["y"] >= 0, (where, box)
    assert box["x"] + box["width"] <= viewport["width"] + 0.5, (where, box, viewport)
    assert box["y"] + box["height"] <= viewport["height"] + 0.5, (where, box, viewport)
    return box


async def check_controls(page: Page, where: str) -> None:
    """Every button of the bottom bar: on screen, thumb-sized, in the lower part, and tappable (no
    other element over it: Playwright's trial click checks that the point receives the event)."""
    buttons = page.locator("nav.controls > button")
    count = await buttons.count()
    assert count >= 6, count
    height = page.viewport_size["height"]
    for index in range(count):
        button = buttons.nth(index)
        name = await button.get_attribute("aria-label") or await button.inner_text()
        box = await assert_inside(page, button, f"{where}: {name}")
        assert box["width"] >= MIN_TARGET and box["height"] >= MIN_TARGET, (where, name, box)
        assert box["y"] >= height * 0.6, (where, name, box)  # a bottom bar, where the thumb is
        if await button.is_enabled():
            await button.click(trial=True, timeout=5_000)


async def check_call(alice: Person, bob: Person, where: str, text: str, shots: Path) -> None:
    page = alice.page
    await alice.wait_video_playing("Bob")
    await assert_inside(page, alice.tile_of("Bob"), f"{where}: Bob's tile")
    await assert_inside(page, page.locator('figure.tile[data-self="true"]'), f"{where}: own tile")
    await check_controls(page, where)
    await assert_no_sideways_scroll(page, where)

    # the chat: a sheet over the call, opened and closed by buttons, the bar still reachable
    await page.get_by_role("button", name="Chat").tap()
    sheet = page.locator(".chat-panel")
    await expect(sheet).to_be_visible()
    await expect(sheet).to_have_css("position", "absolute")
    await page.wait_for_function("() => !document.querySelector('.chat-panel').getAnimations().length")
    await assert_inside(page, sheet, f"{where}: chat sheet")
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send message").tap()
    await expect(page.get_by_role("list", name="Messages")).to_contain_text(text)
    await bob.page.get_by_role("button", name="Chat").tap()
    await expect(bob.page.get_by_role("list", name="Messages")).to_contain_text(text)
    await bob.page.get_by_role("button", name="Close chat").tap()
    await assert_no_sideways_scroll(page, f"{where}, chat open")
    await page.screenshot(path=str(shots / f"phone-{where}-chat.png"))
    await page.get_by_role("button", name="Close chat").tap()
    await expect(sheet).to_have_count(0)
    await check_controls(page, f"{where}, chat closed")


async def test_call_on_a_phone_in_portrait_and_landscape(browser, server, tmp_path):
    shots = SCREENSHOTS if os.environ.get("SWITCHYARD_SCREENSHOTS") else tmp_path
    alice = await Person.open(browser, server.url, "Alice", viewport=PORTRAIT, **PHONE)
    bob = await Person.open(browser, server.url, "Bob", viewport=PORTRAIT, **PHONE)
    await alice.guest()
    await bob.guest()
    await assert_no_sideways_scroll(alice.page, "rooms")
    room_path = await alice.create_room("Bus stop")
    await assert_no_sideways_scroll(alice.page, "pre-join")
    # the pre-join page may scroll down (the preview comes first), never sideways
    join = alice.page.get_by_role("button", name="Join room")
    await join.scroll_into_view_if_needed()
    await assert_inside(alice.page, join, "pre-join: Join room")
    await alice.join()
    await bob.join(room_path)
    await expect(alice.grid()).to_have_attribute("data-tiles", "2")

    await check_call(alice, bob, "portrait", "hello from a phone held upright", shots)
    await alice.page.screenshot(path=str(shots / "phone-portrait.png"))

    # turned sideways: the same call, laid out again
    await alice.page.set_viewport_size(LANDSCAPE)
    await bob.page.set_viewport_size(LANDSCAPE)
    await check_call(alice, bob, "landscape", "and now turned sideways", shots)
    await alice.page.screenshot(path=str(shots / "phone-landscape.png"))
    await bob.wait_video_playing("Alice")

    errors = [line for line in alice.console + bob.console if line.startswith(("error", "pageerror"))]
    assert not errors, errors
    await alice.close()
    await bob.close()


async def test_the_app_can_be_installed(browser, server):
    """index.html links a manifest that says how to install the app (display, colours, icons)."""
    person = await Person.open(browser, server.url, "Ina", viewport=PORTRAIT, **PHONE)
    page = person.page
    await page.goto("/")
    href = await page.locator('link[rel="manifest"]').get_attribute("href")
    assert await page.locator('meta[name="theme-color"]').get_attribute("content")
    response = await page.request.get(href)
    assert response.ok, href
    assert response.headers["content-type"].startswith("application/manifest+json"), response.headers
    manifest = await response.json()
    assert manifest["name"] and manifest["short_name"] and manifest["start_url"]
    assert manifest["display"] == "standalone" and manifest["theme_color"]
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes, sizes
    for icon in manifest["icons"]:
        image = await page.request.get(icon["src"])
        assert image.ok and image.headers["content-type"].startswith(icon["type"]), icon
        width, height = (int(n) for n in icon["sizes"].split("x"))
        # the PNG's own size (IHDR) is the one the manifest claims
        body = await image.body()
        assert body[:8] == b"\x89PNG\r\n\x1a\n", icon
        assert (int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")) == (width, height), icon
    await person.close()


async def test_sign_in_rooms_and_pre_join_fit_both_ways(browser, server):
    """The pages before the call, upright and on its side (a fresh phone each): no sideways
    scrolling, their main button on screen (after scrolling down, which a phone does)."""
    for where, viewport in (("portrait", PORTRAIT), ("landscape", LANDSCAPE)):
        person = await Person.open(browser, server.url, "Lou", viewport=viewport, **PHONE)
        page = person.page
        await page.goto("/")
        await assert_no_sideways_scroll(page, f"{where}: sign in")
        guest = page.get_by_role("button", name="Continue as guest")
        await guest.scroll_into_view_if_needed()
        await assert_inside(page, guest, f"{where}: Continue as guest")
        await page.get_by_label("Your name").fill("Lou")
        await guest.tap()
        await page.wait_for_url("**/rooms")
        await assert_no_sideways_scroll(page, f"{where}: rooms")
        create = page.get_by_role("button", name="Create room")
        await create.scroll_into_view_if_needed()
        await assert_inside(page, create, f"{where}: Create room")
        await page.get_by_label("Room name").fill(f"Lunch {where}")
        await create.tap()
        await page.wait_for_url("**/rooms/*")
        join = page.get_by_role("button", name="Join room")
        await expect(join).to_be_enabled()
        await assert_no_sideways_scroll(page, f"{where}: pre-join")
        await join.scroll_into_view_if_needed()
        await assert_inside(page, join, f"{where}: Join room")
        await person.close()
