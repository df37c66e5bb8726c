"""Pipe transports between two real worker processes (mediasoup's router.pipeToRouter).

A producer on router A (worker 1) is piped to router B (worker 2) over loopback RTP (or SRTP); B's
consumers receive it like a local producer: decoded video at an aiortc viewer, simulcast layers
switched per consumer, close and pause travelling through the pipe, PLI back to the publisher.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import time

import pytest
from aiortc.rtp import RtcpPacket, RtpPacket

from media.api.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    SwitchyardError,
    worker_request,
)
from media.api.pipe_transport import PipeTransport
from tests.media.client import Client, receive_frames
from tests.media.tracks import HEIGHT, WIDTH
from tests.test_api_objects import Events
from tests.test_media_call import start_worker
from tests.test_plain_transport import RtpSource

pytestmark = pytest.mark.timeout(60)

LAYER_SSRCS = (31000001, 31000002, 31000003)
VP8_PT = 101


@pytest.fixture
async def routers():
    """Router A on one worker, router B on another."""
    workers = [await start_worker(), await start_worker()]
    try:
        yield [await w.create_router() for w in workers]
    finally:
        for w in workers:
            await w.close()


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class SimulcastSource:
    """Three synthetic VP8 encodings (RFC 7741 descriptors, the layer index in the payload), one SSRC each:
    a key frame every 15 frames and on each PLI (RFC 4585 6.3.1) for its SSRC."""

    def __init__(self) -> None:
        self.sock = udp_socket()
        self.seq = [0, 0, 0]
        self.plis: dict[int, int] = {ssrc: 0 for ssrc in LAYER_SSRCS}

    def _plis(self) -> set[int]:
        wanted = set()
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return wanted
            for packet in RtcpPacket.parse(data):
                if getattr(packet, "fmt", None) == 1 and packet.media_ssrc in self.plis:
                    self.plis[packet.media_ssrc] += 1
                    wanted.add(packet.media_ssrc)

    async def run(self, target: tuple, frames: int) -> None:
        for frame in range(frames):
            wanted = self._plis()
            for layer, ssrc in enumerate(LAYER_SSRCS):
                key = frame % 15 == 0 or ssrc in wanted
                payload = bytes([0x10, 0x00 if key else 0x01, layer]) + bytes(100 * (layer + 1))
                packet = RtpPacket(payload_type=VP8_PT, sequence_number=self.seq[layer], timestamp=3000 * frame,
                                   ssrc=ssrc, marker=1, payload=payload)
                self.seq[layer] += 1
                self.sock.sendto(packet.serialize(), target)
            await asyncio.sleep(0.02)


async def publish_simulcast(router_a) -> tuple:
    plain = await router_a.create_plain_transport(comedia=True)
    await plain.connect()
    producer = await plain.produce("video", {
        "codecs": [{"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]}],
        "encodings": [{"ssrc": ssrc} for ssrc in LAYER_SSRCS],
    })
    source = SimulcastSource()
    target = ("127.0.0.1", router_a.worker.settings.rtc_port)
    return producer, source, asyncio.ensure_future(source.run(target, 1500))


async def plain_viewer(router_b, producer_id: str, spatial_layer: int = 0) -> tuple:
    """A plain RTP receiver on B and its consumer of the piped producer."""
    sink = udp_socket()
    plain = await router_b.create_plain_transport()
    await plain.connect(ip="127.0.0.1", port=sink.getsockname()[1])
    consumer = await plain.consume(producer_id, router_b.rtp_capabilities, paused=False,
                                   preferred_layers={"spatialLayer": spatial_layer})
    return sink, consumer


async def receive(sink: socket.socket, count: int, timeout: float = 5.0) -> list[RtpPacket]:
    """Up to `count` RTP packets (RTCP skipped), within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    packets: list[RtpPacket] = []
    deadline = time.monotonic() + timeout
    while len(packets) < count and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sink, 2048), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if not 192 <= data[1] <= 223:
            packets.append(RtpPacket.parse(data))
    return packets


def drain(sock: socket.socket) -> None:
    for _ in range(10_000):
        try:
            sock.recv(2048)
        except BlockingIOError:
            return


async def until_layer(sink: socket.socket, layer: int) -> tuple[list[RtpPacket], int]:
    """Packets until `layer` has arrived 10 times in a row (at most 5 s): all of them, and where it began."""
    packets: list[RtpPacket] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        packets += await receive(sink, 5, timeout=1)
        if len(packets) >= 10 and all(p.payload[2] == layer for p in packets[-10:]):
            break
    start = next(i for i, p in enumerate(packets) if p.payload[2] == layer)
    assert all(p.payload[2] == layer for p in packets[start:]), [p.payload[2] for p in packets]
    return packets, start


