"""Many nodes (PROTOCOL.md section 3): real `switchyard serve` processes sharing the real PostgreSQL
and Redis; a room opens on every node a peer reaches (the room's hash of nodes); a node killed
outright; a private Redis stopped and started again mid-run. Media across nodes: tests/test_cascade.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from switchyard_client import SwitchyardClient

from signaling.cluster import NODE_TTL_MS, WATCH_SECONDS, node_key, room_nodes_key
from tests.conftest import free_port_range
from tests.services import _listening
from tests.signaling_server import ServerProcess, signed_in
from tests.test_rest_db import create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.timeout(60)

TTL_SECONDS = NODE_TTL_MS / 1000


@pytest.fixture(scope="module")
def database(postgres_url):
    """A fresh PostgreSQL database the nodes of this module share."""
    url, _ = asyncio.run(create_scratch_database(postgres_url))
    yield url
    asyncio.run(drop_scratch_database(postgres_url, url))


def stop_cleanly(node: ServerProcess) -> str:
    err = node.stop()
    assert "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def nodes(database, redis_url):
    """Two nodes on the shared Redis."""
    first = ServerProcess(database, redis_url)
    second = ServerProcess(database, redis_url)
    yield first, second
    stop_cleanly(first)
    stop_cleanly(second)


@pytest.fixture
async def directory(redis_url):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Poll `check` until it holds; the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def node_entries(directory: aioredis.Redis, room_id: str) -> dict[str, dict]:
    """The room's hash: public URL of each live node listed -> its entry (participants, worker)."""
    fields = {k.decode(): json.loads(v) for k, v in (await directory.hgetall(room_nodes_key(room_id))).items()}
    values = await directory.mget([node_key(n) for n in fields]) if fields else []
    return {json.loads(v)["url"]: fields[n] for n, v in zip(fields, values, strict=True) if v is not None}


async def host_urls(directory: aioredis.Redis, room_id: str) -> set[str]:
    return set(await node_entries(directory, room_id))


async def health(node: ServerProcess) -> dict:
    async with aiohttp.ClientSession() as http, http.get(node.url + "/api/health") as response:
        return await response.json()


async def test_a_room_opens_on_each_node_a_peer_reaches(nodes, directory):
    host, other = nodes
    alice = await signed_in(host.url, "Alice")
    room = await alice.create_room("spans")
    await alice.join(room["id"])
    assert await node_entries(directory, room["id"]) == {host.url: {"participants": 1, "worker": 0}}
    node_ids = [k.decode() for k in await directory.hkeys(room_nodes_key(room["id"]))]
    assert 0 < await directory.pttl(node_key(node_ids[0])) <= NODE_TTL_MS

    bob = await signed_in(other.url, "Bob")
    joined = await bob.join(room["id"])  # no wrong_node any more: the room opens on this node too
    assert bob.base_url == other.url
    assert [p["displayName"] for p in joined["peers"]] == ["Alice"]
    assert (await alice.wait_for("user-joined"))["peerId"] == joined["peerId"]

    async def both_listed() -> bool:
        entries = await node_entries(directory, room["id"])
        return entries == {host.url: {"participants": 1, "worker": 0}, other.url: {"participants": 1, "worker": 0}}

    await eventually(both_listed, 3, "both nodes are listed with one participant each")
    await bob.leave()
    assert (await alice.wait_for("user-left"))["peerId"] == joined["peerId"]
    await alice.close()
    await bob.close()
    await eventually(lambda: _missing(directory, room["id"]), 3, "the empty room's hash is deleted")


async def _missing(directory: aioredis.Redis, room_id: str) -> bool:
    return await directory.exists(room_nodes_key(room_id)) == 0


async def test_room_events_and_live_counts_across_nodes(nodes):
    host, other = nodes
    alice = await signed_in(host.url, "Alice")
    room = await alice.create_room("events")
    a = await alice.join(room["id"])
    bob = await signed_in(other.url, "Bob")
    b = await bob.join(room["id"])

    message = await alice.chat("hello from the host")
    assert await bob.wait_for("chat") == message
    await bob.audio_mute(True)
    assert await alice.wait_for("audio-mute") == {"peerId": b["peerId"], "muted": True}
    await alice.video_mute(True)
    assert await bob.wait_for("video-mute") == {"peerId": a["peerId"], "muted": True}
    carol = await signed_in(other.url, "Carol")  # the other node's view of Alice follows her state
    c = await carol.join(room["id"])
    assert {p["displayName"]: p["videoMuted"] for p in c["peers"]} == {"Alice": True, "Bob": False}
    await carol.close()

    watcher = await signed_in(other.url, "Watcher", connect=False)

    async def counted(expected: int) -> bool:
        listed = {r["id"]: r["participantCount"] for r in await watcher.list_rooms()}
        return (await watcher.get_room(room["id"]))["participantCount"] == expected == listed[room["id"]]

    await eventually(lambda: counted(2), 3, "the other node shows 2 participants")
    await bob.leave()
    await eventually(lambda: counted(1), 3, "the other node shows 1 participant")
    for client in (alice, bob, watcher):
        await client.close()


