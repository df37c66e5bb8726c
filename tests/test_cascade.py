"""A room across nodes (issue 12, docs/architecture.md "A room across nodes"): two real `switchyard
serve` processes on the real PostgreSQL and Redis, SDK clients with real aiortc media.

A publisher on node A and a viewer on node B: the viewer joins on B (no `wrong_node`), sees A's
peer and producer in its join, and decodes A's video piped from A's worker to B's; pause travels
through the pipe; a pair on B and the publisher on A consume each other's nodes. Node A is then
SIGKILLed: the viewer is told (`user-left`, the track ends) within 5 s and the pair on B keeps
exchanging media. A node whose worker dies leaves the room the same way. A draining node and a
full node send joins to a node of the room (`wrong_node`); the control path shrugs off garbage.
A data producer on node A is offered to a peer on node B and consumed there: messages in order,
text and binary, through the cascade's data channel; its close, and then node A's death, reach
B's consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request

import pytest
import redis.asyncio as aioredis
from switchyard_client import Room, SignalingError

from signaling.cascade_bus import ROOMS_CHANNEL, data_channel, node_channel
from signaling.cluster import node_key, room_nodes_key
from tests.media.client import receive_frames
from tests.media.data_client import DataParticipant, wait_open
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack
from tests.signaling_server import ServerProcess, signed_in
from tests.test_data_spread import relay_drops, worker_pid
from tests.test_rest_db import create_scratch_database, drop_scratch_database
from tests.test_sdk import new_room, next_item, queue_of

pytestmark = pytest.mark.timeout(150)
WAIT = 20.0
TOLD_WITHIN_SECONDS = 5.0


@pytest.fixture(scope="module")
def database(postgres_url):
    url, _ = asyncio.run(create_scratch_database(postgres_url))
    yield url
    asyncio.run(drop_scratch_database(postgres_url, url))


@pytest.fixture(scope="module")
def node_b(database, redis_url):
    """The node that stays up."""
    node = ServerProcess(database, redis_url)
    yield node
    err = node.stop()
    assert "Traceback" not in err, err


async def quiet(track, seconds: float = 1.0, limit: int = 120) -> bool:
    """Frames stop: none for `seconds` within `limit` frames."""
    for _ in range(limit):
        try:
            await asyncio.wait_for(track.recv(), seconds)
        except TimeoutError:
            return True
    return False


async def node_urls(directory: aioredis.Redis, room_id: str) -> dict[str, str]:
    """node id -> public URL of the live nodes listed in the room's hash."""
    ids = [key.decode() for key in await directory.hkeys(room_nodes_key(room_id))]
    values = await directory.mget([node_key(i) for i in ids]) if ids else []
    return {i: json.loads(v)["url"] for i, v in zip(ids, values, strict=True) if v is not None}


async def node_id_of(directory: aioredis.Redis, url: str) -> str:
    """The id of the live node whose public URL is `url`, from the room directory."""
    async for key in directory.scan_iter(match=node_key("*")):
        value = await directory.get(key)
        if value is not None and json.loads(value)["url"] == url:
            return json.loads(value)["nodeId"]
    raise AssertionError(f"node {url} is not in the directory")


async def ask_node(directory: aioredis.Redis, node_id: str, method: str, params) -> dict:
    """A cascade request to a node, as another node sends it (signaling/cascade_bus.py): its reply."""
    pubsub = directory.pubsub()
    asker = f"test-asker-{time.monotonic_ns()}"
    try:
        await pubsub.subscribe(node_channel(asker))
        request_id = str(time.monotonic_ns())
        message = {"type": "request", "id": request_id, "from": asker, "method": method, "params": params}
        await directory.publish(node_channel(node_id), json.dumps(message))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if reply is not None and json.loads(reply["data"]).get("id") == request_id:
                return json.loads(reply["data"])
        raise AssertionError(f"no reply to {method}")
    finally:
        await pubsub.aclose()


