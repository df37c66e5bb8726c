"""A data producer consumed on another worker of a spread room (media/api/data_pipe.py), with real clients.

`switchyard serve` with 2 workers and SWITCHYARD_SPREAD_CONSUMERS=2: Alice and Bob fill worker 0,
Carol lands on worker 1. Alice's data producer (worker 0) is consumed by Bob there and by Carol on
worker 1 through the relay, each with pymediasoup's aiortc SCTP: every message arrives, in order,
text as text and binary as binary, empty ones too. Closing the data producer tells Carol
(`data-consumer-closed`) and resets her stream; the pipe ends go with it (live objects per worker
from the server's /metrics), and the room emptying leaves nothing on either worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request

import pytest

from tests.media.data_client import DataParticipant, wait_open
from tests.signaling_server import serving, signed_in
from tests.test_spread import SPREAD, until_objects

pytestmark = pytest.mark.timeout(90)

MESSAGES = 600
DATA_OBJECTS = ("routers", "data_producers", "data_consumers")


@pytest.fixture
def server(tmp_path):
    yield from serving(tmp_path, workers=2, extra_env=SPREAD)


def message(n: int) -> str | bytes:
    """Text, binary, and now and then an empty one of each (their own PPIDs, RFC 8831 section 6.6)."""
    if n % 100 == 50:
        return "" if n % 200 == 50 else b""
    return f"message {n}" if n % 2 else f"message {n}".encode() * (1 + n % 7)


async def collect(consumer, count: int, timeout: float = 20.0) -> list:
    received: list = []
    consumer.on("message", received.append)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(received) < count and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return received


def worker_pid(url: str, index: int) -> int:
    with urllib.request.urlopen(url + "/api/health", timeout=5) as response:
        return json.loads(response.read())["workers"][index]["pid"]


def relay_drops(url: str) -> int:
    """Messages the node's data pipes dropped (switchyard_data_relay_drops_total, every reason)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(int(float(line.split()[-1])) for line in lines if line.startswith("switchyard_data_relay_drops_total{"))


async def spread_chat(url: str) -> tuple[list[DataParticipant], object, object, object, dict]:
    """Alice's chat (worker 0) consumed by Bob (worker 0) and Carol (worker 1), all channels open."""
    alice, bob, carol = [DataParticipant(await signed_in(url, name)) for name in ("Alice", "Bob", "Carol")]
    room = await alice.sdk.create_room("spread chat")
    for participant in (alice, bob, carol):
        await participant.join(room["id"])
    producer = await alice.produce_data(label="chat")
    await wait_open(producer)
    near, _ = await bob.consume_data(producer.id)
    far, answer = await carol.consume_data(producer.id)
    for consumer in (near, far):
        await wait_open(consumer)
    return [alice, bob, carol], producer, near, far, answer


