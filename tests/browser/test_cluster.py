"""Two nodes on a shared PostgreSQL and Redis: a browser joins the room on the node it reached, the
room spans both nodes (docs/architecture.md) and the call's media crosses between the nodes' workers."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Person, media_flowing
from tests.signaling_server import ServerProcess
from tests.test_rest_db import create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def nodes(postgres_url, redis_url, web_dist):
    url, _ = asyncio.run(create_scratch_database(postgres_url))
    env = {"SWITCHYARD_WEB_DIR": str(web_dist)}
    first = ServerProcess(url, redis_url, extra_env=env)
    second = ServerProcess(url, redis_url, extra_env=env)
    yield first, second
    errors = first.stop() + second.stop()
    asyncio.run(drop_scratch_database(postgres_url, url))
    assert "Traceback" not in errors, errors


async def test_a_call_spans_two_nodes(browser, nodes):
    host, other = nodes
    alice = await Person.open(browser, host.url, "Alice")
    await alice.guest()
    room_path = await alice.create_room("Across nodes")
    await alice.join()

    # Bob's page comes from the other node and joins there: the room opens on that node too and
    # each node pipes its peer's producers to the other.
    bob = await Person.open(browser, other.url, "Bob")
    await bob.guest()
    await bob.join(room_path)
    assert bob.page.url.startswith(other.url)
    assert await bob.page.evaluate("window.switchyard.signalingUrl") == other.url
    await alice.wait_video_playing("Bob")
    await bob.wait_video_playing("Alice")
    await media_flowing(bob, video_streams=1, audio_streams=1)
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await expect(bob.grid()).to_have_attribute("data-tiles", "2")
    await alice.close()
    await bob.close()
