"""What DataChannel messages cost the worker: CPU per forwarded message copy and the event loop's lag.

One pymediasoup (aiortc) data producer sends MESSAGES messages of MESSAGE_SIZE bytes, unordered and
reliable, to 1, 4 and 8 data consumers (each its own aiortc peer), through a real worker. The worker's
CPU time (getrusage in the worker, over the control channel) is divided by the copies it sent; wall
clock is printed too, but the machine is shared, so CPU per copy is the figure to compare. The
worker's loop lag (how late its 0.5 s timer woke, the time a media packet would have waited behind
SCTP work) is sampled every 0.5 s while messages flow, and the maximum reported.
Results: bench/results/datachannels.json.
"""

from __future__ import annotations

import asyncio
import copy
import json
import platform
import time
from pathlib import Path

from pymediasoup import AiortcHandler, Device
from pymediasoup.rtp_parameters import RtpCapabilities
from pymediasoup.sctp_parameters import SctpParameters, SctpStreamParameters

from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets

MESSAGES = 2000
MESSAGE_SIZE = 100
CONSUMER_COUNTS = (1, 4, 8)
RESULTS = Path(__file__).resolve().parent / "results" / "datachannels.json"


def plain(value):
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


async def client_transport(router, device: Device, direction: str):
    """A server transport with SCTP and the pymediasoup transport connected to it."""
    server = await router.create_webrtc_transport(enable_sctp=True)
    create = device.createSendTransport if direction == "send" else device.createRecvTransport
    transport = create(id=server.id, iceParameters=server.ice_parameters,
                       iceCandidates=[c for c in server.ice_candidates if c["protocol"] == "udp"],
                       dtlsParameters=server.dtls_parameters,
                       sctpParameters=SctpParameters.model_validate(server.sctp_parameters))

    @transport.on("connect")
    async def on_connect(dtlsParameters):
        await server.connect(plain(dtlsParameters))

    @transport.on("producedata")
    async def on_produce_data(sctpStreamParameters, label, protocol, appData):
        producer = await server.produce_data(plain(sctpStreamParameters), label, protocol)
        return producer.id

    return server, transport


async def wait_open(owner, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while owner.readyState != "open":
        if time.monotonic() > deadline:
            raise TimeoutError("data channel never opened")
        await asyncio.sleep(0.02)


async def new_device(router) -> Device:
    device = Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))
    await device.load(RtpCapabilities.model_validate(copy.deepcopy(router.rtp_capabilities)))
    return device


async def run(worker: Worker, consumers: int) -> dict:
    router = await worker.create_router()
    sender = await new_device(router)
    _, send_transport = await client_transport(router, sender, "send")
    producer = await send_transport.produceData(ordered=False, label="bench")
    await wait_open(producer)
    received = [0] * consumers
    closers = [send_transport]
    for index in range(consumers):
        device = await new_device(router)
        server, transport = await client_transport(router, device, "recv")
        data_consumer = await server.consume_data(producer.id)
        consumer = await transport.consumeData(
            id=data_consumer.id, dataProducerId=producer.id,
            sctpStreamParameters=SctpStreamParameters.model_validate(data_consumer.sctp_stream_parameters),
            label="bench")
        await wait_open(consumer)

        def count(_message, index=index):
            received[index] += 1
        consumer.on("message", count)
        closers.append(transport)
    await asyncio.sleep(0.5)

    before = (await worker.request("worker.counters"))["cpuSeconds"]
    started = time.perf_counter()
    lag = 0.0
    payload = b"x" * MESSAGE_SIZE
    for n in range(MESSAGES):
        producer.send(payload)
        if n % 50 == 49:
            await asyncio.sleep(0.005)  # let the client's SCTP flush: the sender's own pace
    deadline = time.monotonic() + 120
    while sum(received) < MESSAGES * consumers and time.monotonic() < deadline:
        lag = max(lag, (await worker.request("worker.counters"))["loopLagSeconds"])
        await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    counters = await worker.request("worker.counters")
    cpu = counters["cpuSeconds"] - before
    copies = sum(received)
    for transport in closers:
        await transport.close()
    await router.close()
    return {"consumers": consumers, "messages": MESSAGES, "messageBytes": MESSAGE_SIZE,
            "copiesDelivered": copies, "seconds": round(elapsed, 2),
            "copiesPerSecond": round(copies / elapsed), "workerCpuSeconds": round(cpu, 3),
            "workerCpuMicrosecondsPerCopy": round(cpu / max(copies, 1) * 1e6, 1),
            "maxLoopLagMilliseconds": round(max(lag, counters["loopLagSeconds"]) * 1000, 1)}


async def main() -> None:
    port = 47000
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    worker = Worker(WorkerSettings(0, "127.0.0.1", port, "127.0.0.1", "warning"), udp, tcp)
    await worker.start()
    try:
        rows = []
        for consumers in CONSUMER_COUNTS:
            row = await run(worker, consumers)
            print(json.dumps(row))
            rows.append(row)
    finally:
        await worker.close()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                   "python": platform.python_version(), "rows": rows}, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
