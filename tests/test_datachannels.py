"""DataChannels through the whole stack: SDK signaling to a real server, pymediasoup + aiortc SCTP through its worker."""

from __future__ import annotations

import asyncio

import pytest
from switchyard_client import SignalingError

from tests.media.data_client import DataParticipant, wait_open
from tests.media.lossy import LossyRelay
from tests.signaling_server import serving, signed_in

pytestmark = pytest.mark.timeout(90)

MESSAGES = 1000
# large enough that the lossy relay tells its packets from SACKs and FORWARD-TSNs (tests/media/lossy.py)
MESSAGE_SIZE = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory.mktemp("data"))


async def _collect(consumer, count: int, timeout: float, enough=None) -> list:
    """Messages a DataConsumer receives until `count` arrived (or `enough(received count)`), or `timeout` passed."""
    received: list = []
    consumer.on("message", received.append)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(received) < count and not (enough is not None and enough(len(received))) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return received


async def test_ordered_messages_reach_two_consumers_in_order(server):
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    bob = DataParticipant(await signed_in(server.url, "Bob"))
    carol = DataParticipant(await signed_in(server.url, "Carol"))
    room = await alice.sdk.create_room("data")
    for participant in (alice, bob, carol):
        await participant.join(room["id"])

    producer = await alice.produce_data(label="chat", protocol="json", appData={"purpose": "test"})
    info = alice.transport_info["send"]["sctpParameters"]
    assert info == {"port": 5000, "OS": 1024, "MIS": 1024, "maxMessageSize": 262144}
    announced = await bob.sdk.wait_for("new-data-producer")
    assert announced == {"dataProducerId": producer.id, "peerId": alice.joined["peerId"], "label": "chat",
                         "protocol": "json", "appData": {"purpose": "test"}}
    await carol.sdk.wait_for("new-data-producer")
    await wait_open(producer)

    consumers, consumer_ids = [], {}
    for participant in (bob, carol):
        consumer, answer = await participant.consume_data(producer.id)
        consumer_ids[participant] = answer["id"]
        assert answer["dataProducerId"] == producer.id and answer["label"] == "chat"
        assert answer["sctpStreamParameters"]["ordered"] is True
        await wait_open(consumer)
        consumers.append(consumer)

    collecting = [asyncio.ensure_future(_collect(c, MESSAGES, 30)) for c in consumers]
    await asyncio.sleep(0.1)  # the server opens its side of each stream with the association
    for n in range(MESSAGES):
        producer.send(f"message {n}" if n % 2 else f"message {n}".encode())
    for received in await asyncio.gather(*collecting):
        assert len(received) == MESSAGES
        assert received == [f"message {n}" if n % 2 else f"message {n}".encode() for n in range(MESSAGES)]

    stats = await alice.sdk.get_stats(producer.id)
    assert stats[0]["messagesReceived"] == MESSAGES

    # a channel opened in band (DCEP, RFC 8832) rather than negotiated is reset at once
    in_band = alice.send_transport._handler.pc.createDataChannel("in band")
    for _ in range(200):
        if in_band.readyState == "closed":
            break
        await asyncio.sleep(0.05)
    assert in_band.readyState == "closed"
    transport_stats = (await alice.sdk.get_stats(alice.send_transport.id))[0]
    assert transport_stats["sctpState"] == "connected"
    assert transport_stats["sctpDrops"]["dcep_channel_refused"] == 1

    heard: dict = {bob: [], carol: []}
    for participant in (bob, carol):
        for event in ("data-consumer-closed", "data-producer-closed"):
            participant.sdk.on(event, lambda data, p=participant, e=event: heard[p].append((e, data)))
    await alice.sdk.close_data_producer(producer.id)
    for _ in range(100):
        if all(len(events) == 2 for events in heard.values()):
            break
        await asyncio.sleep(0.05)
    for participant, events in heard.items():
        assert sorted(events, key=lambda e: e[0]) == [
            ("data-consumer-closed", {"dataConsumerId": consumer_ids[participant], "dataProducerId": producer.id}),
            ("data-producer-closed", {"dataProducerId": producer.id, "peerId": alice.joined["peerId"]})]
    for participant in (alice, bob, carol):
        await participant.close()


