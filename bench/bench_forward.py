"""Forwarding rate of one worker core: one SRTP producer fanned out to 10-500 consumers on loopback.

Three processes. The worker (core 0) runs a Forwarder and nothing else: an
epoll loop that calls drain() when its socket is readable. The producer
(core 1) sends 1,200-byte SRTP probes with loadgen.probes.send_rtp. This
process (core 1 too) holds every consumer socket and drains all of them with
receive_rtp, counting every copy and unprotecting a sample (~20k/s) to read
the probe's send time; arrival is the kernel's stamp, so sharing core 1 with
the producer does not inflate latency. No consumer socket is left to
overflow: a full socket drops a copy more cheaply than it delivers one, which
would flatter the worker.

Per profile and consumer count N: a probe above the worker's capacity gives
its saturated output; paced runs at 95, 85, 75, 60 % of that find the highest
rate with loss <= 0.1 % (the "max" row); a run at half of it gives latency.
Measured on core 0 in the same run, just before each configuration: the
kernel's send rate to the same N sockets (drained the same way) with sendmmsg
x32, and with the Forwarder's own flush (256 slots, GSO); once per profile,
libsrtp protect ns/packet. Each configuration runs --repeat times (this
machine is shared and noisy); the table shows the repetition with the highest
max rate, the JSON keeps them all.

With --feedback, the producer numbers every probe transport-wide (header
extension id 5) and the worker's producer transport has transport-cc on, so
the worker logs each arrival and sends the producer a feedback every 100 ms
or 100 packets, as it does for a browser; the table adds the feedbacks sent.
Results go to forward-feedback.json. bench_feedback_cost.py counts what that
costs in instructions, which this machine's noise hides here.

With --sizes frames, input packets are sized as libwebrtc's packetizer cuts video frames: each frame
into the fewest packets of at most 1,200 bytes, split about equally (RtpPacketizer::SplitAboutEqually:
the last frame_bytes % n packets one byte larger than the others), frame sizes drawn from a log-normal
around 7 KB with a key frame (6x) every 300 frames, as a 1.7 Mbit/s 30 fps VP8 stream. With --sizes
random, sizes are uniform in 200-1,200 bytes. Both are seeded, so runs compare; results go to
forward-sizes-frames.json / forward-sizes-random.json.

    .venv/bin/python bench/bench_forward.py [--seconds 1.0] [--repeat 2] [--consumers 10 100 500]
        [--burst 8] [--feedback] [--sizes equal|frames|random]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import select
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
from fastpath.codecs import CODEC_OPUS
from fastpath.route import Forwarder
from fastpath.srtp import SrtpSession, bench_protect, libsrtp_version, profile_key_lengths
from fastpath.udp import UdpBatchSocket, bench_flush
from loadgen.probes import receive_rtp, send_rtp
from rich.console import Console
from rich.table import Table

try:
    from host_latency import set_realtime  # run as a script: bench/ is on sys.path
except ImportError:  # imported as bench.bench_forward (tests, bench/pipe_window.py)
    from bench.host_latency import set_realtime

PROFILES = ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM")
CONSUMER_COUNTS = (10, 100, 500)
PACKET_SIZE = 1200
WORKER_CORE, CLIENT_CORE = 0, 1
PRODUCER_SSRC = 0x5EED0001
PAYLOAD_TYPE = 111
# --feedback: the transport-wide sequence number's header extension id, as the router offers it
TWCC_EXT_ID = 5
# ~450 queued 1,200-byte datagrams (the kernel default holds ~90)
WORKER_RCVBUF = 1 << 20
CONSUMER_RCVBUF = 2 << 20
# The probe starts at 1.4x what sendmmsg x32 allows and goes up until the worker falls behind.
PROBE_OVERLOAD, PROBE_TRIES = 1.4, 3
STEPS = (0.95, 0.85, 0.75, 0.6)
LOSS_TARGET = 0.001
SAMPLES_PER_SECOND = 20_000
# Core 1 is shared: the producer wins it whenever a packet is due, so input stays evenly paced
# (a burst of k inputs is k x N copies, which the latency tail would show), and the receiver may
# lag, since arrival times are the kernel's and its sockets have room. The worker gets the same
# head start over whatever else this machine runs on core 0. Raising needs CAP_SYS_NICE.
WORKER_NICE, PRODUCER_NICE, RECEIVER_NICE = -10, -10, 5
SETTLE_IDLE_S = 0.3
SETTLE_MAX_S = 15.0
WORKER_MAX_S = 120.0
PROTECT_PACKETS = 200_000
LIMIT_TRIES = 3
RESULTS = Path(__file__).resolve().parent / "results"

# Quoted from DESIGN.md, not measured here: mediasoup 3.19.3, one worker pinned to one core.
MEDIASOUP_QUOTED = {
    "forwarded_pps": {"AEAD_AES_128_GCM": [135_000, 160_000], "AES_CM_128_HMAC_SHA1_80": [115_000, 145_000]},
    "loss": "< 0.1%",
    "latency_p50_ms_at_half_max": {"100": 0.4, "500": 2.3},
    "idle_consumer_kib": 27,
}


# --sizes frames: a 1.7 Mbit/s 30 fps VP8 stream's frames (bytes of payload), see the module docstring
FRAME_MEAN_BYTES, FRAME_SIGMA, KEY_FRAME_EVERY, KEY_FRAME_SCALE = 7_000, 0.45, 300, 6
# bytes each packet adds to its share of the frame: RTP header and extensions, SRTP trailer
PACKET_OVERHEAD = 40
RANDOM_SIZES = (200, 1200)
SIZE_SEED = 16


def packet_sizes(kind: str, count: int = 1 << 16) -> np.ndarray | None:
    """Input packet sizes (SRTP, bytes) for --sizes; None for equal 1,200-byte packets."""
    rng = np.random.default_rng(SIZE_SEED)
    if kind == "equal":
        return None
    if kind == "random":
        return rng.integers(RANDOM_SIZES[0], RANDOM_SIZES[1] + 1, count).astype(np.uint16)
    sizes: list[int] = []
    capacity = PACKET_SIZE - PACKET_OVERHEAD
    frame = 0
    while len(sizes) < count:
        frame_bytes = int(rng.lognormal(np.log(FRAME_MEAN_BYTES), FRAME_SIGMA))
        if frame % KEY_FRAME_EVERY == 0:
            frame_bytes *= KEY_FRAME_SCALE
        frame += 1
        n = -(-frame_bytes // capacity)
        share, larger = divmod(frame_bytes, n)
        # libwebrtc's SplitAboutEqually: the last `larger` packets carry one byte more
        sizes.extend(PACKET_OVERHEAD + share + (i >= n - larger) for i in range(n))
    return np.array(sizes[:count], dtype=np.uint16)


def udp_socket(rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def new_key(profile: str) -> bytes:
    return os.urandom(sum(profile_key_lengths(profile)))


def prefer_on_core(nice: int) -> None:
    """Set this process's nice value; raising priority without CAP_SYS_NICE is skipped."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        pass


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- the worker process (core 0) ----------------------------------------------------------------