def metrics_of(url: str) -> dict[str, float]:
    """/metrics as {series: value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines
            if line and not line.startswith("#")}


async def leave_all(rooms: list[Room]) -> None:
    for room in rooms:
        try:
            await asyncio.wait_for(room.leave(), 10)
        except Exception as exc:  # a Room whose node was killed may fail to say goodbye
            print(f"leave of {room.display_name} failed: {exc!r}")


async def test_a_room_spans_two_nodes_and_outlives_the_killed_one(database, redis_url, node_b):
    node_a = ServerProcess(database, redis_url)
    directory = aioredis.from_url(redis_url)
    rooms: list[Room] = []
    try:
        room_id = await new_room(node_a.url, "across nodes")
        alice = await Room.join(node_a.url, room_id, "Alice", auto_subscribe=False, reconnect=False)
        rooms.append(alice)
        video = await alice.publish(MovingBarTrack())

        viewer = await Room.join(node_b.url, room_id, "Viewer", auto_subscribe=False, reconnect=False)
        rooms.append(viewer)
        assert viewer.client.base_url == node_b.url  # joined where it connected: no wrong_node
        assert viewer.peers[alice.peer_id].display_name == "Alice"
        assert viewer.producers[video.producer_id].peer_id == alice.peer_id
        assert set((await node_urls(directory, room_id)).values()) == {node_a.url, node_b.url}

        remote = await viewer.subscribe(video.producer_id)
        frames, _ = await receive_frames(remote.track, 20)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)

        mutes = queue_of(viewer, "mute")
        await video.mute()  # pauseProducer on A: the pipe producer on B pauses too
        assert await next_item(mutes) == (viewer.peers[alice.peer_id], "video", True)
        assert await quiet(remote.track), "frames kept coming through the pipe while paused"
        await video.unmute()
        await receive_frames(remote.track, 5)

        carol = await Room.join(node_b.url, room_id, "Carol", auto_subscribe=False, reconnect=False)
        rooms.append(carol)
        dave = await Room.join(node_b.url, room_id, "Dave", auto_subscribe=False, reconnect=False)
        rooms.append(dave)
        joined_alice = queue_of(alice, "producer")
        carol_video = await carol.publish(MovingBarTrack())
        dave_view = await dave.subscribe(carol_video.producer_id)
        await receive_frames(dave_view.track, 5)
        # and the other way, B to A: the new producer reached Alice on A, who decodes it there
        assert (await next_item(joined_alice)).producer_id == carol_video.producer_id
        alice_view = await alice.subscribe(carol_video.producer_id)
        await receive_frames(alice_view.track, 5)
        dave_chat = queue_of(dave, "chat")
        sent = await alice.chat("from node A")
        assert (await next_item(dave_chat)).id == sent.id

        left, ended = queue_of(viewer, "peer-left"), queue_of(viewer, "track-ended")
        carol_left = queue_of(carol, "peer-left")
        killed = time.monotonic()
        node_a.kill()
        assert (await next_item(left, timeout=TOLD_WITHIN_SECONDS + 2)).peer_id == alice.peer_id
        told = time.monotonic() - killed
        print(f"the viewer on B was told that node A's peer left {told:.2f}s after SIGKILL")
        assert told <= TOLD_WITHIN_SECONDS
        assert (await next_item(ended)).producer_id == video.producer_id
        assert (await next_item(carol_left)).peer_id == alice.peer_id
        assert alice.peer_id not in viewer.peers and video.producer_id not in viewer.producers
        assert set((await node_urls(directory, room_id)).values()) == {node_b.url}

        # the room's part on B goes on: media and events
        frames, _ = await receive_frames(dave_view.track, 20)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        carol_chat = queue_of(carol, "chat")
        sent = await dave.chat("still here")
        assert (await next_item(carol_chat)).id == sent.id
        late = await Room.join(node_b.url, room_id, "Late", auto_subscribe=False, reconnect=False)
        rooms.append(late)
        assert {p.display_name for p in late.peers.values()} == {"Viewer", "Carol", "Dave"}
        assert set(late.producers) == {carol_video.producer_id}
    finally:
        await leave_all(rooms)
        await directory.aclose()
        node_a.stop()


async def test_a_draining_node_and_a_full_node_send_joins_to_a_node_of_the_room(database, redis_url, node_b):
    other = ServerProcess(database, redis_url, extra_env={"SWITCHYARD_MAX_PEERS": "1"})
    clients = []
    try:
        first = await signed_in(node_b.url, "First")
        clients.append(first)
        room = await first.create_room("busy")
        await first.join(room["id"])

        alice = await signed_in(other.url, "Alice")
        clients.append(alice)
        joined = await alice.join(room["id"])  # the room spans both nodes
        assert [p["displayName"] for p in joined["peers"]] == ["First"]
        bob = await signed_in(other.url, "Bob")
        clients.append(bob)
        with pytest.raises(SignalingError) as caught:  # full: one peer at most
            await bob.request("join", {"roomId": room["id"]})
        assert caught.value.code == "wrong_node" and caught.value.details == {"url": node_b.url}
        await alice.leave()

        second = await first.create_room("new while draining")
        await first.request("join", {"roomId": second["id"]})
        other.process.send_signal(signal.SIGUSR1)  # draining: no new rooms on `other`
        await asyncio.sleep(0.5)
        carol = await signed_in(other.url, "Carol")
        clients.append(carol)
        with pytest.raises(SignalingError) as caught:
            await carol.request("join", {"roomId": second["id"]})
        assert caught.value.code == "wrong_node" and caught.value.details == {"url": node_b.url}
        joined = await carol.join(second["id"])  # the SDK follows wrong_node
        assert carol.base_url == node_b.url and [p["displayName"] for p in joined["peers"]] == ["First"]
    finally:
        for client in clients:
            await client.close()
        err = other.stop()
        assert "Traceback" not in err, err


async def test_the_control_path_answers_bad_requests_and_drops_garbage(node_b, redis_url):
    """What reaches a node's cascade channels from Redis never breaks it: garbage is dropped, bad
    requests get the contract's error shape."""
    directory = aioredis.from_url(redis_url)
    try:
        node_id = await node_id_of(directory, node_b.url)

        async def ask(method: str, params) -> dict:
            return await ask_node(directory, node_id, method, params)

        for garbage in (b"not json", b"\xff\xfe", b"[]", json.dumps({"type": "event", "from": "x"}).encode(),
                        b"x" * 300_000):
            await directory.publish(ROOMS_CHANNEL, garbage)
            await directory.publish(node_channel(node_id), garbage)
            await directory.publish(data_channel(node_id), garbage)
        assert (await ask("nope", {}))["error"]["code"] == "not_found"
        assert (await ask("pipe.connect", "not an object"))["error"]["code"] == "invalid_input"
        assert (await ask("pipe.connect", {"roomId": 7}))["error"]["code"] == "invalid_input"
        assert (await ask("pipe.connect", {"roomId": "no-such-room"}))["error"]["code"] == "not_found"
        assert (await ask("pipe.produce", {"roomId": "no-such-room", "producerId": "p"}))["error"]["code"] \
            == "not_found"
        snapshot = await ask("room.snapshot", {"roomId": "no-such-room"})
        assert (snapshot["ok"], snapshot["data"], snapshot["from"]) == (
            True, {"peers": [], "producers": [], "dataProducers": []}, node_id)
        assert (await ask("pipe.consumeData", {"roomId": "no-such-room"}))["error"]["code"] == "not_found"
    finally:
        await directory.aclose()
    # the node still serves
    client = await signed_in(node_b.url, "After")
    room = await client.create_room("after garbage")
    assert (await client.join(room["id"]))["peers"] == []
    await client.close()