def assert_continuous(packets: list[RtpPacket], ssrc: int) -> None:
    assert {p.ssrc for p in packets} == {ssrc}
    for before, after in zip(packets, packets[1:], strict=False):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF


async def test_simulcast_is_piped_with_every_layer_and_b_consumers_switch(routers):
    router_a, router_b = routers
    producer, source, sending = await publish_simulcast(router_a)
    try:
        pipe_consumer, pipe_producer = await router_a.pipe_to_router(producer.id, router_b)
        assert pipe_producer.id == producer.id and pipe_producer.type == "simulcast"
        assert pipe_consumer.type == "pipe" and router_b.producers[producer.id] is pipe_producer
        pipe_ssrcs = [e["ssrc"] for e in pipe_consumer.rtp_parameters["encodings"]]
        assert len(set(pipe_ssrcs)) == 3 and not set(pipe_ssrcs) & set(LAYER_SSRCS)
        assert [e["ssrc"] for e in pipe_producer.rtp_parameters["encodings"]] == pipe_ssrcs

        # two consumers on B, each on its own layer, from the one pipe
        (low_sink, low), (high_sink, high) = [await plain_viewer(router_b, producer.id, n) for n in (0, 2)]
        ssrc = low.rtp_parameters["encodings"][0]["ssrc"]
        low_packets = await receive(low_sink, 30)
        assert len(low_packets) == 30 and {p.payload[2] for p in low_packets} == {0}
        assert_continuous(low_packets, ssrc)
        # a layered consumer starts low and climbs to the layer it prefers once its layers are measured
        high_packets, _ = await until_layer(high_sink, 2)
        assert_continuous(high_packets, high.rtp_parameters["encodings"][0]["ssrc"])

        # the low one switches up: on a key frame of layer 2, numbering continuous across the switch
        await low.set_preferred_layers(2)
        packets, switch = await until_layer(low_sink, 2)
        assert packets[switch].payload[1] == 0  # a key frame
        assert_continuous(packets, ssrc)
        stats = await pipe_consumer.get_stats()
        assert len(stats) == 3 and all(s["packetCount"] > 0 for s in stats)
    finally:
        sending.cancel()


async def test_closing_the_producer_on_a_closes_the_consumers_on_b(routers):
    router_a, router_b = routers
    producer, source, sending = await publish_simulcast(router_a)
    try:
        pipe_consumer, pipe_producer = await router_a.pipe_to_router(producer.id, router_b)
        _, consumer = await plain_viewer(router_b, producer.id)
        events = Events()
        events.watch(pipe_consumer, "producerclose", label="pipe-consumer:")
        events.watch(consumer, "producerclose", label="b-consumer:")
        await producer.close()
        await events.wait_for("pipe-consumer:producerclose")
        await events.wait_for("b-consumer:producerclose")
        assert pipe_producer.closed and consumer.closed and producer.id not in router_b.producers
        for _ in range(50):
            dump = await router_b.dump()
            if not dump["producerIds"] and not dump["consumerIds"]:
                break
            await asyncio.sleep(0.05)
        assert dump["producerIds"] == [] and dump["consumerIds"] == []

        # the pipe pair stays for the next producer; closing the pipe producer on B closes the pipe
        # consumer on A and leaves the original producer alone
        again = await producer.transport.produce("video", {
            "codecs": [{"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000}],
            "encodings": [{"ssrc": 31000009}],
        })
        pipe_consumer2, pipe_producer2 = await router_a.pipe_to_router(again.id, router_b)
        assert pipe_consumer2.transport is pipe_consumer.transport
        assert pipe_producer2.transport is pipe_producer.transport
        await pipe_producer2.close()
        for _ in range(50):
            if pipe_consumer2.closed:
                break
            await asyncio.sleep(0.05)
        assert pipe_consumer2.closed and not again.closed
        assert pipe_consumer2.id not in (await router_a.dump())["consumerIds"]
    finally:
        sending.cancel()


async def test_pause_and_resume_travel_through_the_pipe(routers):
    router_a, router_b = routers
    producer, source, sending = await publish_simulcast(router_a)
    try:
        _, pipe_producer = await router_a.pipe_to_router(producer.id, router_b)
        sink, consumer = await plain_viewer(router_b, producer.id)
        assert len(await receive(sink, 10)) == 10
        events = Events()
        events.watch(consumer, "producerpause", "producerresume")
        await producer.pause()
        await events.wait_for("producerpause")
        assert pipe_producer.paused and consumer.producer_paused
        await asyncio.sleep(0.2)
        drain(sink)
        assert await receive(sink, 1, timeout=0.5) == []
        await producer.resume()
        await events.wait_for("producerresume")
        assert not pipe_producer.paused
        assert len(await receive(sink, 10)) == 10
    finally:
        sending.cancel()


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_video_is_decoded_on_b_and_key_frame_requests_reach_the_publisher(routers, srtp):
    router_a, router_b = routers
    plain = await router_a.create_plain_transport(comedia=True)
    await plain.connect()
    producer = await plain.produce("video", {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]}],
        "encodings": [{"ssrc": 22222222}],
    })
    source = RtpSource(22222222, None, None)
    sending = asyncio.ensure_future(source.run(("127.0.0.1", router_a.worker.settings.rtc_port), 900))
    viewer = None
    try:
        pipe_consumer, _ = await router_a.pipe_to_router(producer.id, router_b, enable_srtp=srtp)
        assert pipe_consumer.transport.enable_srtp is srtp
        viewer = await Client(router_b).load()
        client_consumer, server_consumer = await viewer.consume(producer.id)
        await server_consumer.resume()
        frames, _ = await receive_frames(client_consumer.track, 15)
        assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in frames)
        # a key frame request of B's consumer crosses the pipe as a PLI and reaches the publisher
        before = source.plis
        for _ in range(30):
            await server_consumer.request_key_frame()
            await asyncio.sleep(0.1)
            if source.plis > before:
                break
        assert source.plis > before
    finally:
        sending.cancel()
        if viewer is not None:
            await viewer.close()


