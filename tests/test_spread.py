"""A room spread over two workers of one node (signaling/placement.py), with real SDK clients.

`switchyard serve` with 2 workers and SWITCHYARD_SPREAD_CONSUMERS=2: the third peer of a room lands
on the second worker, gets the first worker's video through a pipe (decoded), hears pause, resume
and close through it, sends audio back the other way (decoded, and the active speaker reaches the
first worker's peers); when the room empties both routers and their pipes are gone. A worker of a
spread room dying costs only the peers on it: the others hear they left and keep receiving.
The server's own /metrics (live objects per worker) says where things are.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request

import pytest
from switchyard_client import Room

from tests.media.client import receive_frames
from tests.media.tracks import HEIGHT, WIDTH, MovingBarTrack, ToneTrack
from tests.signaling_server import serving
from tests.test_cli import assert_one_line_error, run_cli
from tests.test_sdk import dominant_frequency, drain_until_quiet, new_room, next_item, queue_of

pytestmark = pytest.mark.timeout(120)
SPREAD = {"SWITCHYARD_SPREAD_CONSUMERS": "2"}
OBJECTS = ("routers", "transports", "producers", "consumers", "data_producers", "data_consumers")


@pytest.fixture
def server(tmp_path):
    yield from serving(tmp_path, workers=2, extra_env=SPREAD)


def live_objects(url: str) -> dict[str, tuple[int, int]]:
    """(worker 0, worker 1) counts of each live object kind, as the server's /metrics reports them."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {name: [0, 0] for name in OBJECTS}
    for line in text.splitlines():
        for name in OBJECTS:
            for worker in (0, 1):
                if line.startswith(f'switchyard_{name}{{worker="{worker}"}} '):
                    counts[name][worker] = int(float(line.split()[-1]))
    return {name: tuple(pair) for name, pair in counts.items()}


async def until_objects(url: str, expected: dict[str, tuple[int, int]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        found = await asyncio.to_thread(live_objects, url)
        if all(found[name] == pair for name, pair in expected.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert {name: found[name] for name in expected} == expected


def raw_queue(room: Room, event: str) -> asyncio.Queue:
    """The contract's own events as the SDK's client receives them (the Room does not surface these)."""
    queue: asyncio.Queue = asyncio.Queue()
    room.client.on(event, queue.put_nowait)
    return queue


async def spread_room(url: str) -> tuple[Room, Room, Room, object]:
    """Alice publishes video on worker 0, Bob receives it there; Carol, third, lands on worker 1."""
    room_id = await new_room(url)
    alice = await Room.join(url, room_id, "Alice", auto_subscribe=False)
    bob = await Room.join(url, room_id, "Bob", auto_subscribe=False)
    video = await alice.publish(MovingBarTrack())
    await bob.subscribe(video.producer_id)
    # two consumers' worth on worker 0 (Alice counts one, Bob his one): the room spreads
    carol = await Room.join(url, room_id, "Carol", auto_subscribe=False)
    return alice, bob, carol, video


async def test_a_room_spreads_to_a_second_worker_and_media_and_events_cross_the_pipe(server):
    alice, bob, carol, video = await spread_room(server.url)
    try:
        paused, resumed, closed = (raw_queue(carol, e) for e in ("consumer-paused", "consumer-resumed",
                                                                 "consumer-closed"))
        remote = await carol.subscribe(video.producer_id)
        frames, _ = await receive_frames(remote.track, 10)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        # worker 0: Alice's and Bob's transports, Bob's consumer and the pipe consumer; worker 1:
        # Carol's receive transport and the pipe's other end, the pipe producer and Carol's consumer
        await until_objects(server.url, {"routers": (1, 1), "producers": (1, 1), "consumers": (2, 1),
                                         "transports": (3, 2)})

        await video.mute()  # pauseProducer on worker 0 reaches Carol's consumer on worker 1
        assert (await next_item(paused))["consumerId"] == remote.consumer_id
        assert await drain_until_quiet(remote.track), "frames kept coming while paused"
        await video.unmute()
        assert (await next_item(resumed))["consumerId"] == remote.consumer_id
        await receive_frames(remote.track, 5)

        # the other way: Carol's audio (worker 1) piped to Alice (worker 0), decoded; the room's
        # active speaker reaches Alice and Bob from whichever router measured it
        offered, speakers = queue_of(alice, "producer"), queue_of(bob, "active-speaker")
        tone = await carol.publish(ToneTrack())
        assert (await next_item(offered)).producer_id == tone.producer_id
        heard = await alice.subscribe(tone.producer_id)
        audio, _ = await receive_frames(heard.track, 50)
        assert abs(dominant_frequency(audio[10:]) - 440) < 10
        speaker, volume = await next_item(speakers, lambda item: item[0] is not None)
        assert speaker.peer_id == carol.peer_id and -127 <= volume <= 0

        # the producer closing on worker 0 closes the consumer on worker 1 (and the pipe's producer)
        ended = queue_of(carol, "track-ended")
        await alice.unpublish(video)
        assert (await next_item(closed))["producerId"] == video.producer_id
        assert (await next_item(ended)).producer_id == video.producer_id
        # left: the tone (worker 1), its pipe consumer there, its pipe producer and Alice's consumer on 0
        await until_objects(server.url, {"producers": (1, 1), "consumers": (1, 1)})
    finally:
        for room in (alice, bob, carol):
            await room.leave()
    # the room emptied: both routers closed, with the pipe transports in them
    await until_objects(server.url, {name: (0, 0) for name in OBJECTS})
    with urllib.request.urlopen(server.url + "/api/health", timeout=5) as response:
        assert [w["rooms"] for w in json.loads(response.read())["workers"]] == [0, 0]


async def test_a_dead_worker_of_a_spread_room_costs_only_its_own_peers(server):
    alice, bob, carol, video = await spread_room(server.url)
    try:
        remote = await carol.subscribe(video.producer_id)
        await receive_frames(remote.track, 3)
        await until_objects(server.url, {"routers": (1, 1)})
        with urllib.request.urlopen(server.url + "/api/health", timeout=5) as response:
            pid = json.loads(response.read())["workers"][1]["pid"]
        lost, left = raw_queue(carol, "room-closed"), queue_of(alice, "peer-left")
        carol_before = carol.peer_id
        os.kill(pid, signal.SIGKILL)
        assert (await next_item(lost))["reason"] == "worker_died"
        assert (await next_item(left)).peer_id == carol_before
        # Bob, on the worker that lives, still receives Alice's video
        await receive_frames(bob.subscriptions[video.producer_id].track, 30)
        # Carol's SDK rejoins by itself (a new peer id) as soon as her worker's standby took over,
        # which can be within this second: only her old peer must be gone
        assert alice.peer_id in bob.peers and carol_before not in bob.peers
    finally:
        for room in (alice, bob, carol):
            await room.leave()


@pytest.mark.parametrize("value,needle", [("-1", "spread consumers must be 0"),
                                          ("many", "SWITCHYARD_SPREAD_CONSUMERS must be an integer")])
def test_a_bad_spread_threshold_is_one_line(value, needle):
    result = run_cli("serve", "--signaling-port", "0", env={"SWITCHYARD_SPREAD_CONSUMERS": value})
    assert_one_line_error(result, needle)