async def test_a_node_whose_worker_died_leaves_the_room_and_the_other_node_is_told(database, redis_url, node_b):
    node_a = ServerProcess(database, redis_url)
    rooms: list[Room] = []
    try:
        room_id = await new_room(node_a.url, "worker dies")
        alice = await Room.join(node_a.url, room_id, "Alice", auto_subscribe=False, reconnect=False)
        rooms.append(alice)
        video = await alice.publish(MovingBarTrack())
        watcher = await signed_in(node_b.url, "Watcher")
        joined = await watcher.join(room_id)
        assert [p["producerId"] for p in joined["producers"]] == [video.producer_id]
        with urllib.request.urlopen(node_a.url + "/api/health", timeout=5) as response:
            worker_pid = json.loads(response.read())["workers"][0]["pid"]
        os.kill(worker_pid, signal.SIGKILL)
        closed = await watcher.wait_for("producer-closed", timeout=TOLD_WITHIN_SECONDS)
        assert closed == {"producerId": video.producer_id, "peerId": alice.peer_id}
        assert await watcher.wait_for("user-left", timeout=TOLD_WITHIN_SECONDS) == {"peerId": alice.peer_id}
        await watcher.close()
    finally:
        await leave_all(rooms)
        node_a.stop()


async def test_a_producer_on_a_second_worker_reaches_another_node(database, redis_url, node_b):
    """Both at once: on node A the room spreads over two workers (threshold 2), and the producer of
    the peer on A's second worker is consumed on node B. The pipe to B leaves from A's first router
    (signaling/cascade_pipes.py), so the producer is piped there from its worker first."""
    node_a = ServerProcess(database, redis_url, workers=2, extra_env={"SWITCHYARD_SPREAD_CONSUMERS": "2"})
    rooms: list[Room] = []
    try:
        room_id = await new_room(node_a.url, "spread and across")
        alice = await Room.join(node_a.url, room_id, "Alice", auto_subscribe=False, reconnect=False)
        bob = await Room.join(node_a.url, room_id, "Bob", auto_subscribe=False, reconnect=False)
        rooms += [alice, bob]
        first = await alice.publish(MovingBarTrack())
        await bob.subscribe(first.producer_id)  # two consumers' worth on A's first worker: it is full
        carol = await Room.join(node_a.url, room_id, "Carol", auto_subscribe=False, reconnect=False)
        rooms.append(carol)
        with urllib.request.urlopen(node_a.url + "/api/health", timeout=5) as response:
            assert [w["rooms"] for w in json.loads(response.read())["workers"]] == [1, 1]
        video = await carol.publish(MovingBarTrack())  # on A's second worker

        viewer = await Room.join(node_b.url, room_id, "Viewer", auto_subscribe=False, reconnect=False)
        rooms.append(viewer)
        remote = await viewer.subscribe(video.producer_id)
        frames, _ = await receive_frames(remote.track, 10)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        ended = queue_of(viewer, "track-ended")
        await carol.unpublish(video)  # closing it on A's second worker ends it on B
        assert (await next_item(ended)).producer_id == video.producer_id
    finally:
        await leave_all(rooms)
        err = node_a.stop()
        assert "Traceback" not in err, err


