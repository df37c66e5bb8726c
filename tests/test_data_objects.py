"""DataProducer/DataConsumer as API objects on real workers: parameters, cascades, pipes, and every table empty after."""

from __future__ import annotations

import asyncio

import pytest

from media.api.errors import InvalidInputError, InvalidStateError, NotFoundError
from media.channel import ChannelRequestError
from tests.test_media_call import start_worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def worker():
    worker = await start_worker()
    yield worker
    await worker.close()


async def test_data_objects_close_in_cascade_and_leave_no_table_behind(worker):
    router = await worker.create_router()
    sender = await router.create_webrtc_transport(enable_sctp=True)
    receiver = await router.create_webrtc_transport(enable_sctp=True)
    without = await router.create_webrtc_transport()
    assert sender.sctp_parameters == {"port": 5000, "OS": 1024, "MIS": 1024, "maxMessageSize": 262144}
    assert without.sctp_parameters is None and without.sctp_state is None
    with pytest.raises(InvalidStateError):
        await without.produce_data({"streamId": 0})

    unordered = await sender.produce_data({"streamId": 3, "maxPacketLifeTime": 500}, label="cursor",
                                          protocol="xy", app_data={"a": 1})
    assert unordered.sctp_stream_parameters == {"streamId": 3, "ordered": False, "maxPacketLifeTime": 500}
    reliable = await sender.produce_data({"streamId": 4})
    with pytest.raises(InvalidInputError):
        await sender.produce_data({"streamId": 4})
    with pytest.raises(NotFoundError):
        await receiver.consume_data("nope")

    first = await receiver.consume_data(unordered.id)
    second = await receiver.consume_data(reliable.id)
    # the server picks each data consumer's stream and mirrors the data producer's reliability
    assert first.sctp_stream_parameters == {"streamId": 0, "ordered": False, "maxPacketLifeTime": 500}
    assert second.sctp_stream_parameters == {"streamId": 1, "ordered": True}
    assert (first.label, first.protocol) == ("cursor", "xy")
    tables = (await worker.request("worker.dump"))["tables"]
    assert (tables["dataProducers"], tables["dataConsumers"]) == (2, 2)

    heard = []
    first.on("dataproducerclose", lambda: heard.append(first.id))
    second.on("dataproducerclose", lambda: heard.append(second.id))
    await unordered.close()
    assert heard == [first.id] and first.closed and not second.closed
    # a freed stream is reused once its reset is done; until then the next one is taken
    third = await receiver.consume_data(reliable.id)
    assert third.sctp_stream_parameters["streamId"] in (0, 2)

    await sender.close()
    assert heard == [first.id, second.id] and third.closed and reliable.closed
    assert not receiver.data_consumers and not router.data_producers
    tables = (await worker.request("worker.dump"))["tables"]
    assert (tables["dataProducers"], tables["dataConsumers"]) == (0, 0)
    await router.close()
    tables = (await worker.request("worker.dump"))["tables"]
    assert all(count == 0 for count in tables.values()), tables


async def test_the_worker_refuses_data_requests_it_cannot_serve(worker):
    """The channel's requests are the main process's to get right; the worker still answers wrong ones."""
    router = await worker.create_router()
    plain = await router.create_plain_transport()
    webrtc = await router.create_webrtc_transport()
    for transport in (plain, webrtc):
        with pytest.raises(ChannelRequestError) as caught:
            await worker.request("transport.produceData", {
                "transportId": transport.id, "dataProducerId": "d", "label": "", "protocol": "",
                "sctpStreamParameters": {"streamId": 0, "ordered": True}})
        assert caught.value.code == "invalid_state"
    for method, data in (("transport.consumeData", {"transportId": "nope", "dataConsumerId": "c",
                                                    "dataProducerId": "d"}),
                         ("dataProducer.getStats", {"dataProducerId": "nope"}),
                         ("dataConsumer.getStats", {"dataConsumerId": "nope"})):
        with pytest.raises(ChannelRequestError) as caught:
            await worker.request(method, data)
        assert caught.value.code == "not_found", method
    await worker.request("dataProducer.close", {"dataProducerId": "nope"})  # already gone: not an error
    await router.close()


async def test_a_data_producer_piped_to_another_worker_closes_in_cascade_and_leaves_no_table_behind():
    """router.pipe_data_to_router (mediasoup's pipeToRouter with dataProducerId) between two real
    workers: the far end has the data producer's id, label, protocol, parameters and appData, the far
    router's transports consume it; refusals name the reason; closing the source closes the pipe
    ends and tells the far data consumer; no table keeps anything, in either worker."""
    workers = [await start_worker(), await start_worker()]
    try:
        router_a, router_b = [await w.create_router() for w in workers]
        sender = await router_a.create_webrtc_transport(enable_sctp=True)
        producer = await sender.produce_data({"streamId": 2}, label="chat", protocol="json", app_data={"a": 1})
        with pytest.raises(NotFoundError):
            await router_a.pipe_data_to_router("nope", router_b)
        with pytest.raises(InvalidStateError):
            await router_a.pipe_data_to_router(producer.id, await workers[0].create_router())
        pipe_consumer, pipe_producer = await router_a.pipe_data_to_router(producer.id, router_b)
        assert (pipe_producer.id, pipe_producer.label, pipe_producer.protocol, pipe_producer.app_data) == (
            producer.id, "chat", "json", {"a": 1})
        assert pipe_producer.sctp_stream_parameters == producer.sctp_stream_parameters
        assert router_b.data_producers[producer.id] is pipe_producer and pipe_consumer.type == "pipe"
        with pytest.raises(InvalidStateError):
            await router_a.pipe_data_to_router(producer.id, router_b)

        receiver = await router_b.create_webrtc_transport(enable_sctp=True)
        far = await receiver.consume_data(producer.id)
        assert far.sctp_stream_parameters["ordered"] is True and far.label == "chat"
        stats = (await pipe_consumer.get_stats())[0]
        assert stats["messagesSent"] == 0 and stats["relayDrops"] == {}
        tables = [(await w.request("worker.dump"))["tables"] for w in workers]
        assert [(t["dataProducers"], t["dataConsumers"]) for t in tables] == [(1, 1), (1, 1)]

        heard: list[str] = []
        far.on("dataproducerclose", lambda: heard.append("far"))
        await producer.close()
        for _ in range(100):
            if heard and pipe_producer.closed:
                break
            await asyncio.sleep(0.02)
        assert heard == ["far"] and pipe_consumer.closed and pipe_producer.closed and far.closed
        assert not router_b.data_producers and not receiver.data_consumers
        for _ in range(100):
            tables = [(await w.request("worker.dump"))["tables"] for w in workers]
            if all(t["dataProducers"] == t["dataConsumers"] == 0 for t in tables):
                break
            await asyncio.sleep(0.02)
        assert [(t["dataProducers"], t["dataConsumers"]) for t in tables] == [(0, 0), (0, 0)]
    finally:
        for w in workers:
            await w.close()
