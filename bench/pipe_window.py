"""What the workers and the kernel counted over one measurement window of bench/bench_pipe.py.

The unread mode of bench_pipe.py does not read most consumer sockets, so it counts the copies where
they are made: each worker's `worker.counters` (forwardedPackets: RTP copies its fan-out sent, to
consumers and to pipes alike; the socket's tx_packets: every datagram it sent, RTCP included; its
own CPU seconds), the pipe consumer's packetCount on the first worker (the copies that cross to the
second worker, counted apart so that they are not taken for copies to consumers), the pipe
producer's on the second, and the producer's on the first (the input it took). The kernel checks
them: on loopback every datagram sent is either delivered to a socket (Udp InDatagrams) or dropped
at a full one (RcvbufErrors), so the sum of those two over the window, less the producer's input,
is what the workers sent, plus whatever else the machine sent over loopback meanwhile (the
counters are system-wide). Two snapshots, differenced, make a window.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass

from bench.bench_forward import core_busy_ticks, udp_snmp
from media.api.errors import worker_request

# a configuration is saturated at a rate once the first worker takes less than this share of the
# input, or the copies to consumers fall this far short of input x consumers
SATURATION_SHORTFALL = 0.02


@dataclass
class Snapshot:
    at: float  # time.monotonic() when the requests left
    forwarded: list[int]  # per worker: RTP copies sent, to consumers and pipes
    datagrams: list[int]  # per worker: datagrams its socket sent (copies, pipe copies, RTCP)
    cpu: list[float]  # per worker: CPU seconds (getrusage, user + system)
    drops: dict[str, int]  # the workers' drops by reason, summed, with sends refused (EAGAIN)
    input: int  # packets of the producer's stream the first worker took
    pipe_sent: int  # copies the first worker's pipe consumer sent
    pipe_received: int  # packets the second worker's pipe producer took
    udp: dict[str, int]  # /proc/net/snmp Udp
    cores: list[tuple[int, int]]  # (busy, total) ticks of each worker's core, /proc/stat
    client_cpu: float  # this process (the sender and the sample's receivers), CPU seconds


async def snapshot(workers, producer, pipe_consumer, pipe_producer, cores: list[int]) -> Snapshot:
    """Every counter at (nearly) one moment: the requests leave together, the kernel's files are read meanwhile."""
    at = time.monotonic()
    requests = [worker_request(w, "worker.counters", {}) for w in workers] + [producer.get_stats()]
    if pipe_consumer is not None:
        requests += [pipe_consumer.get_stats(), pipe_producer.get_stats()]
    answers = asyncio.gather(*requests)
    udp = udp_snmp()
    ticks = [core_busy_ticks(core) for core in cores]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answers = await answers
    counters = answers[:len(workers)]
    drops: dict[str, int] = {}
    for c in counters:
        for name, count in {**c["drops"], "sendEagain": c["socket"]["tx_dropped_eagain"]}.items():
            drops[name] = drops.get(name, 0) + count
    packets = [sum(entry["packetCount"] for entry in stats) for stats in answers[len(workers):]]
    return Snapshot(
        at=at, forwarded=[c["forwardedPackets"] for c in counters],
        datagrams=[c["socket"]["tx_packets"] for c in counters], cpu=[c["cpuSeconds"] for c in counters],
        drops=drops, input=packets[0], pipe_sent=packets[1] if pipe_consumer is not None else 0,
        pipe_received=packets[2] if pipe_consumer is not None else 0, udp=udp, cores=ticks,
        client_cpu=usage.ru_utime + usage.ru_stime,
    )


def window(before: Snapshot, after: Snapshot, offered_pps: float, consumers: int) -> dict:
    """The counters' differences as rates over the window, and whether the configuration kept up."""
    seconds = after.at - before.at
    forwarded = [a - b for a, b in zip(after.forwarded, before.forwarded, strict=True)]
    pipe = after.pipe_sent - before.pipe_sent
    to_consumers = sum(forwarded) - pipe
    datagrams = sum(a - b for a, b in zip(after.datagrams, before.datagrams, strict=True))
    cpu = [(a - b) / seconds for a, b in zip(after.cpu, before.cpu, strict=True)]
    dropped = after.udp["RcvbufErrors"] - before.udp["RcvbufErrors"]
    kernel = after.udp["InDatagrams"] - before.udp["InDatagrams"] + dropped
    # the producer's packets reached the first worker's socket too: what is left is what the workers sent
    kernel_less_input = kernel - offered_pps * seconds
    taken = after.input - before.input
    input_loss = 1 - taken / (offered_pps * seconds) if offered_pps else 0.0
    shortfall = 1 - to_consumers / (taken * consumers) if taken else 0.0
    busy = [(a[0] - b[0]) / max(a[1] - b[1], 1) for a, b in zip(after.cores, before.cores, strict=True)]
    drops = {name: n - before.drops.get(name, 0) for name, n in after.drops.items() if n > before.drops.get(name, 0)}
    return {
        "windowSeconds": round(seconds, 3),
        "forwardedPerSecond": round(to_consumers / seconds),
        "offeredCopiesPerSecond": round(offered_pps * consumers),
        # the copies of the input that crossed to the second worker, and what arrived there
        "pipePerSecond": round(pipe / seconds),
        "pipeLoss": round(1 - (after.pipe_received - before.pipe_received) / pipe, 4) if pipe else None,
        "workerForwardedPerSecond": round(sum(forwarded) / seconds),
        "perWorkerForwardedPerSecond": [round(f / seconds) for f in forwarded],
        "workerDatagramsPerSecond": round(datagrams / seconds),
        "kernelPerSecond": round(kernel / seconds),
        "kernelLessInputPerSecond": round(kernel_less_input / seconds),
        "kernelDroppedPerSecond": round(dropped / seconds),
        # > 0: loopback carried more than the workers say they sent (other traffic on the machine)
        "kernelCheck": round(kernel_less_input / datagrams - 1, 4) if datagrams else None,
        "workerInputPps": round(taken / seconds),
        "inputLoss": round(input_loss, 4),
        "saturated": input_loss > SATURATION_SHORTFALL or shortfall > SATURATION_SHORTFALL,
        "workerCpu": [round(c, 3) for c in cpu],
        "cpuUsPerCopy": round(sum(cpu) * seconds / sum(forwarded) * 1e6, 3) if sum(forwarded) else None,
        "coreBusy": [round(b, 3) for b in busy],
        "clientCpu": round((after.client_cpu - before.client_cpu) / seconds, 3),
        "workerDrops": drops,
    }