async def test_unordered_channel_without_retransmissions_loses_only_what_the_link_drops(server):
    """maxRetransmits 0 (RFC 8831 section 6.1): a dropped DATA chunk is abandoned, not sent again; the
    rest arrive at once, without waiting for it. A reliable ordered stream through the same link loses nothing."""
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    relay = await LossyRelay.start(("127.0.0.1", server.base + 2), every=0, direction="down", kind="sctp")
    bob = DataParticipant(await signed_in(server.url, "Bob"), relay=relay.address)
    room = await alice.sdk.create_room("lossy data")
    await alice.join(room["id"])
    await bob.join(room["id"])
    lossy = await alice.produce_data(label="cursor", ordered=False, maxRetransmits=0)
    reliable = await alice.produce_data(label="doc")
    await wait_open(lossy)
    lossy_consumer, answer = await bob.consume_data(lossy.id)
    assert answer["sctpStreamParameters"] == {"streamId": 0, "ordered": False, "maxRetransmits": 0}
    reliable_consumer, _ = await bob.consume_data(reliable.id)
    await wait_open(lossy_consumer)
    await wait_open(reliable_consumer)

    relay.every = 10
    count = 300
    received: list = []
    lossy_consumer.on("message", received.append)
    for n in range(count):
        lossy.send(f"{n:04d}".ljust(MESSAGE_SIZE, "."))
        if n % 20 == 19:
            await asyncio.sleep(0.01)  # a cursor's pace
    # settled: everything the relay passed on has arrived, and nothing more came for half a second
    loop = asyncio.get_running_loop()
    deadline, settled = loop.time() + 10, None
    while loop.time() < deadline:
        state = (len(received), relay.media_seen)
        if len(received) == relay.media_seen - relay.dropped and state == settled:
            break
        settled = state
        await asyncio.sleep(0.5)
    numbers = [int(m[:4]) for m in received]
    # each message crossed the link at most once (never sent again), and every message the link
    # passed on arrived, once: the losses are the link's drops (and the few datagrams a loaded
    # machine's loopback sockets may lose in a burst before the relay, never sent again either)
    assert relay.media_seen <= count and 20 <= relay.dropped <= 30
    assert len(numbers) == len(set(numbers)) == relay.media_seen - relay.dropped
    assert len(numbers) >= 0.8 * count and set(numbers) <= set(range(count))
    dropped = relay.dropped
    stats = (await bob.sdk.get_stats(answer["id"]))[0]
    assert stats["messagesSent"] == count and stats["drops"] == {}

    arrived: list = []
    reliable_consumer.on("message", arrived.append)
    for n in range(100):
        reliable.send(f"{n:04d}".ljust(MESSAGE_SIZE, "."))
        if n % 20 == 19:
            await asyncio.sleep(0.01)
    # short messages the relay never drops keep SACKs coming, so losses are repaired by fast
    # retransmit (RFC 9260 section 7.2.4) rather than by the retransmission timer's seconds
    for _ in range(400):
        if len([m for m in arrived if len(m) == MESSAGE_SIZE]) == 100:
            break
        reliable.send("tick")
        await asyncio.sleep(0.02)
    assert [int(m[:4]) for m in arrived if len(m) == MESSAGE_SIZE] == list(range(100))
    assert relay.dropped > dropped
    relay.close()
    for participant in (alice, bob):
        await participant.close()


