"""What one relay hop costs a DataChannel message: across two workers, and across two nodes through Redis.

Workers: two real workers behind the media API. A pymediasoup (aiortc) data producer on router A
(worker 0) sends PACED messages one every 5 ms (latency without queues), then MESSAGES messages as
fast as its client goes (rate, CPU), of MESSAGE_SIZE bytes, each stamped with its send time, to one
data consumer: first on router A itself ("local"), then on router B of worker 1 through
`router.pipe_data_to_router` ("relayed": worker 0 notifies, this process passes it on, worker 1
injects it). Per message: the latency from send to the consumer's client (one process, one
clock); per run: messages/s delivered and each worker's CPU time per message. The difference
between the two runs is the hop. The clients run in this process, beside the relay: under a burst
the relay waits behind their SCTP work, which a real main process does not carry.

Nodes (`--redis URL`): the cascade's relay alone (signaling/cascade_data.py's NodeDataRelay and the
Bus's publish on a real Redis, a subscriber decoding the msgpack frames), paced one message at a
time for the latency and in a burst for the rate.
Results: bench/results/data_relay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import struct
import time
from pathlib import Path

import msgpack
from pymediasoup.sctp_parameters import SctpStreamParameters

from bench.bench_datachannels import client_transport, new_device, wait_open
from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets

MESSAGES = 2000
MESSAGE_SIZE = 100
RESULTS = Path(__file__).resolve().parent / "results" / "data_relay.json"
STAMP = struct.Struct("!Q")
PACED = 300
PACE_SECONDS = 0.005


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 3), "p90": round(pick(0.9), 3), "p99": round(pick(0.99), 3)}


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def cpu(worker: Worker) -> float:
    return (await worker.request("worker.counters"))["cpuSeconds"]


async def run_workers(workers: list[Worker], relayed: bool) -> dict:
    router_a = await workers[0].create_router()
    router_b = await workers[1].create_router()
    sender = await new_device(router_a)
    _, send_transport = await client_transport(router_a, sender, "send")
    producer = await send_transport.produceData(ordered=True, label="bench")
    await wait_open(producer)
    server_producer = next(iter(router_a.data_producers.values()))
    target = router_b if relayed else router_a
    if relayed:
        await router_a.pipe_data_to_router(server_producer.id, router_b)
    device = await new_device(target)
    server, transport = await client_transport(target, device, "recv")
    data_consumer = await server.consume_data(server_producer.id)
    consumer = await transport.consumeData(
        id=data_consumer.id, dataProducerId=server_producer.id,
        sctpStreamParameters=SctpStreamParameters.model_validate(data_consumer.sctp_stream_parameters),
        label="bench")
    await wait_open(consumer)
    latencies: list[float] = []

    def arrived(message: bytes) -> None:
        latencies.append((time.perf_counter_ns() - STAMP.unpack_from(message)[0]) / 1e6)
    consumer.on("message", arrived)
    await asyncio.sleep(0.5)

    padding = b"x" * (MESSAGE_SIZE - STAMP.size)
    for _ in range(PACED):  # one at a time: the hop's latency without queues behind it
        producer.send(STAMP.pack(time.perf_counter_ns()) + padding)
        await asyncio.sleep(PACE_SECONDS)
    deadline = time.monotonic() + 10
    while len(latencies) < PACED and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    paced = percentiles(latencies)
    latencies.clear()

    before = [await cpu(w) for w in workers]
    main_before = process_cpu()
    started = time.perf_counter()
    for n in range(MESSAGES):
        producer.send(STAMP.pack(time.perf_counter_ns()) + padding)
        if n % 50 == 49:
            await asyncio.sleep(0.005)  # the sender's own pace, as in bench_datachannels.py
    deadline = time.monotonic() + 120
    while len(latencies) < MESSAGES and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    main_cpu = process_cpu() - main_before
    after = [await cpu(w) for w in workers]
    for closing in (transport, send_transport):
        await closing.close()
    await router_b.close()
    await router_a.close()
    delivered = len(latencies)
    return {"consumer": "relayed (worker 1)" if relayed else "local (worker 0)", "messages": MESSAGES,
            "pacedLatencyMs": paced, "delivered": delivered, "messagesPerSecond": round(delivered / elapsed),
            "burstLatencyMs": percentiles(latencies),
            "workerCpuMicrosecondsPerMessage": [round((a - b) / max(delivered, 1) * 1e6, 1)
                                                for a, b in zip(after, before, strict=True)],
            # the clients' aiortc work and, when relayed, the relay: the difference is the relay's
            "mainProcessCpuMicrosecondsPerMessage": round(main_cpu / max(delivered, 1) * 1e6, 1)}


async def bench_workers() -> list[dict]:
    workers = []
    for index, port in enumerate((47010, 47011)):
        udp, tcp = bind_rtc_sockets("127.0.0.1", port)
        worker = Worker(WorkerSettings(index, "127.0.0.1", port, "127.0.0.1", "warning"), udp, tcp)
        await worker.start()
        workers.append(worker)
    try:
        rows = []
        for relayed in (False, True, False, True):  # twice each: the machine is shared
            row = await run_workers(workers, relayed)
            print(json.dumps(row))
            rows.append(row)
        return rows
    finally:
        for worker in workers:
            await worker.close()


class RedisOnly:
    """What the Bus uses of the Cluster for publishing: its Redis connection."""

    def __init__(self, redis, node_id: str):
        self.redis = redis
        self.node_id = node_id
        self.reachable = True

    def _lost(self, exc: BaseException) -> None:
        raise exc


async def bench_nodes(url: str) -> dict:
    import redis.asyncio as aioredis

    from media.api.data_pipe import RELAY_QUEUE_MESSAGES
    from signaling.cascade_bus import Bus, data_channel
    from signaling.cascade_data import NodeDataRelay

    publisher, subscriber = aioredis.from_url(url), aioredis.from_url(url)
    bus = Bus(RedisOnly(publisher, "bench-a"))  # type: ignore[arg-type]
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(data_channel("bench-b"))
    latencies: list[float] = []
    received = 0

    async def listen() -> None:
        nonlocal received
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            now = time.perf_counter_ns()
            for item in msgpack.unpackb(message["data"], raw=False)["messages"]:
                latencies.append((now - STAMP.unpack_from(item)[0]) / 1e6)
                received += 1

    listener = asyncio.ensure_future(listen())
    padding = b"x" * (MESSAGE_SIZE - STAMP.size)
    try:
        relay = NodeDataRelay(bus, "bench-b", "room", "data-producer")
        relay.start()
        for _ in range(500):  # paced: one message per publish
            relay.push(STAMP.pack(time.perf_counter_ns()) + padding)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)
        paced = percentiles(latencies)
        latencies.clear()
        received = 0
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for _ in range(20000):  # a burst: the relay batches what queued during a publish
            while len(relay.queue) >= RELAY_QUEUE_MESSAGES // 2:
                await asyncio.sleep(0)
            relay.push(STAMP.pack(time.perf_counter_ns()) + padding)
        deadline = time.monotonic() + 30
        while received + sum(relay.drops.values()) < 20000 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        spent = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        return {"pacedLatencyMs": paced, "burstMessages": 20000, "burstDelivered": received,
                "burstMessagesPerSecond": round(received / elapsed), "burstLatencyMs": percentiles(latencies),
                "relayDrops": dict(relay.drops),
                "processCpuMicrosecondsPerMessage": round(spent / max(received, 1) * 1e6, 1)}
    finally:
        listener.cancel()
        await pubsub.aclose()
        await publisher.aclose()
        await subscriber.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="also measure the cascade relay through this Redis")
    args = parser.parse_args()
    load = os.getloadavg()
    results = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
               "loadAverageAtStart": [round(x, 2) for x in load], "workers": await bench_workers()}
    if args.redis:
        results["nodes"] = await bench_nodes(args.redis)
        print(json.dumps(results["nodes"]))
    results["loadAverageAtEnd"] = [round(x, 2) for x in os.getloadavg()]
    print("load average", results["loadAverageAtStart"], "->", results["loadAverageAtEnd"])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
