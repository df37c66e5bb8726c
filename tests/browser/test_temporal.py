"""Temporal layers between two Chromiums: the camera goes out as VP8 simulcast whose encodings
mediasoup-client sends as L1T3 (three temporal layers each), and a viewer that prefers temporal
layer 0, then 2, decodes a quarter of the frames, then all of them, and no skipped packet leaves a
hole in the numbering."""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import Person

pytestmark = pytest.mark.timeout(180)


async def prefer_temporal(person: Person, temporal_layer: int) -> list[dict]:
    """Ask for a temporal layer of every video consumer (the spatial one the app chose stays), through
    the page's own signaling connection; returns the server's stats of those consumers."""
    return await person.page.evaluate("""async (temporalLayer) => {
        const call = window.switchyard;
        const out = [];
        for (const [id, consumer] of call.consumers) {
            if (consumer.kind !== 'video') continue;
            const spatialLayer = call.preferredLayers.get(id) ?? 2;
            await call.signaling.request('setConsumerPreferredLayers', {consumerId: id, spatialLayer, temporalLayer});
            out.push(...(await call.signaling.request('getStats', {id})).stats);
        }
        return out;
    }""", temporal_layer)


async def server_consumer_stats(person: Person) -> list[dict]:
    return await person.page.evaluate("""async () => {
        const call = window.switchyard;
        const out = [];
        for (const [id, consumer] of call.consumers)
            if (consumer.kind === 'video') out.push(...(await call.signaling.request('getStats', {id})).stats);
        return out;
    }""")


async def video_inbound(person: Person) -> dict:
    stats = await person.page.evaluate("""async () => (await window.switchyard.transportStats('recv'))
        .filter(s => s.type === 'inbound-rtp' && s.kind === 'video')
        .map(s => ({framesDecoded: s.framesDecoded || 0, packetsLost: s.packetsLost || 0,
                    packetsReceived: s.packetsReceived || 0, width: s.frameWidth || 0}))""")
    assert len(stats) == 1, stats
    return stats[0]


async def decoded_rate(person: Person, seconds: float) -> tuple[float, dict]:
    before = await video_inbound(person)
    await asyncio.sleep(seconds)
    after = await video_inbound(person)
    return (after["framesDecoded"] - before["framesDecoded"]) / seconds, after


async def test_a_viewer_decodes_the_temporal_layers_it_prefers(browser, server):
    alice = await Person.open(browser, server.url, "Alice")
    bob = await Person.open(browser, server.url, "Bob")
    await alice.guest()
    await bob.guest()
    room_path = await alice.create_room("Frame rates")
    await alice.join()
    await bob.join(room_path)
    await bob.wait_video_playing("Alice")

    consumers = await server_consumer_stats(bob)
    assert consumers and all(c["temporalLayers"] == 3 for c in consumers), consumers

    await asyncio.sleep(2)
    full, _ = await decoded_rate(bob, 3)
    stats = await prefer_temporal(bob, 0)
    assert all(s["preferredTemporalLayer"] == 0 for s in stats), stats
    await asyncio.sleep(1.5)
    low, during = await decoded_rate(bob, 4)
    consumers = await server_consumer_stats(bob)
    assert all(c["currentTemporalLayer"] == 0 for c in consumers), consumers

    await prefer_temporal(bob, 2)
    await asyncio.sleep(1.5)
    high, after = await decoded_rate(bob, 4)
    consumers = await server_consumer_stats(bob)
    assert all(c["currentTemporalLayer"] == 2 for c in consumers), consumers
    print(f"Bob decodes Alice at {full:.1f} fps, then {low:.1f} (temporal layer 0), then {high:.1f} "
          f"(temporal layer 2); {after['packetsReceived']} packets, {after['packetsLost']} lost")
    assert full >= 8 and high >= 8, (full, high)
    assert 0.1 <= low / high <= 0.45, (low, high)
    # A skipped frame leaves no hole. Loopback itself can drop a datagram when a busy receiver's
    # socket buffer fills (the kernel's RcvbufErrors); Bob NACKs such a loss and the server repairs
    # it. A hole left by skipping could not be repaired (a packet of a skipped layer is never sent),
    # and at temporal layer 0 three packets in four are skipped: hundreds of holes, none repaired.
    repaired = consumers[0]["retransmittedPackets"]
    assert after["packetsLost"] <= repaired, (after, consumers)
    assert after["packetsLost"] <= 0.03 * after["packetsReceived"], after
    await bob.close()
    await alice.close()