async def test_messages_older_than_max_packet_life_time_are_not_sent_again(server):
    """maxPacketLifeTime (RFC 8831 section 6.1, RFC 3758): what the link lost while it was down is
    abandoned once older than the lifetime, not delivered late when the link comes back."""
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    relay = await LossyRelay.start(("127.0.0.1", server.base + 2), every=0, direction="down", kind="sctp")
    bob = DataParticipant(await signed_in(server.url, "Bob"), relay=relay.address)
    room = await alice.sdk.create_room("lifetime")
    await alice.join(room["id"])
    await bob.join(room["id"])
    producer = await alice.produce_data(label="presence", ordered=False, maxPacketLifeTime=200)
    await wait_open(producer)
    consumer, answer = await bob.consume_data(producer.id)
    assert answer["sctpStreamParameters"] == {"streamId": 0, "ordered": False, "maxPacketLifeTime": 200}
    await wait_open(consumer)
    received: list = []
    consumer.on("message", lambda m: received.append(m[:6]))

    async def send(prefix: str, count: int, wait: bool = True) -> None:
        for n in range(count):
            producer.send(f"{prefix}{n:03d}".ljust(MESSAGE_SIZE, "."))
        if not wait:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while sum(m.startswith(prefix) for m in received) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)

    await send("before", 5)  # the server's SCTP measures the path: its retransmission timer is 1 s now
    relay.every = 1  # the link goes down for every DATA packet
    await send("downxx", 10, wait=False)
    await asyncio.sleep(2.5)  # past the retransmission timer: the lost ones are 200 ms old by then
    relay.every = 0
    await send("after", 5)
    await asyncio.sleep(0.5)
    assert sum(m.startswith("before") for m in received) == 5
    assert sum(m.startswith("after") for m in received) == 5
    assert not [m for m in received if m.startswith("downxx")]
    # the server sent all 20 and the link took the 10 (their first and only transmissions)
    assert (await bob.sdk.get_stats(answer["id"]))[0]["messagesSent"] == 20 and relay.dropped >= 10
    relay.close()
    for participant in (alice, bob):
        await participant.close()


async def test_a_peer_leaving_closes_the_consumers_of_its_data_producers(server):
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    bob = DataParticipant(await signed_in(server.url, "Bob"))
    room = await alice.sdk.create_room("leaving")
    await alice.join(room["id"])
    producer = await alice.produce_data(label="reactions")
    await bob.join(room["id"])
    assert [p["dataProducerId"] for p in bob.joined["dataProducers"]] == [producer.id]
    consumer, answer = await bob.consume_data(producer.id)
    await wait_open(consumer)

    await alice.sdk.leave()
    assert await bob.sdk.wait_for("data-producer-closed") == {"dataProducerId": producer.id,
                                                              "peerId": alice.joined["peerId"]}
    assert await bob.sdk.wait_for("data-consumer-closed") == {"dataConsumerId": answer["id"],
                                                              "dataProducerId": producer.id}
    # the server reset the stream (RFC 8831 section 6.7): Bob's channel closes too
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while consumer.readyState != "closed" and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert consumer.readyState == "closed"
    for request, payload in (("getStats", {"id": answer["id"]}),
                             ("consumeData", {"dataProducerId": producer.id}),
                             ("closeDataConsumer", {"dataConsumerId": answer["id"]})):
        with pytest.raises(SignalingError) as caught:
            await bob.sdk.request(request, payload)
        assert caught.value.code == "not_found", request
    for participant in (alice, bob):
        await participant.close()


