"""Two people in Chromium whose browsers may use the TURN relay only, reachable over TCP or TLS only.

The page is opened with `?iceTransportPolicy=relay` (web/src/call/ice.ts): Chromium then gathers
relayed candidates only, so nothing reaches the media worker but through coturn. The server runs
coturn with only the transport under test (`SWITCHYARD_TURN_TRANSPORTS=tcp` or `tls`: no UDP
listener at all) and hands out that one URL; video and audio must flow both ways, and both
browsers' selected candidate pairs must be relayed over that protocol.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import async_playwright

from tests.browser.conftest import CHROMIUM_ARGS, Person, media_flowing
from tests.turn_fixtures import TurnServer

pytestmark = pytest.mark.timeout(180)
RELAY_ONLY = "?iceTransportPolicy=relay"


@pytest.fixture(scope="module", params=["tcp", "tls"])
def relay_server(request, tmp_path_factory, web_dist):
    server = TurnServer(tmp_path_factory.mktemp(f"relay-{request.param}"), request.param,
                        extra_env={"SWITCHYARD_WEB_DIR": str(web_dist)})
    server.transport = request.param
    yield server
    err = server.stop()
    assert "Traceback" not in err, err


@pytest.fixture
async def relay_browser(chromium_path, voice_file, relay_server):
    """Chromium that trusts the test certificate of turns: (by its public key, nothing else)."""
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={voice_file}",
            f"--ignore-certificate-errors-spki-list={relay_server.spki}"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=args)
        try:
            yield browser
        finally:
            await browser.close()


async def selected_pair(person: Person, direction: str) -> dict:
    """The local and remote candidates of the transport's selected pair (Chromium's getStats)."""
    for _ in range(50):
        pair = await person.page.evaluate("""async (direction) => {
            const stats = await window.switchyard.transportStats(direction);
            const byId = new Map(stats.map((s) => [s.id, s]));
            const transport = stats.find((s) => s.type === 'transport');
            const pair = transport && byId.get(transport.selectedCandidatePairId);
            if (!pair) return null;
            return {state: pair.state, local: byId.get(pair.localCandidateId),
                    remote: byId.get(pair.remoteCandidateId)};
        }""", direction)
        if pair and pair["local"]:
            return pair
        await asyncio.sleep(0.2)
    raise AssertionError(f"{person.name}: no selected candidate pair on the {direction} transport")


async def test_call_through_the_relay_only(relay_browser, relay_server):
    alice = await Person.open(relay_browser, relay_server.url, "Alice")
    bob = await Person.open(relay_browser, relay_server.url, "Bob")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Behind a firewall")
    await alice.join(room_path + RELAY_ONLY)
    await bob.join(room_path + RELAY_ONLY)

    await alice.wait_video_playing("Bob")
    await bob.wait_video_playing("Alice")
    await media_flowing(alice, video_streams=1, audio_streams=1)
    await media_flowing(bob, video_streams=1, audio_streams=1)

    for person in (alice, bob):
        for direction in ("send", "recv"):
            pair = await selected_pair(person, direction)
            local = pair["local"]
            print(f"{person.name} {direction}: {local['candidateType']} over {local.get('relayProtocol')} "
                  f"-> {pair['remote']['address']}:{pair['remote']['port']} ({pair['state']})")
            assert local["candidateType"] == "relay", pair
            assert local["relayProtocol"] == relay_server.transport, pair
            assert pair["remote"]["address"] == "127.0.0.1"
    await alice.close()
    await bob.close()