class DrainLog:
    """Each drain's start, duration and input packets, for bench_tail.py (spec "drain_log": a path).

    Reading the socket counters around a drain costs a few microseconds (two dicts), about 1 % of a
    drain that fans one packet out to 100 consumers; runs without a log do not pay it.
    """

    LIMIT = 1_000_000

    def __init__(self, path: str):
        self.path, self.rows, self.count = path, np.zeros((self.LIMIT, 3), dtype=np.int64), 0

    def drain(self, fwd: Forwarder) -> None:
        before = fwd.counters()["socket"]["rx_packets"]
        start = time.monotonic_ns()
        fwd.drain()
        end = time.monotonic_ns()
        if self.count < self.LIMIT:
            self.rows[self.count] = (start, end - start, fwd.counters()["socket"]["rx_packets"] - before)
            self.count += 1

    def save(self) -> None:
        np.save(self.path, self.rows[:self.count])


def serve_forwarder(conn, spec: dict) -> None:
    """Build a Forwarder for spec, report its address, then drain on readiness until told to stop."""
    profile = spec["profile"]
    server = udp_socket(WORKER_RCVBUF)
    fwd = Forwarder(server, lambda packets, events: None)
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, spec["producer_addr"])
    fwd.set_transport_srtp(t, SrtpSession(profile, spec["producer_key"], "inbound"),
                           SrtpSession(profile, new_key(profile), "outbound"))
    if spec.get("feedback"):
        fwd.set_transport_incoming_feedback(t, TWCC_EXT_ID, False)
    # Registered as audio so forwarding does not wait for a key frame; the per-copy work is the same.
    stream = fwd.add_producer_stream(t, PRODUCER_SSRC, 0, CODEC_OPUS, 48000, 0, False)
    for i, (addr, key) in enumerate(spec["consumers"]):
        ct = fwd.add_transport(1000 + i)
        fwd.set_transport_tuple(ct, addr)
        fwd.set_transport_srtp(ct, SrtpSession(profile, new_key(profile), "inbound"),
                               SrtpSession(profile, key, "outbound"))
        consumer = fwd.add_consumer(ct, 0x10000 + i, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS, 48000,
                                    False, False)
        fwd.attach_stream(consumer, 0, stream)
    conn.send({"addr": server.getsockname(), "pid": os.getpid()})
    poller = select.epoll()
    poller.register(server.fileno(), select.EPOLLIN)
    poller.register(conn.fileno(), select.EPOLLIN)
    deadline = time.monotonic() + WORKER_MAX_S
    log = DrainLog(spec["drain_log"]) if spec.get("drain_log") else None
    try:
        while time.monotonic() < deadline:
            for fd, _ in poller.poll(0.1):
                if fd == server.fileno():
                    if log is None:
                        fwd.drain()
                    else:
                        log.drain(fwd)
                    continue
                command = conn.recv()
                if command == "stop" and log is not None:
                    log.save()
                conn.send({**fwd.counters(), "incomingFeedbacks": fwd.transport_stats(t)["incomingFeedbacks"]})
                if command == "stop":
                    return
    finally:
        poller.close()
        server.close()