async def test_malformed_data_requests_get_the_contracts_errors(server):
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    with pytest.raises(SignalingError) as caught:
        await alice.sdk.request("produceData", {"transportId": "t", "sctpStreamParameters": {"streamId": 0}})
    assert caught.value.code == "invalid_state"  # not in a room yet
    room = await alice.sdk.create_room("malformed data")
    await alice.join(room["id"])
    send = await alice.sdk.create_webrtc_transport("send", sctp_capabilities={"numStreams": {"OS": 1024, "MIS": 1024}})
    recv = await alice.sdk.create_webrtc_transport("recv", sctp_capabilities={"numStreams": {"OS": 1024, "MIS": 1024}})
    plain = await alice.sdk.create_webrtc_transport("send")
    assert "sctpParameters" not in plain and send["sctpParameters"]["maxMessageSize"] == 262144

    def produce(**changes):
        payload = {"transportId": send["id"], "sctpStreamParameters": {"streamId": 1}, "label": "x"}
        payload.update(changes)
        return "produceData", {k: v for k, v in payload.items() if v is not ...}

    cases = [
        (produce(transportId=...), "invalid_input"),
        (produce(sctpStreamParameters="0"), "invalid_input"),
        (produce(sctpStreamParameters={}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": 1024}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": -1}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": True}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": 1, "ordered": "yes"}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": 1, "maxRetransmits": 1, "maxPacketLifeTime": 10}),
         "invalid_input"),
        (produce(sctpStreamParameters={"streamId": 1, "ordered": True, "maxRetransmits": 3}), "invalid_input"),
        (produce(sctpStreamParameters={"streamId": 1, "maxRetransmits": -1}), "invalid_input"),
        (produce(label="x" * 2000), "invalid_input"),
        (produce(label=5), "invalid_input"),
        (produce(appData=[1]), "invalid_input"),
        (produce(transportId="nope"), "not_found"),
        (produce(transportId=recv["id"]), "invalid_input"),
        (produce(transportId=plain["id"]), "invalid_input"),
        (("consumeData", {}), "invalid_input"),
        (("consumeData", {"dataProducerId": 5}), "invalid_input"),
        (("consumeData", {"dataProducerId": "nope"}), "not_found"),
        (("closeDataProducer", {"dataProducerId": "nope"}), "not_found"),
        (("closeDataConsumer", {"dataConsumerId": None}), "invalid_input"),
        (("createWebRtcTransport", {"direction": "recv", "sctpCapabilities": {"numStreams": {"OS": "x"}}}),
         "invalid_input"),
        (("createWebRtcTransport", {"direction": "recv", "sctpCapabilities": 7}), "invalid_input"),
    ]
    for (event, payload), code in cases:
        with pytest.raises(SignalingError) as caught:
            await alice.sdk.request(event, payload)
        assert caught.value.code == code, (event, payload, caught.value.message)

    first = await alice.sdk.produce_data(send["id"], {"streamId": 1}, "x")
    with pytest.raises(SignalingError) as caught:
        await alice.sdk.produce_data(send["id"], {"streamId": 1}, "y")
    assert caught.value.code == "invalid_input"
    answer = await alice.sdk.consume_data(first)  # the receive transport with SCTP, found without its id
    assert answer["sctpStreamParameters"] == {"streamId": 0, "ordered": True}
    with pytest.raises(SignalingError) as caught:
        await alice.sdk.consume_data(first, send["id"])
    assert caught.value.code == "invalid_input"
    await alice.sdk.close_data_producer(first)
    await alice.close()


async def test_a_message_over_max_message_size_is_dropped_and_counted(server):
    alice = DataParticipant(await signed_in(server.url, "Alice"))
    bob = DataParticipant(await signed_in(server.url, "Bob"))
    room = await alice.sdk.create_room("large")
    await alice.join(room["id"])
    await bob.join(room["id"])
    producer = await alice.produce_data(label="files")
    await wait_open(producer)
    consumer, _ = await bob.consume_data(producer.id)
    await wait_open(consumer)
    # aiortc refuses to send more than the server's maxMessageSize (262144, from sctpParameters);
    # this client is made to ignore that, as a misbehaving one would
    sctp = producer._dataChannel.transport
    assert sctp._remote_max_message_size == 262144
    sctp._remote_max_message_size = 0
    collecting = asyncio.ensure_future(_collect(consumer, 2, 10))
    producer.send(b"x" * 262145)
    producer.send(b"y" * 262144)
    producer.send("after")
    assert await collecting == [b"y" * 262144, "after"]
    stats = (await alice.sdk.get_stats(producer.id))[0]
    assert stats["drops"] == {"message_too_large": 1} and stats["messagesReceived"] == 2
    for participant in (alice, bob):
        await participant.close()