async def test_with_pipe_srtp_the_pipes_between_workers_and_nodes_carry_srtp(database, redis_url):
    """SWITCHYARD_PIPE_SRTP=1 on both nodes: Carol's video goes from node A's second worker to its
    first over an SRTP pipe (the room spread, threshold 2), then to node B over another, and is
    decoded there. Every pipe end is SRTP, and no worker counted an SRTP failure: each packet the
    far ends took was SRTP under the near end's key (a plain one would fail and be counted). A node
    asked for a plain pipe refuses it, naming the setting."""
    srtp = {"SWITCHYARD_PIPE_SRTP": "1"}
    node_a = ServerProcess(database, redis_url, workers=2, extra_env={**srtp, "SWITCHYARD_SPREAD_CONSUMERS": "2"})
    node_c = ServerProcess(database, redis_url, extra_env=srtp)
    directory = aioredis.from_url(redis_url)
    rooms: list[Room] = []
    try:
        room_id = await new_room(node_a.url, "srtp pipes")
        alice = await Room.join(node_a.url, room_id, "Alice", auto_subscribe=False, reconnect=False)
        bob = await Room.join(node_a.url, room_id, "Bob", auto_subscribe=False, reconnect=False)
        rooms += [alice, bob]
        await bob.subscribe((await alice.publish(MovingBarTrack())).producer_id)
        carol = await Room.join(node_a.url, room_id, "Carol", auto_subscribe=False, reconnect=False)
        rooms.append(carol)
        video = await carol.publish(MovingBarTrack())  # on A's second worker
        viewer = await Room.join(node_c.url, room_id, "Viewer", auto_subscribe=False, reconnect=False)
        rooms.append(viewer)
        remote = await viewer.subscribe(video.producer_id)
        frames, _ = await receive_frames(remote.track, 10)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)

        # the workers' counters as polled (app/engine_metrics.py) once the video crossed both pipes
        deadline = time.monotonic() + WAIT
        while True:
            a, c = await asyncio.to_thread(metrics_of, node_a.url), await asyncio.to_thread(metrics_of, node_c.url)
            if all(m.get(f'switchyard_worker_forwarded_packets_total{{worker="{w}"}}', 0) > 0
                   for m, w in ((a, 1), (c, 0))):
                break
            assert time.monotonic() < deadline, "no forwarded packets in the workers' counters"
            await asyncio.sleep(0.2)
        # A: worker 1's end to worker 0; worker 0's end from worker 1 and its end to node C. C: one end.
        for found, worker, ends in ((a, 1, 1), (a, 0, 2), (c, 0, 1)):
            assert found[f'switchyard_pipe_transports{{srtp="1",worker="{worker}"}}'] == ends, found
            assert found[f'switchyard_pipe_transports{{srtp="0",worker="{worker}"}}'] == 0, found
            assert found[f'switchyard_worker_srtp_failures_total{{worker="{worker}"}}'] == 0, found

        reply = await ask_node(directory, await node_id_of(directory, node_a.url), "pipe.connect",
                               {"roomId": room_id, "ip": "127.0.0.1", "port": 9})
        assert reply["error"]["code"] == "invalid_state" and "SWITCHYARD_PIPE_SRTP" in reply["error"]["message"]
    finally:
        await leave_all(rooms)
        await directory.aclose()
        errors = [node_a.stop(), node_c.stop()]
    assert not any("Traceback" in err for err in errors), errors