def send_limit(addrs: list, seconds: float, pattern: str) -> dict:
    """Packets/s the kernel takes from this core for 1,200-byte packets, round robin over addrs.

    "x32": sendmmsg batches of 32 without GSO, DESIGN.md's limit. "fanout":
    the Forwarder's own flush (256 slots, GSO on), where copies for one
    consumer in the same flush leave as one message, as they do once the
    Forwarder's receive batches fill up. Best of LIMIT_TRIES slices, since
    whatever else runs on the core can only slow it down.
    """
    batch, gso = (32, False) if pattern == "x32" else (256, True)
    best = {"pps": 0.0}
    with udp_socket() as s:
        sock = UdpBatchSocket(s, tx_slots=batch, gso=gso)
        bench_flush(sock, addrs, batch * 4)
        for _ in range(LIMIT_TRIES):
            before = sock.counters()
            cpu0, start = time.process_time(), time.perf_counter()
            while time.perf_counter() - start < seconds / LIMIT_TRIES:
                bench_flush(sock, addrs, 2_000)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
            after = sock.counters()
            pps = (after["tx_packets"] - before["tx_packets"]) / elapsed
            if pps > best["pps"]:
                best = {"pps": pps, "cpu": cpu / elapsed,
                        "dropped": after["tx_dropped_eagain"] - before["tx_dropped_eagain"]}
    return best


def protect_ns(profile: str) -> float:
    """libsrtp protect ns per 1,200-byte packet on this core, best of LIMIT_TRIES."""
    return min(bench_protect(profile, PROTECT_PACKETS, PACKET_SIZE) / PROTECT_PACKETS * 1e9
               for _ in range(LIMIT_TRIES))


def worker_main(conn) -> None:
    os.sched_setaffinity(0, {WORKER_CORE})
    prefer_on_core(WORKER_NICE)
    while True:
        command, arg = conn.recv()
        if command == "forward":
            serve_forwarder(conn, arg)
        elif command == "send_limit":
            conn.send(send_limit(*arg))
        elif command == "protect":
            conn.send(protect_ns(arg))
        else:
            return


