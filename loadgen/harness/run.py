"""`switchyard loadtest`: run a scenario against a server, live progress, then a JSON report and a plot.

Timeline: rooms are created by an organizer guest; participants join one
every `--ramp` seconds (at most JOIN_CONCURRENCY at a time), room by room in
turn; media runs from the first join on, in slices of SLICE_SECONDS; the
measured window is the `--duration` seconds after the last join ended.
Every loop is bounded: joins by JOIN_TIMEOUT, the whole run by the ramp and
duration plus RUN_SLACK_SECONDS, and closing by CLOSE_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import time
import uuid

import aiohttp
import numpy as np
from fastpath.srtp import SrtpSession, profile_key_lengths
from switchyard_client import ApiError, SignalingError, SwitchyardClient

from loadgen.harness.hub import MediaHub
from loadgen.harness.observe import ServerObserver
from loadgen.harness.participant import Participant
from loadgen.harness.report import (
    Display,
    build_report,
    percentiles,
    print_summary,
    require_matplotlib,
    save_json,
    save_plot,
)
from loadgen.harness.scenario import LoadtestError, Scenario, scenario_from_args
from loadgen.synth import SyntheticMedia
from media.engine.dtls import DtlsCertificate

__all__ = ["LoadtestError", "main", "run_scenario"]

SLICE_SECONDS = 0.25
CONSENT_SECONDS = 5.0
JOIN_CONCURRENCY = 16
RUN_SLACK_SECONDS = 60.0
CLOSE_SECONDS = 15.0
TAIL_SECONDS = 0.3
MAX_KEPT_SAMPLES = 8_000_000


class Recorder:
    """Per-slice counters and latency samples, bucketed into whole seconds by the report."""

    def __init__(self, hub: MediaHub):
        self.hub = hub
        self.slices: list[dict] = []
        self.kept_samples = 0
        self._last_received = 0
        self._last_expected = 0
        self._previous = np.zeros(0, dtype=np.uint64)
        self.steady_start_received: np.ndarray | None = None   # per consumer, when the window opened

    def record(self, t: float, result: dict, joined: int, steady: bool) -> dict:
        stats = self.hub.media.consumer_stats()
        if steady and self.steady_start_received is None:
            self.steady_start_received = self._previous
        self._previous = stats["received"]
        received_total = int(stats["received"].sum())
        expected_total = int(stats["expected"].sum())
        jitter = stats["jitter_ns"][stats["expected"] > 0]
        latencies = result.pop("latencies_ns")
        owners = result.pop("latency_consumer")
        if self.kept_samples + len(latencies) > MAX_KEPT_SAMPLES:
            result["samples_dropped"] += len(latencies)
            latencies, owners = latencies[:0], owners[:0]
        self.kept_samples += len(latencies)
        entry = {
            "t": t, "steady": steady, "joined": joined, "consumers": self.hub.media.consumer_count,
            "streams": self.hub.media.stream_count,
            "expected": expected_total - self._last_expected, **result,
            "jitter_ms": float(jitter.mean()) / 1e6 if len(jitter) else None,
            "latency_ms": latencies / 1e6, "latency_kind": self.hub.kinds_of(owners),
        }
        entry["lost"] = max(entry["expected"] - (received_total - self._last_received), 0)
        self._last_received, self._last_expected = received_total, expected_total
        self.slices.append(entry)
        return entry


def probe_floor(seconds: float = 0.5) -> dict:
    """Latency of the probe itself, our socket straight to our socket (no SFU): what `latency` includes
    besides the server (SRTP protect and unprotect, sendmmsg, loopback)."""
    profile = "AEAD_AES_128_GCM"
    key = os.urandom(sum(profile_key_lengths(profile)))
    pair = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for sock in pair:
            sock.bind(("127.0.0.1", 0))
        media = SyntheticMedia(max_streams=1, max_consumers=1, max_sockets=2, max_samples=1 << 16)
        out = media.add_socket(pair[0], SrtpSession(profile, os.urandom(len(key)), "inbound"), True)
        into = media.add_socket(pair[1], SrtpSession(profile, key, "inbound"), False)
        media.add_stream(out, pair[1].getsockname(), SrtpSession(profile, key, "outbound"), 1, 96, "vp8",
                         90000, 100, 3, 1200)
        media.add_consumer(into, 1)
        latencies = media.run(seconds)["latencies_ns"] / 1e6
    finally:
        for sock in pair:
            sock.close()
    return percentiles(latencies)


async def sample_forever(observer: ServerObserver, readings: list[dict], stop: asyncio.Event) -> None:
    while not stop.is_set():
        reading = await observer.sample()
        reading["t_rel"] = reading.get("t", time.monotonic())
        readings.append(reading)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def check_server(observer: ServerObserver, url: str) -> dict:
    try:
        health = await observer.health()
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error) if exc.os_error else str(exc)
        raise LoadtestError(f"cannot reach the server at {url}: {reason}") from None
    except ValueError:
        raise LoadtestError(f"{url} does not answer /api/health like a Switchyard server") from None
    except Exception as exc:
        raise LoadtestError(f"cannot reach the server at {url}: {exc or type(exc).__name__}") from None
    if not isinstance(health, dict) or "status" not in health:
        raise LoadtestError(f"{url} does not answer /api/health like a Switchyard server")
    if health["status"] != "ok":
        raise LoadtestError(f"the server at {url} is not healthy: {health}")
    return health


async def create_rooms(organizer: SwitchyardClient, scenario: Scenario) -> list[dict]:
    try:
        await organizer.guest("loadtest-organizer")
        tag = uuid.uuid4().hex[:6]
        return [await organizer.create_room(f"loadtest-{tag}-{r}", is_public=False,
                                            max_participants=scenario.participants)
                for r in range(scenario.rooms)]
    except ApiError as exc:
        raise LoadtestError(f"the server refused the organizer: {exc}") from None


async def join_all(participants: list[Participant], rooms: list[dict], scenario: Scenario,
                   errors: list[str]) -> None:
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(p: Participant) -> None:
        async with gate:
            try:
                await p.join(rooms[p.room_index]["id"])
            except Exception as exc:  # one participant's failure is reported, the run goes on
                errors.append(f"{p.name} join: {type(exc).__name__}: {exc}")

    tasks = []
    for p in participants:
        tasks.append(asyncio.create_task(join(p)))
        if scenario.ramp:
            await asyncio.sleep(scenario.ramp)
    await asyncio.gather(*tasks)


async def run_scenario(scenario: Scenario, url: str, server_pid: int | None = None) -> dict:
    observer = ServerObserver(url, server_pid)
    organizer = SwitchyardClient(url, handle_sigint=False)
    hub = MediaHub()
    participants: list[Participant] = []
    errors: list[str] = []
    readings: list[dict] = []
    stop_sampling = asyncio.Event()
    sampler = None
    stop_signals: list[int] = []
    rooms: list[dict] = []
    try:
        health = await check_server(observer, url)
        rooms = await create_rooms(organizer, scenario)
        floor = await asyncio.to_thread(probe_floor)
        certificate = DtlsCertificate.generate()
        ssrcs: set[int] = set()
        for j in range(scenario.participants):
            for r in range(scenario.rooms):
                participants.append(Participant(url, scenario, hub, certificate, r, j,
                                                j < scenario.senders_per_room, ssrcs))
        recorder = Recorder(hub)
        display = Display(scenario, len(participants))
        sampler = asyncio.create_task(sample_forever(observer, readings, stop_sampling))
        t0 = time.monotonic()
        joiner = asyncio.create_task(join_all(participants, rooms, scenario, errors))
        hard_limit = scenario.ramp * len(participants) + scenario.duration + RUN_SLACK_SECONDS
        steady_from = None
        next_consent = t0 + CONSENT_SECONDS
        interrupted = asyncio.Event()
        stop_signals = install_stop_signals(interrupted)
        with display:
            while True:
                now = time.monotonic()
                if interrupted.is_set():
                    errors.append("interrupted (Ctrl-C or SIGTERM): stopped early, figures up to there")
                    break
                if steady_from is None and joiner.done():
                    steady_from = now
                    joined = sum(1 for p in participants if p.joined)
                    display.note(f"{joined}/{len(participants)} participants joined in {now - t0:.1f} s; "
                                 f"measuring for {scenario.duration:g} s")
                if steady_from is not None and now - steady_from >= scenario.duration:
                    break
                if now - t0 > hard_limit:
                    errors.append(f"the run passed its {hard_limit:.0f} s limit; stopped early")
                    break
                if now >= next_consent:
                    for p in participants:
                        p.consent_checks()
                    next_consent = now + CONSENT_SECONDS
                result = await hub.run_slice(SLICE_SECONDS)
                joined = sum(1 for p in participants if p.joined)
                entry = recorder.record(time.monotonic() - t0, result, joined, steady_from is not None)
                display.update(entry, readings[-1] if readings else None, errors)
        if not joiner.done():
            joiner.cancel()
            await asyncio.gather(joiner, return_exceptions=True)
        await hub.run_slice(TAIL_SECONDS, send=False)
        stop_sampling.set()
        await sampler
        for reading in readings:
            reading["t_rel"] = reading["t"] - t0
        for p in participants:
            errors.extend(p.errors)
        report = build_report(scenario, url, health, recorder.slices, readings, hub, errors,
                              steady_from - t0 if steady_from else None, recorder.steady_start_received)
        report["probe_floor_ms"] = floor
        report["interrupted"] = interrupted.is_set()
        joins = np.array([p.join_seconds for p in participants if p.join_seconds is not None])
        report["totals"]["join_seconds"] = percentiles(joins)
        return report
    finally:
        stop_sampling.set()
        if sampler is not None and not sampler.done():
            sampler.cancel()
        await close_all(participants, organizer, rooms, hub)
        await observer.close()
        for signum in stop_signals:
            asyncio.get_running_loop().remove_signal_handler(signum)


def install_stop_signals(event: asyncio.Event) -> list[int]:
    """Ctrl-C or SIGTERM ends the run early but still reports and cleans up (later ones are ignored)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, event.set)
        except (ValueError, RuntimeError, NotImplementedError):
            continue    # not the main thread: leave the default behaviour
        installed.append(signum)
    return installed