async def test_a_data_producer_on_node_a_reaches_a_consumer_on_node_b(database, redis_url, node_b):
    node_a = ServerProcess(database, redis_url)
    participants: list[DataParticipant] = []
    try:
        bob = DataParticipant(await signed_in(node_b.url, "Bob"))
        participants.append(bob)
        room = await bob.sdk.create_room("chat across nodes")
        await bob.join(room["id"])
        alice = DataParticipant(await signed_in(node_a.url, "Alice"))
        participants.append(alice)
        await alice.join(room["id"])
        producer = await alice.produce_data(label="chat", protocol="json", appData={"from": "A"})
        offered = await bob.sdk.wait_for("new-data-producer")
        assert offered == {"dataProducerId": producer.id, "peerId": alice.joined["peerId"], "label": "chat",
                           "protocol": "json", "appData": {"from": "A"}}
        await wait_open(producer)
        consumer, answer = await bob.consume_data(producer.id)
        assert (answer["label"], answer["protocol"], answer["appData"]) == ("chat", "json", {"from": "A"})
        await wait_open(consumer)
        # a late joiner on B is offered it in its join, as a local one would be
        carol = DataParticipant(await signed_in(node_b.url, "Carol"))
        participants.append(carol)
        joined = await carol.join(room["id"])
        assert [p["dataProducerId"] for p in joined["dataProducers"]] == [producer.id]

        count = 500
        received: list = []
        consumer.on("message", received.append)
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(count):
            producer.send(f"message {n}" if n % 2 else f"message {n}".encode())
        while len(received) < count and loop.time() < started + 20:
            await asyncio.sleep(0.01)
        print(f"{count} messages from node A to node B in {loop.time() - started:.2f}s")
        assert received == [f"message {n}" if n % 2 else f"message {n}".encode() for n in range(count)]

        # B's worker stopped: what node A sends waits in B's relay into it up to the bound, the
        # rest is dropped and counted in B's /metrics under that worker; the pipe goes on after
        drops_before = relay_drops(node_b.url)
        pid = worker_pid(node_b.url, 0)
        os.kill(pid, signal.SIGSTOP)
        try:
            for n in range(3000):
                producer.send(n.to_bytes(4, "big") * 64)
            deadline = loop.time() + 10
            while relay_drops(node_b.url) == drops_before and loop.time() < deadline:
                await asyncio.sleep(0.1)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert relay_drops(node_b.url) > drops_before
        received.clear()
        producer.send("after")
        deadline = loop.time() + 10
        while "after" not in received and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert received and received[-1] == "after"
        numbers = [int.from_bytes(m[:4], "big") for m in received[:-1]]
        assert numbers == sorted(set(numbers)) and len(numbers) < 3000

        closed = asyncio.ensure_future(bob.sdk.wait_for("data-consumer-closed"))
        await alice.sdk.close_data_producer(producer.id)
        assert await asyncio.wait_for(closed, 10) == {"dataConsumerId": answer["id"], "dataProducerId": producer.id}
        deadline = loop.time() + 10
        while consumer.readyState != "closed" and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert consumer.readyState == "closed"

        # node A dies: B's consumer of its next data producer is told, and the data producer goes
        second = await alice.produce_data(label="reactions")
        await bob.sdk.wait_for("new-data-producer")
        _, answer = await bob.consume_data(second.id)
        heard: list = []
        for event in ("data-consumer-closed", "data-producer-closed"):
            bob.sdk.on(event, lambda data, e=event: heard.append((e, data)))
        killed = loop.time()
        node_a.kill()
        while len(heard) < 2 and loop.time() < killed + TOLD_WITHIN_SECONDS:
            await asyncio.sleep(0.05)
        assert sorted(heard, key=lambda e: e[0]) == [
            ("data-consumer-closed", {"dataConsumerId": answer["id"], "dataProducerId": second.id}),
            ("data-producer-closed", {"dataProducerId": second.id, "peerId": alice.joined["peerId"]})]
    finally:
        for participant in participants:
            try:
                await asyncio.wait_for(participant.close(), 10)
            except Exception as exc:  # Alice's node was killed
                print(f"close of a participant failed: {exc!r}")
        node_a.stop()