async def test_pipe_refusals(routers):
    router_a, router_b = routers
    other = await router_a.worker.create_router()
    plain = await router_a.create_plain_transport(comedia=True)
    producer = await plain.produce("audio", {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": 5555}],
    })
    with pytest.raises(InvalidStateError):
        await router_a.pipe_to_router(producer.id, other)  # same worker: one shared port, no pipe
    await router_a.pipe_to_router(producer.id, router_b)
    with pytest.raises(InvalidStateError):
        await router_a.pipe_to_router(producer.id, router_b)  # already there
    # closing router B closes the pipe: A's end closes, and a new pipe can be made to a new router
    pipe_a = router_a._pipes[router_b.id].result()[0]
    await router_b.close()
    for _ in range(50):
        if pipe_a.closed:
            break
        await asyncio.sleep(0.05)
    assert pipe_a.closed and not producer.closed and producer.consumers == {}


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_pipes_of_two_rooms_between_the_same_workers_share_one_link(routers, srtp):
    """Both workers' pipes come from one port each: the pipes of several router pairs share one
    Forwarder slot per worker pair, told apart by SSRC; media flows on each, and closing one pipe
    leaves the other working. SRTP pipes share it too (each worker keys all its SRTP pipe ends
    alike); a pipe of the other kind cannot join."""
    router_a, router_b = routers
    router_a2, router_b2 = [await r.worker.create_router() for r in routers]
    room1 = await publish_simulcast(router_a)
    room2 = await publish_simulcast(router_a2)
    try:
        sinks, pipes = [], []
        for (producer, _, _), source, target in ((room1, router_a, router_b), (room2, router_a2, router_b2)):
            pipe_consumer, _ = await source.pipe_to_router(producer.id, target, enable_srtp=srtp)
            pipes.append(pipe_consumer.transport)
            sinks.append(await plain_viewer(target, producer.id, 2))
        for sink, _ in sinks:
            assert {p.payload[2] for p in await receive(sink, 20)} <= {0, 1, 2}
        (sink1, consumer1), (sink2, consumer2) = sinks
        await until_layer(sink1, 2)
        await until_layer(sink2, 2)
        # one link each way, carrying both rooms; with SRTP, every packet the far end took was
        # SRTP under the near end's worker key (a plain or wrongly keyed one fails and is counted)
        for end in (*pipes, pipes[0].peer):
            [stats] = await end.get_stats()
            assert stats["linkPipes"] == 2 and stats["srtpFailures"] == 0, stats
            assert stats["srtpCryptoSuite"] == ("AES_CM_128_HMAC_SHA1_80" if srtp else None), stats
        [far] = await pipes[0].peer.get_stats()
        assert far["rtpPacketsReceived"] > 0
        if srtp:
            assert pipes[0].srtp_parameters == pipes[1].srtp_parameters  # worker A's one pipe key
        # room 1's pipe goes; room 2's goes on over the link
        await router_b.close()
        for _ in range(50):
            if router_a._pipes == {}:
                break
            await asyncio.sleep(0.05)
        assert router_a._pipes == {} and consumer1.closed and not consumer2.closed
        drain(sink2)
        assert len(await receive(sink2, 20)) == 20
        # a pipe of the other kind would need the link the others hold
        router_b3 = await router_b2.worker.create_router()
        with pytest.raises(InvalidStateError, match="cannot share their link"):
            await router_a.pipe_to_router(room1[0].id, router_b3, enable_srtp=not srtp)
        assert router_a._pipes == {} and router_b3._pipes == {} and router_b3.transports == {}
    finally:
        room1[2].cancel()
        room2[2].cancel()