async def close_all(participants: list[Participant], organizer: SwitchyardClient, rooms: list[dict],
                    hub: MediaHub) -> None:
    """Everyone leaves, the organizer deletes its rooms; bounded in time whatever the server does."""
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
    except TimeoutError:
        pass
    await hub.idle()
    for p in participants:
        for transport in p.transports:
            transport.close()
    try:
        async with asyncio.timeout(5):
            for room in rooms:
                await organizer.delete_room(room["id"])
    except (TimeoutError, ApiError, aiohttp.ClientError, OSError):
        pass    # left behind: private rooms with nobody in them
    try:
        async with asyncio.timeout(5):
            await organizer.close()
    except (TimeoutError, ApiError, SignalingError, OSError):
        pass


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt   # so that a spawned server is stopped on the way out


def main(args: argparse.Namespace) -> int:
    """The `switchyard loadtest` command: LoadtestError for the one-line failures."""
    signal.signal(signal.SIGTERM, _terminate)
    scenario = scenario_from_args(args)
    if scenario.plot:
        require_matplotlib()
    raise_file_limit(scenario.rooms * scenario.participants)
    server = None
    url = scenario.url
    if scenario.spawn_server:
        from loadgen.harness.spawn import SpawnedServer

        server = SpawnedServer(scenario.workers)
        url = server.url
        workers = f"{scenario.workers} media worker" + ("s" if scenario.workers != 1 else "")
        print(f"spawned server: {url} (pid {server.pid}, {workers})", flush=True)
    try:
        report = asyncio.run(run_scenario(scenario, url, server.pid if server else None))
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None   # Ctrl-C before the run started
    finally:
        if server is not None:
            code = server.stop()
            if code not in (0, None):
                print(f"switchyard: note: the spawned server exited with code {code}")
    print_summary(report)
    if scenario.output:
        save_json(report, scenario.output)
        print(f"report: {scenario.output}")
    if scenario.plot:
        save_plot(report, scenario.plot)
        print(f"plot: {scenario.plot}")
    if report["errors"]:
        print(f"switchyard: {len(report['errors'])} errors during the run, first: {report['errors'][0]}")
    totals = report["totals"]
    if report["interrupted"]:
        return 130
    if totals["joined"] < totals["participants"]:
        return 1
    return 0 if totals["received_packets"] > 0 or not totals["consumers"] else 1


def raise_file_limit(participants: int) -> None:
    """Two UDP sockets and a WebSocket per participant: lift the soft limit on open files if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 4 * participants + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            raise LoadtestError(f"{participants} participants need about {needed} open files; "
                                f"the hard limit is {hard} (ulimit -n)")

