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
    """Each count with the moment its worker read it (its answer's monotonicSeconds: a saturated worker
    answers late, by hundreds of ms on a loaded machine, and this process may notice late too). The
    stats requests go to a worker right behind its counters request, so it answers them in the same
    turn of its loop and they share its counters' moment."""

    at: float  # time.monotonic() when the kernel's files were read (the requests had just left)
    worker_at: list[float]  # per worker: when it read its counters
    forwarded: list[int]  # per worker: RTP copies sent, to consumers and pipes
    datagrams: list[int]  # per worker: datagrams its socket sent (copies, pipe copies, RTCP)
    cpu: list[float]  # per worker: CPU seconds (getrusage, user + system)
    drops: dict[str, int]  # the workers' drops by reason, summed, with sends refused (EAGAIN)
    input: tuple[int, float]  # packets of the producer's stream the first worker took, and when
    pipe_sent: tuple[int, float]  # copies the first worker's pipe consumer sent
    pipe_received: tuple[int, float]  # packets the second worker's pipe producer took
    udp: dict[str, int]  # /proc/net/snmp Udp
    cores: list[tuple[int, int]]  # (busy, total) ticks of each worker's core, /proc/stat
    client_cpu: float  # this process (the sender and the sample's receivers), CPU seconds
    delay: float  # the slowest answer's wait, seconds


async def timed(request) -> tuple[dict | list, float]:
    answer = await request
    return answer, time.monotonic()


async def snapshot(workers, producer, pipe_consumer, pipe_producer, cores: list[int]) -> Snapshot:
    """Every counter at (nearly) one moment: the requests leave together, the kernel's files are read meanwhile."""
    requests = [worker_request(w, "worker.counters", {}) for w in workers] + [producer.get_stats()]
    if pipe_consumer is not None:
        requests += [pipe_consumer.get_stats(), pipe_producer.get_stats()]
    answers = asyncio.gather(*(timed(r) for r in requests))
    at = time.monotonic()
    udp = udp_snmp()
    ticks = [core_busy_ticks(core) for core in cores]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answers = await answers
    counters = [answer for answer, _ in answers[:len(workers)]]
    clocks = [c["monotonicSeconds"] for c in counters]
    drops: dict[str, int] = {}
    for c in counters:
        for name, count in {**c["drops"], "sendEagain": c["socket"]["tx_dropped_eagain"]}.items():
            drops[name] = drops.get(name, 0) + count
    packets = [sum(entry["packetCount"] for entry in stats) for stats, _ in answers[len(workers):]]
    piped = pipe_consumer is not None
    return Snapshot(
        at=at, worker_at=clocks, forwarded=[c["forwardedPackets"] for c in counters],
        datagrams=[c["socket"]["tx_packets"] for c in counters], cpu=[c["cpuSeconds"] for c in counters],
        drops=drops, input=(packets[0], clocks[0]), pipe_sent=(packets[1], clocks[0]) if piped else (0, at),
        pipe_received=(packets[2], clocks[1]) if piped else (0, at), udp=udp, cores=ticks,
        client_cpu=usage.ru_utime + usage.ru_stime, delay=max(when for _, when in answers) - at,
    )


def rate(after: tuple[int, float], before: tuple[int, float]) -> float:
    """A count's rate over its own window."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1e-6)


def window(before: Snapshot, after: Snapshot, offered_pps: float, consumers: int) -> dict:
    """The counters' differences as rates, each over its own window, and whether the configuration kept up."""
    seconds = after.at - before.at
    worker_seconds = [a - b for a, b in zip(after.worker_at, before.worker_at, strict=True)]
    forwarded = [(a - b) / s for a, b, s in zip(after.forwarded, before.forwarded, worker_seconds, strict=True)]
    datagrams = sum((a - b) / s for a, b, s in zip(after.datagrams, before.datagrams, worker_seconds, strict=True))
    cpu = [(a - b) / s for a, b, s in zip(after.cpu, before.cpu, worker_seconds, strict=True)]
    pipe = rate(after.pipe_sent, before.pipe_sent)
    to_consumers = sum(forwarded) - pipe
    dropped = (after.udp["RcvbufErrors"] - before.udp["RcvbufErrors"]) / seconds
    kernel = (after.udp["InDatagrams"] - before.udp["InDatagrams"]) / seconds + dropped
    # the producer's packets reached the first worker's socket too: what is left is what the workers sent
    kernel_less_input = kernel - offered_pps
    taken = rate(after.input, before.input)
    input_loss = 1 - taken / offered_pps if offered_pps else 0.0
    shortfall = 1 - to_consumers / (taken * consumers) if taken else 0.0
    busy = [(a[0] - b[0]) / max(a[1] - b[1], 1) for a, b in zip(after.cores, before.cores, strict=True)]
    drops = {name: n - before.drops.get(name, 0) for name, n in after.drops.items() if n > before.drops.get(name, 0)}
    return {
        "windowSeconds": round(seconds, 3),
        "workerWindowSeconds": [round(s, 3) for s in worker_seconds],
        # the slowest answer to the counter requests, at the window's start and end (not in the rates)
        "counterDelayMs": [round(before.delay * 1e3, 1), round(after.delay * 1e3, 1)],
        "forwardedPerSecond": round(to_consumers),
        "offeredCopiesPerSecond": round(offered_pps * consumers),
        # the copies of the input that crossed to the second worker, and the share lost on the way
        "pipePerSecond": round(pipe),
        "pipeLoss": round(1 - rate(after.pipe_received, before.pipe_received) / pipe, 4) if pipe else None,
        "workerForwardedPerSecond": round(sum(forwarded)),
        "perWorkerForwardedPerSecond": [round(f) for f in forwarded],
        "workerDatagramsPerSecond": round(datagrams),
        "kernelPerSecond": round(kernel),
        "kernelLessInputPerSecond": round(kernel_less_input),
        "kernelDroppedPerSecond": round(dropped),
        # > 0: loopback carried more than the workers say they sent (other traffic on the machine)
        "kernelCheck": round(kernel_less_input / datagrams - 1, 4) if datagrams else None,
        "workerInputPps": round(taken),
        "inputLoss": round(input_loss, 4),
        "saturated": input_loss > SATURATION_SHORTFALL or shortfall > SATURATION_SHORTFALL,
        "workerCpu": [round(c, 3) for c in cpu],
        "cpuUsPerCopy": round(sum(cpu) / sum(forwarded) * 1e6, 3) if sum(forwarded) else None,
        "coreBusy": [round(b, 3) for b in busy],
        "clientCpu": round((after.client_cpu - before.client_cpu) / seconds, 3),
        "workerDrops": drops,
    }