# ---- the producer process (core 1) --------------------------------------------------------------


def producer_main(conn, realtime_priority: int = 0) -> None:
    os.sched_setaffinity(0, {CLIENT_CORE})
    prefer_on_core(PRODUCER_NICE)
    if realtime_priority:
        set_realtime(realtime_priority)  # bench_tail: preempt the receiver the moment a packet is due
    sock, session, seq = None, None, 0
    while True:
        command, arg = conn.recv()
        if command == "open":
            if sock is not None:
                sock.close()
            sock, seq = udp_socket(), 0
            session = SrtpSession(arg["profile"], arg["key"], "outbound")
            conn.send(sock.getsockname())
        elif command == "send":
            result = send_rtp(sock, arg["dest"], session, PRODUCER_SSRC, PAYLOAD_TYPE, PACKET_SIZE,
                              arg["rate"], arg["seconds"], first_seq=seq, clock_rate=48000,
                              burst=arg.get("burst", 1), twcc_ext_id=arg.get("twcc_ext_id", 0),
                              sizes=arg.get("sizes"))
            seq = result["next_seq"]
            conn.send(result)
        else:
            return


# ---- measurements, from this process (core 1) ---------------------------------------------------


def udp_snmp() -> dict:
    """The kernel's UDP counters (system-wide: anything else running on the machine adds to them)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:]), strict=True))


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy_ticks(core: int) -> tuple[int, int]:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = list(map(int, line.split()[1:8]))
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    return 0, 1


class Rig:
    """The worker and producer processes and the consumer sockets, kept across configurations."""

    def __init__(self, max_consumers: int, producer_realtime_priority: int = 0):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < max_consumers + 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max_consumers + 512), hard))
        os.sched_setaffinity(0, {CLIENT_CORE})
        ctx = multiprocessing.get_context("fork")
        self.worker, worker_end = ctx.Pipe()
        self.producer, producer_end = ctx.Pipe()
        self.processes = [ctx.Process(target=worker_main, args=(worker_end,), daemon=True),
                          ctx.Process(target=producer_main, args=(producer_end, producer_realtime_priority), daemon=True)]
        for p in self.processes:
            p.start()
        prefer_on_core(RECEIVER_NICE)
        self.consumer_socks = [udp_socket(CONSUMER_RCVBUF) for _ in range(max_consumers)]

    def close(self) -> None:
        for conn in (self.worker, self.producer):
            conn.send(("exit", None))
        for p in self.processes:
            p.join(5)
            if p.is_alive():
                p.terminate()
        for s in self.consumer_socks:
            s.close()

    def ask(self, conn, command, arg=None, timeout: float = 60.0):
        conn.send((command, arg))
        if not conn.poll(timeout):
            raise TimeoutError(f"no answer to {command}")
        return conn.recv()

    def send_limit(self, n: int, seconds: float, pattern: str) -> dict:
        """The worker core's send_limit() to the first n consumer sockets, drained as in a forwarding run."""
        socks = self.consumer_socks[:n]
        self.worker.send(("send_limit", ([s.getsockname() for s in socks], seconds, pattern)))
        receive_rtp(socks, None, seconds + 5.0, 0, stop_when_idle=SETTLE_IDLE_S)
        return self.worker.recv()