async def test_deleting_a_room_closes_it_on_every_node_carrying_it(nodes, directory):
    host, other = nodes
    alice = await signed_in(host.url, "Alice")
    room = await alice.create_room("doomed")
    await alice.join(room["id"])
    bob = await signed_in(other.url, "Bob")
    await bob.join(room["id"])

    owner_elsewhere = SwitchyardClient(other.url, token=alice.token)
    await owner_elsewhere.delete_room(room["id"])
    for peer in (alice, bob):
        assert await peer.wait_for("room-closed") == {"roomId": room["id"]}
        await peer.wait_for("disconnect", timeout=5)
    with pytest.raises(TimeoutError):  # each node told its own peers, once
        await alice.wait_for("room-closed", timeout=1)
    await eventually(lambda: _missing(directory, room["id"]), 3, "the deleted room's hash is deleted")
    for client in (alice, bob, owner_elsewhere):
        await client.close()


async def test_a_stale_entry_of_a_dead_node_is_dropped_and_not_counted(nodes, directory):
    host, _ = nodes
    alice = await signed_in(host.url, "Alice")
    room = await alice.create_room("ghost")
    await alice.join(room["id"])
    ghost = json.dumps({"participants": 5, "worker": 0})
    await directory.hset(room_nodes_key(room["id"]), "ghost-node-without-a-heartbeat", ghost)
    assert (await alice.get_room(room["id"]))["participantCount"] == 1

    async def dropped() -> bool:
        return not await directory.hexists(room_nodes_key(room["id"]), "ghost-node-without-a-heartbeat")

    await eventually(dropped, WATCH_SECONDS + 2, "the dead node's entry is dropped")
    await alice.close()


async def test_a_killed_node_is_dropped_from_its_rooms_and_its_peers_leave(nodes, database, redis_url, directory):
    _, survivor = nodes
    doomed = ServerProcess(database, redis_url)
    try:
        alice = await signed_in(doomed.url, "Alice")
        room = await alice.create_room("orphan")
        a = await alice.join(room["id"])
        bob = await signed_in(survivor.url, "Bob")
        joined = await bob.join(room["id"])  # at once, on the survivor
        assert [p["peerId"] for p in joined["peers"]] == [a["peerId"]]
        assert await host_urls(directory, room["id"]) == {doomed.url, survivor.url}
        doomed.kill()
        killed = time.monotonic()
    finally:
        doomed.stop()
    assert await bob.wait_for("user-left", timeout=TTL_SECONDS + 3) == {"peerId": a["peerId"]}
    assert time.monotonic() - killed <= 5
    assert await host_urls(directory, room["id"]) == {survivor.url}
    assert (await bob.get_room(room["id"]))["participantCount"] == 1
    await bob.close()
    await alice.close()


class PrivateRedis:
    """A redis-server of our own, to stop and start without disturbing the shared one."""

    def __init__(self):
        self.port = free_port_range(1)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


async def test_redis_outage_keeps_the_nodes_rooms_and_ends_in_re_registration(database, private_redis):
    node = ServerProcess(database, private_redis.url)
    directory = aioredis.from_url(private_redis.url)
    try:
        alice = await signed_in(node.url, "Alice")
        bob = await signed_in(node.url, "Bob")
        room = await alice.create_room("through the outage")
        second = await alice.create_room("opened in the outage")
        await alice.join(room["id"])
        await bob.join(room["id"])
        assert await host_urls(directory, room["id"]) == {node.url}

        private_redis.kill()

        async def redis_unreachable() -> bool:
            return (await health(node))["redis"] == "unreachable"

        await eventually(redis_unreachable, 5, "health reports Redis unreachable")
        message = await alice.chat("still here")
        assert await bob.wait_for("chat") == message
        carol = await signed_in(node.url, "Carol")
        assert len((await carol.join(room["id"]))["peers"]) == 2
        dave = await signed_in(node.url, "Dave")
        await dave.join(second["id"])

        private_redis.start()
        await directory.aclose()  # its connection died with the old redis-server
        directory = aioredis.from_url(private_redis.url)

        async def registered_again() -> bool:
            return (await host_urls(directory, room["id"]) == {node.url}
                    and await host_urls(directory, second["id"]) == {node.url})

        await eventually(registered_again, 8, "both rooms are registered again")
        assert (await node_entries(directory, room["id"]))[node.url]["participants"] == 3
        assert (await health(node))["redis"] == "ok"
        await bob.audio_mute(True)
        assert (await alice.wait_for("audio-mute"))["muted"] is True
        for client in (alice, bob, carol, dave):
            await client.close()
    finally:
        await directory.aclose()
        err = stop_cleanly(node)
    outage_lines = [line for line in err.splitlines() if "unreachable" in line]
    assert len(outage_lines) == 1, err
    assert "Redis" in outage_lines[0]
