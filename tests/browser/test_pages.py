"""The app's pages without a call: sign-in errors, links into a room, unknown and full rooms, routes."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PASSWORD, Person

pytestmark = pytest.mark.timeout(120)


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_app_pages_and_assets_are_served(server):
    for path in ("/", "/login", "/register", "/rooms", "/rooms/", "/rooms/some-room-id"):
        status, headers, body = fetch(server.url + path)
        assert status == 200 and b'<div id="root">' in body, path
        assert headers["Cache-Control"] == "no-cache"
    index = fetch(server.url + "/")[2].decode()
    script = re.search(r'src="(/assets/[^"]+\.js)"', index).group(1)
    status, headers, _ = fetch(server.url + script)
    assert status == 200 and "immutable" in headers["Cache-Control"]
    assert fetch(server.url + "/favicon.svg")[0] == 200
    # Unknown paths stay JSON errors: the app's routes are listed, not a catch-all.
    for path in ("/api/nope", "/assets/missing.js", "/assets/..%2Findex.html", "/rooms/a/b"):
        status, _, body = fetch(server.url + path)
        assert status == 404, path
        assert json.loads(body)["error"]["code"] == "not_found", path


async def register_with(person: Person, email: str) -> None:
    await person.page.goto("/register")
    await person.page.get_by_label("Display name").fill(person.name)
    await person.page.get_by_label("Email").fill(email)
    await person.page.get_by_label("Password").fill(PASSWORD)
    await person.page.get_by_role("button", name="Create account").click()


async def test_sign_in_errors_are_human(browser, server):
    person = await Person.open(browser, server.url, "Eve")
    await person.page.goto("/login")
    await person.page.get_by_label("Email").fill("nobody@example.com")
    await person.page.get_by_label("Password").fill("wrong password")
    await person.page.get_by_role("button", name="Sign in").click()
    await expect(person.page.get_by_role("alert")).to_have_text("That email and password do not match an account.")

    email = f"eve-{uuid.uuid4().hex[:8]}@example.com"
    await register_with(person, email)
    await person.page.wait_for_url("**/rooms")
    await person.page.get_by_role("button", name="Sign out").click()
    await register_with(person, email.upper())
    await expect(person.page.get_by_role("alert")).to_have_text(
        "An account with this email already exists. Sign in instead.")
    await person.close()


async def test_links_into_rooms(browser, server):
    owner = await Person.open(browser, server.url, "Olive")
    await owner.guest()
    room_path = await owner.create_room("Linked")

    # Signed out, a room link leads through sign-in and back to the room's pre-join page.
    visitor = await Person.open(browser, server.url, "Vic")
    await visitor.page.goto(room_path)
    await visitor.page.wait_for_url(re.compile(r"/login\?next="))
    await visitor.page.get_by_label("Your name").fill("Vic")
    await visitor.page.get_by_role("button", name="Continue as guest").click()
    await visitor.page.wait_for_url(f"**{room_path}")
    await expect(visitor.page.get_by_role("heading", name="Linked")).to_be_visible()
    await expect(visitor.page.get_by_role("button", name="Join room")).to_be_enabled()
    # A reload keeps the page (the server serves the app on room paths) and the session.
    await visitor.page.reload()
    await expect(visitor.page.get_by_role("heading", name="Linked")).to_be_visible()

    # An unknown room says so.
    await visitor.page.goto("/rooms/00000000-0000-0000-0000-000000000000")
    await expect(visitor.page.get_by_role("alert")).to_have_text("That room does not exist (or was deleted).")
    await owner.close()
    await visitor.close()


async def test_a_full_room_is_explained(browser, server):
    owner = await Person.open(browser, server.url, "Fay")
    await owner.guest()
    await owner.page.get_by_label("Room name").fill("Tiny")
    await owner.page.get_by_label("Participant limit (optional)").fill("1")
    await owner.page.get_by_role("button", name="Create room").click()
    await owner.page.wait_for_url("**/rooms/*")
    room_path = owner.page.url.removeprefix(server.url)
    await owner.join()

    late = await Person.open(browser, server.url, "Gus")
    await late.guest()
    await late.page.goto(room_path)
    await late.page.get_by_role("button", name="Join room").click()
    await expect(late.page.get_by_role("alert")).to_have_text("This room is full. Try again when someone leaves.")
    await expect(late.page.get_by_role("button", name="Try again")).to_be_visible()
    await owner.close()
    await late.close()


async def test_deleting_a_room_ends_the_call_for_everyone_in_it(browser, server):
    owner = await Person.open(browser, server.url, "Hal")
    await owner.guest()
    room_path = await owner.create_room("Short-lived")
    guest = await Person.open(browser, server.url, "Ivy")
    await guest.guest()
    await guest.join(room_path)

    # The owner deletes it from the room list (two steps: Delete, then confirm).
    await owner.page.goto("/rooms")
    await owner.page.get_by_role("button", name="Delete Short-lived").click()
    await owner.page.get_by_role("button", name="Delete for everyone").click()
    await expect(owner.page.locator("li.room-row").filter(has_text="Short-lived")).to_have_count(0)

    await expect(guest.page.get_by_role("heading", name="The room was closed")).to_be_visible()
    await expect(guest.page.get_by_role("alert")).to_have_text("The room was closed by its owner.")
    await guest.page.get_by_role("button", name="Back to rooms").click()
    await guest.page.wait_for_url("**/rooms")
    await owner.close()
    await guest.close()


async def test_keyboard_focus_is_visible(browser, server):
    person = await Person.open(browser, server.url, "Kim")
    await person.page.goto("/login")
    await expect(person.page.get_by_label("Email")).to_be_visible()
    for _ in range(3):  # email, password, the Sign in button
        await person.page.keyboard.press("Tab")
        outline = await person.page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; }")
        assert outline[1] == "solid" and outline[2] == "3px", outline
    assert outline[0] == "BUTTON"
    await person.close()