class Session:
    """One configuration: a Forwarder in the worker wired to the producer and N consumer sockets."""

    def __init__(self, rig: Rig, profile: str, consumers: int, burst: int, feedback: bool = False,
                 sizes: np.ndarray | None = None, drain_log: str | None = None):
        self.rig, self.profile, self.n, self.burst, self.feedback = rig, profile, consumers, burst, feedback
        self.sizes = sizes
        producer_key = new_key(profile)
        producer_addr = rig.ask(rig.producer, "open", {"profile": profile, "key": producer_key})
        self.socks = rig.consumer_socks[:consumers]
        keys = [new_key(profile) for _ in self.socks]
        self.sessions = [SrtpSession(profile, key, "inbound") for key in keys]
        ready = rig.ask(rig.worker, "forward", {
            "profile": profile, "producer_addr": producer_addr, "producer_key": producer_key,
            "feedback": feedback, "drain_log": drain_log,
            "consumers": [(s.getsockname(), key) for s, key in zip(self.socks, keys, strict=True)],
        })
        self.server_addr, self.pid = tuple(ready["addr"]), ready["pid"]

    def counters(self, command: str = "counters") -> dict:
        self.rig.worker.send(command)
        if not self.rig.worker.poll(SETTLE_MAX_S):
            raise TimeoutError("the worker did not answer")
        return self.rig.worker.recv()

    def run(self, rate_pps: float, seconds: float, keep_latencies: bool = False) -> dict:
        """Send at rate_pps for seconds; what reached the consumers, what was lost, the worker's CPU.

        keep_latencies: also return every sampled copy's latency (ms, arrival order) as "latencies_ms".
        """
        sample_every = max(1, round(rate_pps * self.n / SAMPLES_PER_SECOND))
        fwd0, snmp0 = self.counters(), udp_snmp()
        cpu0, (busy0, total0) = process_cpu_seconds(self.pid), core_busy_ticks(WORKER_CORE)
        self.rig.producer.send(("send", {"dest": self.server_addr, "rate": rate_pps, "seconds": seconds,
                                         "burst": self.burst, "sizes": self.sizes,
                                         "twcc_ext_id": TWCC_EXT_ID if self.feedback else 0}))
        window = receive_rtp(self.socks, self.sessions, seconds, sample_every)
        cpu1, (busy1, total1) = process_cpu_seconds(self.pid), core_busy_ticks(WORKER_CORE)
        sent = self.rig.producer.recv()
        tail = receive_rtp(self.socks, self.sessions, SETTLE_MAX_S, sample_every, stop_when_idle=SETTLE_IDLE_S)
        fwd1, snmp1 = self.counters(), udp_snmp()
        expected = sent["sent"] * self.n
        delivered = window["packets"] + tail["packets"]
        latencies = np.concatenate([window["latencies_ns"], tail["latencies_ns"]]) / 1e6
        drops = sum(fwd1["drops"].values()) - sum(fwd0["drops"].values())
        drops += sum(fwd1["socket"][k] - fwd0["socket"][k] for k in ("tx_dropped_eagain", "tx_errors"))
        result = {
            "input_pps": sent["achieved_pps"],
            "forwarded_bytes_per_s": window["bytes"] / window["seconds"],
            "forwarded_pps": window["packets"] / window["seconds"],
            "expected": expected,
            "delivered": delivered,
            "loss": max(0, expected - delivered) / expected if expected else 0.0,
            "worker_drops": drops,
            "kernel_rcvbuf_errors": snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"],
            "kernel_sndbuf_errors": snmp1["SndbufErrors"] - snmp0["SndbufErrors"],
            "worker_cpu": (cpu1 - cpu0) / window["seconds"],
            "core0_busy": (busy1 - busy0) / max(total1 - total0, 1),
            "latency_ms": {
                **{f"p{q:g}": float(np.percentile(latencies, q)) if len(latencies) else None
                   for q in (50, 90, 99, 99.9, 100)},
                "samples": len(latencies),
            },
            "srtp_failures": window["srtp_failures"] + tail["srtp_failures"],
            # transport-cc feedbacks to the producer (--feedback; 0 without)
            "feedbacks_sent": fwd1["incomingFeedbacks"] - fwd0["incomingFeedbacks"],
            "feedbacks_per_s": (fwd1["incomingFeedbacks"] - fwd0["incomingFeedbacks"]) / sent["seconds"],
            # the producer's own pacing hold-ups (> 0.5 ms late, then what fell due back to back)
            "producer_late_sends": sent.get("late_sends", 0),
            "producer_max_late_us": sent.get("max_late_us", 0.0),
        }
        if keep_latencies:
            result["latencies_ms"] = latencies
        return result

    def close(self) -> None:
        self.counters("stop")