async def test_a_data_producer_reaches_a_consumer_on_the_other_worker_in_order(server):
    alice, bob, carol = [DataParticipant(await signed_in(server.url, name)) for name in ("Alice", "Bob", "Carol")]
    try:
        room = await alice.sdk.create_room("spread chat")
        for participant in (alice, bob, carol):
            await participant.join(room["id"])
        producer = await alice.produce_data(label="chat", protocol="json", appData={"purpose": "spread"})
        for participant in (bob, carol):
            announced = await participant.sdk.wait_for("new-data-producer")
            assert announced["dataProducerId"] == producer.id and announced["label"] == "chat"
        await wait_open(producer)

        near, _ = await bob.consume_data(producer.id)
        far, answer = await carol.consume_data(producer.id)
        assert answer["dataProducerId"] == producer.id and answer["label"] == "chat"
        assert answer["protocol"] == "json" and answer["appData"] == {"purpose": "spread"}
        assert answer["sctpStreamParameters"]["ordered"] is True
        for consumer in (near, far):
            await wait_open(consumer)
        # Carol is on worker 1: the data producer is there too, as the pipe's far end; worker 0 holds
        # Bob's data consumer and the pipe's near end
        await until_objects(server.url, {"routers": (1, 1), "data_producers": (1, 1), "data_consumers": (2, 1)})

        collecting = [asyncio.ensure_future(collect(c, MESSAGES)) for c in (near, far)]
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(MESSAGES):
            producer.send(message(n))
        near_got, far_got = await asyncio.gather(*collecting)
        print(f"{MESSAGES} messages across the relay in {loop.time() - started:.2f}s")
        expected = [message(n) for n in range(MESSAGES)]
        assert near_got == expected
        assert far_got == expected  # in order, str as str and bytes as bytes
        stats = (await carol.sdk.get_stats(answer["id"]))[0]
        assert stats["messagesSent"] == MESSAGES and not stats["drops"]

        # closing the data producer on worker 0 tells the far consumer, as a local one is told
        heard: list = []
        for event in ("data-consumer-closed", "data-producer-closed"):
            carol.sdk.on(event, lambda data, e=event: heard.append((e, data)))
        await alice.sdk.close_data_producer(producer.id)
        for _ in range(100):
            if len(heard) == 2 and far.readyState == "closed":
                break
            await asyncio.sleep(0.05)
        assert sorted(heard, key=lambda e: e[0]) == [
            ("data-consumer-closed", {"dataConsumerId": answer["id"], "dataProducerId": producer.id}),
            ("data-producer-closed", {"dataProducerId": producer.id, "peerId": alice.joined["peerId"]})]
        assert far.readyState == "closed"  # its stream was reset (RFC 8831 section 6.7)
        await until_objects(server.url, {"data_producers": (0, 0), "data_consumers": (0, 0)})
    finally:
        for participant in (alice, bob, carol):
            await participant.close()
    await until_objects(server.url, {name: (0, 0) for name in DATA_OBJECTS})



async def test_a_lagging_target_worker_costs_drops_counted_not_memory_or_order(server):
    """Worker 1 stopped (SIGSTOP) while 5,000 messages go out: past the channel's backlog the pipe's
    queue stops at its bound (1,024 messages) and the rest is dropped and counted; Bob on worker 0
    gets everything, Carol what was kept, in order, and the pipe works on once worker 1 is back."""
    participants, producer, near, far, _ = await spread_chat(server.url)
    far_got: list = []
    far.on("message", far_got.append)
    pid = worker_pid(server.url, 1)
    count, size = 5000, 64
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            collecting = asyncio.ensure_future(collect(near, count, timeout=30))
            for n in range(count):
                producer.send(n.to_bytes(4, "big") * (size // 4))
            assert len(await collecting) == count
        finally:
            os.kill(pid, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        # what was kept reaches Carol (or her stream's own send buffer drops it); then one more
        deadline, seen = loop.time() + 10, -1
        while seen != len(far_got) and loop.time() < deadline:
            seen = len(far_got)
            await asyncio.sleep(0.5)
        producer.send(b"last")
        deadline = loop.time() + 10
        while (not far_got or far_got[-1] != b"last") and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert far_got and far_got[-1] == b"last"
        numbers = [int.from_bytes(m[:4], "big") for m in far_got[:-1]]
        print(f"worker 1 stopped: Carol got {len(numbers)} of {count}, relay drops {relay_drops(server.url)}")
        assert numbers == sorted(set(numbers)) and len(numbers) < count
        assert relay_drops(server.url) > 0
    finally:
        for participant in participants:
            await participant.close()


async def test_the_source_worker_dying_closes_the_far_consumer(server):
    participants, producer, near, far, answer = await spread_chat(server.url)
    carol = participants[2]
    try:
        closed = asyncio.ensure_future(carol.sdk.wait_for("data-consumer-closed"))
        os.kill(worker_pid(server.url, 0), signal.SIGKILL)
        assert await asyncio.wait_for(closed, 10) == {"dataConsumerId": answer["id"],
                                                      "dataProducerId": producer.id}
        # worker 1 lost the pipe's far end and Carol's data consumer with it
        await until_objects(server.url, {"data_producers": (0, 0), "data_consumers": (0, 0)})
    finally:
        for participant in participants:
            await participant.close()