async def test_an_srtp_link_takes_the_new_key_of_a_far_worker_replaced_on_its_port(routers):
    """A worker keeps one pipe key for its life, so another key from the same far address is a new
    worker there (a respawn): the link is re-keyed for the new pipe; the same key joins as is."""
    router_a, _ = routers
    keys = [base64.b64encode(bytes([n]) * 30).decode() for n in (1, 2)]
    ends = []
    for key in (keys[0], keys[0], keys[1]):
        end = await router_a.create_plain_transport(enable_srtp=True, transport_class=PipeTransport)
        await end.connect(ip="127.0.0.1", port=9, srtp_parameters={"cryptoSuite": "AES_CM_128_HMAC_SHA1_80",
                                                                    "keyBase64": key})
        ends.append(end)
    for end in ends:
        [stats] = await end.get_stats()
        assert stats["linkPipes"] == 3 and end.srtp_parameters == ends[0].srtp_parameters
    await asyncio.gather(*(end.close() for end in ends))
    assert (await router_a.worker.request("worker.dump"))["tables"]["transportObjects"] == 0


async def test_the_far_worker_dying_closes_the_pipe_and_a_new_one_can_be_made(routers):
    router_a, router_b = routers
    producer, source, sending = await publish_simulcast(router_a)
    try:
        pipe_consumer, pipe_producer = await router_a.pipe_to_router(producer.id, router_b)
        os.kill(router_b.worker.pid, signal.SIGKILL)
        # the pipe producer closing (with B's router) closes the pipe consumer, and B's end of the
        # pipe closing closes A's end
        for _ in range(100):
            if pipe_consumer.closed and pipe_consumer.transport.closed:
                break
            await asyncio.sleep(0.05)
        assert pipe_producer.closed and pipe_consumer.transport.closed and router_a._pipes == {}
        assert not producer.closed and producer.consumers == {}
        # the room goes on with a router on a new worker
        worker_c = await start_worker()
        try:
            router_c = await worker_c.create_router()
            _, piped = await router_a.pipe_to_router(producer.id, router_c)
            sink, _ = await plain_viewer(router_c, piped.id)
            assert len(await receive(sink, 10)) == 10
        finally:
            await worker_c.close()
    finally:
        sending.cancel()


async def test_concurrent_pipes_share_one_pair_and_bad_requests_are_refused(routers):
    router_a, router_b = routers
    plain = await router_a.create_plain_transport(comedia=True)
    producers = [await plain.produce("audio", {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": 7000 + n}], "mid": str(n),
    }) for n in range(3)]
    piped = await asyncio.gather(*(router_a.pipe_to_router(p.id, router_b) for p in producers))
    assert len({c.transport.id for c, _ in piped}) == 1 and len({p.transport.id for _, p in piped}) == 1
    assert len([t for t in router_b.transports.values() if t.__class__.__name__ == "PipeTransport"]) == 1
    with pytest.raises(NotFoundError):
        await router_a.pipe_to_router("no-such-producer", router_b)
    with pytest.raises(InvalidInputError):
        await router_a.pipe_to_router(producers[0].id, "not a router")
    # the worker refuses a pipe consumer whose encodings lack SSRCs, and keeps nothing of it
    pipe_a = piped[0][0].transport
    before = await router_a.dump()
    with pytest.raises(SwitchyardError):
        await worker_request(router_a.worker, "transport.consume", {
            "transportId": pipe_a.id, "consumerId": "bad", "producerId": producers[0].id, "kind": "audio",
            "type": "pipe", "rtpParameters": {**piped[0][0].rtp_parameters, "encodings": [{}]}})
    assert await router_a.dump() == before