def measure_configuration(rig: Rig, profile: str, n: int, seconds: float, burst: int,
                          feedback: bool = False, sizes: np.ndarray | None = None) -> dict:
    limits = {pattern: rig.send_limit(n, seconds, pattern) for pattern in ("x32", "fanout")}
    session = Session(rig, profile, n, burst, feedback, sizes)
    try:
        session.run(min(1000.0, limits["x32"]["pps"] / n), 0.3)  # warm up: libsrtp streams, caches
        rate = PROBE_OVERLOAD * limits["x32"]["pps"] / n
        for _ in range(PROBE_TRIES):
            probe = session.run(rate, seconds)
            if probe["forwarded_pps"] < 0.97 * probe["input_pps"] * n:
                break  # the worker fell behind: its output is its capacity
            rate *= 1.5
        steps = []
        for fraction in STEPS:
            steps.append(session.run(fraction * probe["forwarded_pps"] / n, seconds))
            if steps[-1]["loss"] <= LOSS_TARGET:
                break
        half = session.run(steps[-1]["input_pps"] / 2, 1.5 * seconds)
    finally:
        session.close()
    return {
        "profile": profile, "consumers": n, "burst": burst, "feedback": feedback, "limits": limits,
        "saturated": probe, "steps": steps, "max": steps[-1], "half": half,
    }


def idle_memory_main(conn, profile: str, count: int) -> None:
    """Send the RSS growth per idle consumer (with its transport and SRTP contexts) over count more."""
    with udp_socket() as server:
        fwd = Forwarder(server, lambda packets, events: None)
        t = fwd.add_transport(1)
        stream = fwd.add_producer_stream(t, PRODUCER_SSRC, 0, CODEC_OPUS, 48000, 0, False)

        def add(first: int, last: int) -> None:
            for i in range(first, last):
                ct = fwd.add_transport(1000 + i)
                fwd.set_transport_tuple(ct, ("127.0.0.1", 10_000 + i))
                fwd.set_transport_srtp(ct, SrtpSession(profile, new_key(profile), "inbound"),
                                       SrtpSession(profile, new_key(profile), "outbound"))
                consumer = fwd.add_consumer(ct, 0x10000 + i, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS,
                                            48000, False, False)
                fwd.attach_stream(consumer, 0, stream)

        add(0, 100)  # past the first growth of every table
        before = rss_kib()
        add(100, 100 + count)
        conn.send((rss_kib() - before) / count)


def idle_consumer_kib(profile: str, count: int = 2000) -> float:
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=idle_memory_main, args=(child_end, profile, count))
    p.start()
    try:
        if not parent_end.poll(60):
            raise TimeoutError("the memory probe did not answer")
        return parent_end.recv()
    finally:
        p.join(5)


def direct_latency(rig: Rig, profile: str) -> dict:
    """The floor of the latency probe: producer straight to one consumer socket, no forwarder."""
    key = new_key(profile)
    rig.ask(rig.producer, "open", {"profile": profile, "key": key})
    sock = rig.consumer_socks[0]
    rig.producer.send(("send", {"dest": sock.getsockname(), "rate": 2000, "seconds": 0.5}))
    got = receive_rtp([sock], [SrtpSession(profile, key, "inbound")], 1.5, stop_when_idle=SETTLE_IDLE_S)
    rig.producer.recv()
    lat = got["latencies_ns"] / 1e6
    return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}


# ---- report ---------------------------------------------------------------------------------------


def machine_info() -> dict:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.SubprocessError):
        model = platform.processor()
    return {"cpu_model": model, "kernel": platform.release(), "cores": os.cpu_count(),
            "python": platform.python_version(), "libsrtp": libsrtp_version(),
            "load_average_at_end": os.getloadavg()}


