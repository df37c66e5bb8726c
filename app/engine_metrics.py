"""Prometheus metrics of the media engine and the live rooms, gathered off the scrape path.

Workers answer `worker.counters` over their channel; a poller asks every few seconds and keeps
the latest answers, so a scrape never waits on a busy worker and a dead one just reads `up 0`.
A respawned worker (app/worker_pool.py) takes its slot's label again; its counters start from zero,
which Prometheus reads as a counter reset, and `switchyard_worker_restarts_total` counts respawns.
A slot's warm standby is no worker: it has no series but `switchyard_worker_standby`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.metrics import REGISTRY
from common.log import get_logger
from media.api.pipe_transport import PipeTransport

if TYPE_CHECKING:
    from app.server import Runtime

log = get_logger("metrics")

POLL_SECONDS = 2.0
POLL_TIMEOUT = 1.5


class EngineMetrics:
    """A collector on the node's registry; `poll()` runs as a background task of the app."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.latest: dict[int, dict] = {}

    async def poll(self) -> None:
        while True:
            for worker in list(self.runtime.workers):
                if worker.closed:
                    self.latest.pop(worker.index, None)
                    continue
                try:
                    async with asyncio.timeout(POLL_TIMEOUT):
                        self.latest[worker.index] = await worker.request("worker.counters")
                except Exception:  # a worker busy or dying: keep the last answer, try again later
                    pass
            await asyncio.sleep(POLL_SECONDS)

    def collect(self):
        workers = list(self.runtime.workers)
        up = GaugeMetricFamily("switchyard_worker_up", "1 while the media worker runs", labels=["worker"])
        objects = {name: GaugeMetricFamily(f"switchyard_{name}", f"Live {name} on each worker", labels=["worker"])
                   for name in ("routers", "transports", "producers", "consumers", "data_producers",
                                "data_consumers")}
        pipes = GaugeMetricFamily("switchyard_pipe_transports", "Live pipe transports on each worker (ends of pipes "
                                  "to other workers and nodes), by whether they carry SRTP", labels=["worker", "srtp"])
        for worker in workers:
            label = [str(worker.index)]
            up.add_metric(label, 0 if worker.closed else 1)
            routers = list(worker.routers.values())
            transports = [t for r in routers for t in r.transports.values()]
            objects["routers"].add_metric(label, len(routers))
            objects["transports"].add_metric(label, len(transports))
            objects["producers"].add_metric(label, sum(len(t.producers) for t in transports))
            objects["consumers"].add_metric(label, sum(len(t.consumers) for t in transports))
            # pipe ends included: a data producer piped to another worker counts on both
            objects["data_producers"].add_metric(label, sum(len(t.data_producers) for t in transports))
            objects["data_consumers"].add_metric(label, sum(len(t.data_consumers) for t in transports))
            ends = [t for t in transports if isinstance(t, PipeTransport)]
            for srtp in (False, True):
                pipes.add_metric(label + [str(int(srtp))], sum(1 for t in ends if t.enable_srtp is srtp))
        relay_drops = CounterMetricFamily("switchyard_data_relay_drops",
                                          "Messages a data pipe dropped on its way to or from this worker (between workers, "
                                          "or into it from another node), by reason",
                                          labels=["worker", "reason"])
        for worker in workers:
            drops: Counter[str] = Counter()
            for router in worker.routers.values():
                for transport in router.transports.values():
                    for consumer in transport.data_consumers.values():
                        relay = getattr(consumer, "relay", None)  # the source end of a data pipe
                        if relay is not None:
                            drops.update(relay.drops)
            # the receiving end of pipes from other nodes: their relay into this worker
            for relay in self.runtime.incoming_data_relays():
                if relay.worker is worker:
                    drops.update(relay.drops)
            for reason, count in drops.items():
                relay_drops.add_metric([str(worker.index), reason], count)
        yield up
        yield from objects.values()
        yield pipes
        yield relay_drops
        pool = getattr(self.runtime, "pool", None)
        if pool is not None:
            restarts = CounterMetricFamily("switchyard_worker_restarts",
                                           "Times the worker's slot was respawned after it died", labels=["worker"])
            for index, count in enumerate(pool.restarts):
                restarts.add_metric([str(index)], count)
            yield restarts
            standby = GaugeMetricFamily("switchyard_worker_standby",
                                        "1 while the slot has a warm standby ready to take over", labels=["worker"])
            for index, spare in enumerate(pool.standbys):
                standby.add_metric([str(index)], 0 if spare is None else 1)
            yield standby
        rooms = getattr(self.runtime.rooms_live, "rooms", {})
        yield GaugeMetricFamily("switchyard_rooms", "Rooms hosted on this node", value=len(rooms))
        yield GaugeMetricFamily("switchyard_peers", "Peers in the rooms of this node",
                                value=sum(len(room.peers) for room in rooms.values()))
        yield from self._engine_counters()

    def _engine_counters(self):
        def counter(name: str, doc: str, labels=("worker",)):
            return CounterMetricFamily(f"switchyard_worker_{name}", doc, labels=list(labels))

        packets_in = counter("packets_received", "Datagrams read from the worker's UDP socket")
        bytes_in = counter("bytes_received", "Bytes read from the worker's UDP socket")
        packets_out = counter("packets_sent", "Datagrams sent from the worker's UDP socket")
        bytes_out = counter("bytes_sent", "Bytes sent from the worker's UDP socket")
        forwarded = counter("forwarded_packets", "RTP copies forwarded to consumers")
        srtp = counter("srtp_failures", "Packets that failed SRTP or SRTCP unprotect or protect")
        drops = counter("drops", "Packets dropped, by reason", labels=("worker", "reason"))
        cpu = counter("cpu_seconds", "CPU time of the worker process")
        lag = GaugeMetricFamily("switchyard_worker_loop_lag_seconds", "How late the worker's loop woke",
                                labels=["worker"])
        for index, answer in sorted(self.latest.items()):
            label = [str(index)]
            socket = answer.get("socket", {})
            packets_in.add_metric(label, socket.get("rx_packets", 0))
            bytes_in.add_metric(label, socket.get("rx_bytes", 0))
            packets_out.add_metric(label, socket.get("tx_packets", 0))
            bytes_out.add_metric(label, socket.get("tx_bytes", 0))
            forwarded.add_metric(label, answer.get("forwardedPackets", 0))
            reasons = {**answer.get("drops", {}), **answer.get("controlDrops", {})}
            srtp.add_metric(label, reasons.get("srtp_rtp", 0) + reasons.get("srtp_rtcp", 0))
            for reason, count in sorted(reasons.items()):
                drops.add_metric(label + [reason], count)
            cpu.add_metric(label, answer.get("cpuSeconds", 0.0))
            lag.add_metric(label, answer.get("loopLagSeconds", 0.0))
        yield from (packets_in, bytes_in, packets_out, bytes_out, forwarded, srtp, drops, cpu, lag)


POLLER = web.AppKey("engine_metrics_poller", asyncio.Task)


def install(app: web.Application, runtime: Runtime) -> None:
    """Register the collector and run its poller while the app runs."""
    collector = EngineMetrics(runtime)

    async def start(_app: web.Application) -> None:
        REGISTRY.register(collector)
        _app[POLLER] = asyncio.get_running_loop().create_task(collector.poll())

    async def stop(_app: web.Application) -> None:
        if POLLER in _app:
            _app[POLLER].cancel()
            REGISTRY.unregister(collector)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