def best_of(runs: list[dict]) -> list[dict]:
    """Per profile and consumer count, the repetition with the highest max rate."""
    best = {}
    for r in runs:
        key = (r["profile"], r["consumers"])
        if key not in best or r["max"]["forwarded_pps"] > best[key]["max"]["forwarded_pps"]:
            best[key] = r
    return list(best.values())


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def print_table(console: Console, rows: list[dict], protect: dict, floor: dict, memory: dict,
                feedback: bool = False) -> None:
    title = f"One worker core forwarding {PACKET_SIZE}-byte SRTP, 1 producer -> N consumers (loopback)"
    if feedback:
        title += ", transport-cc feedback to the producer"
    table = Table(title=title)
    columns = ("profile", "N", "in pps", "fwd pps", "loss", "CPU", "sat. pps", "us CPU/copy",
               "sendmmsg x32", "fwd/x32", "protect", "p50 ms", "p99 ms")
    if feedback:
        columns += ("fb/s", "in/fb")
    for name in columns:
        table.add_column(name, justify="left" if name == "profile" else "right")
    for r in rows:
        best, half, sat, limits = r["max"], r["half"], r["saturated"], r["limits"]
        extra = ()
        if feedback:
            extra = (f"{best['feedbacks_per_s']:,.0f}",
                     f"{best['input_pps'] / best['feedbacks_per_s']:.0f}" if best["feedbacks_per_s"] else "-")
        table.add_row(
            r["profile"].replace("_HMAC_SHA1", "").replace("AEAD_", ""), str(r["consumers"]),
            f"{best['input_pps']:,.0f}", f"{best['forwarded_pps']:,.0f}", f"{100 * best['loss']:.2f}%",
            pct(best["worker_cpu"]), f"{sat['forwarded_pps']:,.0f}",
            f"{1e6 * sat['worker_cpu'] / sat['forwarded_pps']:.2f}", f"{limits['x32']['pps']:,.0f}",
            pct(best["forwarded_pps"] / limits["x32"]["pps"]),
            pct(best["forwarded_pps"] * protect[r["profile"]] * 1e-9),
            f"{half['latency_ms']['p50']:.2f}", f"{half['latency_ms']['p99']:.2f}", *extra,
        )
    console.print(table)
    console.print(
        "fwd pps: consumer copies/s delivered at the highest input rate with loss <= 0.1 % (loss and worker "
        "CPU there); sat.: output with the input above capacity, and the worker's CPU time per copy there "
        "(softirq time the kernel does not charge to it excluded); sendmmsg x32: the kernel's rate to the "
        "same N sockets from the same core; protect: share of the core libsrtp protect alone takes at fwd pps "
        "(= fwd / the rate protect cost implies); latency at half the max input rate, send to kernel arrival. "
        f"Probe floor without the forwarder: p50 {floor['p50']:.3f} ms, p99 {floor['p99']:.3f} ms."
        + (" fb/s: transport-cc feedbacks the worker sent the producer a second at fwd pps; in/fb: input "
           "packets per feedback (one each 100 ms, or each 100 packets waiting)." if feedback else ""))
    console.print("libsrtp protect on core 0: " + ", ".join(
        f"{p} {ns:.0f} ns ({1e9 / ns:,.0f}/s)" for p, ns in protect.items()))
    console.print("Memory per idle consumer with its own transport and SRTP contexts (worker RSS): " + ", ".join(
        f"{p} {kib:.1f} KiB" for p, kib in memory.items()))
    quoted = MEDIASOUP_QUOTED["forwarded_pps"]
    console.print(
        "[bold]Quoted from DESIGN.md, not measured here:[/bold] mediasoup 3.19.3, one worker on one core, "
        f"10-500 consumers: AES-GCM {quoted['AEAD_AES_128_GCM'][0]:,}-{quoted['AEAD_AES_128_GCM'][1]:,} pkt/s, "
        f"AES-CM {quoted['AES_CM_128_HMAC_SHA1_80'][0]:,}-{quoted['AES_CM_128_HMAC_SHA1_80'][1]:,} pkt/s, "
        "loss < 0.1 %; p50 latency at half max 0.4 ms (100 consumers), 2.3 ms (500); ~27 KiB per idle consumer.")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.5))
    colors = dict(zip(PROFILES, ("tab:blue", "tab:orange"), strict=True))
    for profile in PROFILES:
        mine = sorted((r for r in rows if r["profile"] == profile), key=lambda r: r["consumers"])
        if not mine:
            continue
        ns = [r["consumers"] for r in mine]
        ax.plot(ns, [r["max"]["forwarded_pps"] for r in mine], "o-", color=colors[profile],
                label=f"Switchyard {profile}, loss <= 0.1 %")
        ax.plot(ns, [r["limits"]["x32"]["pps"] for r in mine], "--", color=colors[profile], alpha=0.6,
                label=f"sendmmsg x32 limit (measured before the {profile} runs)")
        low, high = MEDIASOUP_QUOTED["forwarded_pps"][profile]
        ax.axhspan(low, high, color=colors[profile], alpha=0.12, label=f"mediasoup {profile} (quoted, not measured)")
    ns = sorted({r["consumers"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("consumers (one producer)")
    ax.set_ylabel("forwarded packets/s (1,200-byte SRTP)")
    ax.set_ylim(bottom=0)
    ax.set_title("One worker core, loopback")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each configuration")
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--consumers", nargs="+", type=int, default=list(CONSUMER_COUNTS))
    parser.add_argument("--burst", type=int, default=1,
                        help="input packets sent back to back, as a video frame's are (1: evenly paced)")
    parser.add_argument("--feedback", action="store_true",
                        help="number every input packet transport-wide and send the producer transport-cc feedback")
    parser.add_argument("--sizes", default="equal", choices=("equal", "frames", "random"),
                        help="input packet sizes: 1,200 bytes, libwebrtc's video packetizer, or 200-1,200 random")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    if not 1 <= args.burst <= 32:
        parser.error("--burst must be in 1..32")
    name = "forward" if args.burst == 1 else f"forward-burst{args.burst}"
    if args.feedback:
        name += "-feedback"
    if args.sizes != "equal":
        name += f"-sizes-{args.sizes}"
    sizes = packet_sizes(args.sizes)
    if os.cpu_count() < 2:
        raise SystemExit("bench_forward needs two cores (the worker on core 0, clients on core 1)")

    load_at_start = os.getloadavg()
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    started = time.perf_counter()
    rig = Rig(max(args.consumers))
    runs = []
    try:
        protect = {p: rig.ask(rig.worker, "protect", p) for p in args.profiles}
        floor = direct_latency(rig, args.profiles[0])
        memory = {p: idle_consumer_kib(p) for p in args.profiles}
        for repetition in range(args.repeat):
            for profile in args.profiles:
                for n in args.consumers:
                    r = measure_configuration(rig, profile, n, args.seconds, args.burst, args.feedback, sizes)
                    r["repetition"] = repetition
                    runs.append(r)
                    console.print(
                        f"[{repetition + 1}/{args.repeat}] {profile} x{n}: {r['max']['forwarded_pps']:,.0f} pkt/s "
                        f"at loss {100 * r['max']['loss']:.3f}%, saturated {r['saturated']['forwarded_pps']:,.0f}, "
                        f"sendmmsg x32 {r['limits']['x32']['pps']:,.0f}"
                        + (f", {r['max']['feedbacks_per_s']:,.0f} feedbacks/s" if args.feedback else "")
                        + f"  ({time.perf_counter() - started:.0f} s)")
    finally:
        rig.close()
    elapsed = time.perf_counter() - started
    rows = best_of(runs)
    print_table(console, rows, protect, floor, memory, args.feedback)
    console.print(f"({elapsed:.0f} s)")

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({
        "benchmark": "forward",
        "burst": args.burst,
        "feedback": args.feedback,
        "sizes": args.sizes,
        "mean_packet_bytes": float(sizes.mean()) if sizes is not None else PACKET_SIZE,
        "twcc_ext_id": TWCC_EXT_ID if args.feedback else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "packet_size": PACKET_SIZE,
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "loss_target": LOSS_TARGET,
        "worker_rcvbuf": WORKER_RCVBUF,
        "consumer_rcvbuf": CONSUMER_RCVBUF,
        "protect_ns": protect,
        "probe_floor_latency_ms": floor,
        "idle_consumer_kib": memory,
        "best": rows,
        "runs": runs,
        "mediasoup_quoted_not_measured": MEDIASOUP_QUOTED,
        "elapsed_s": elapsed,
    }, indent=2) + "\n")
    plot(rows, out / f"{name}.png")
    console.print(f"saved {out / (name + '.json')} and {out / (name + '.png')}")


if __name__ == "__main__":
    main()
