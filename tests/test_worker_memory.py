"""A worker process is lean before any room: it imports what forwarding needs and no more.

The worker is spawned exactly as the server spawns it (media.api.worker.Worker), and its memory
read from /proc. DTLS (cryptography, pyOpenSSL) and STUN (aioice) load with the first WebRTC
transport; aiortc (with PyAV and numpy) only with a first SCTP association, for DataChannels, so a
worker that carries none never loads it.
"""

from __future__ import annotations

import pytest

from media.api.worker import Worker, WorkerSettings, bind_rtc_sockets

# The target is 40 MB (mediasoup's C++ worker: 22 MB); a worker measures ~35 MB on Python 3.11.
# The bound is the target itself, not the measurement: a few MB of slack for another libc or
# allocator, while any control library pulled in at start (aiortc alone is ~30 MB) breaks it.
MAX_IDLE_RSS_KIB = 40 * 1024

# Shared objects that only a WebRTC transport's control path needs; and those of aiortc, which only
# an SCTP association (DataChannels) brings.
DTLS_LIBRARIES = ("cryptography/hazmat/bindings/_rust",)
NEVER_IN_A_WORKER = ("/av/", "av.libs", "/aiortc/", "/numpy/")  # without DataChannels


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {parts[5] for parts in (line.split() for line in maps) if len(parts) > 5}


def mapped(files: set[str], needles: tuple[str, ...]) -> list[str]:
    return sorted(f for f in files if any(n in f for n in needles))


@pytest.fixture
async def worker(free_ports):
    port = free_ports(1)
    udp, tcp = bind_rtc_sockets("127.0.0.1", port)
    w = Worker(WorkerSettings(0, "127.0.0.1", port, "127.0.0.1"), udp, tcp)
    await w.start()
    yield w
    await w.close()


async def test_idle_worker_is_lean_and_loads_dtls_with_the_first_webrtc_transport(worker):
    assert worker.pid is not None
    # start() returned after the worker answered worker.dump: it is serving.
    idle = rss_kib(worker.pid)
    assert idle <= MAX_IDLE_RSS_KIB, f"idle worker RSS {idle} KiB > {MAX_IDLE_RSS_KIB} KiB"
    files = mapped_files(worker.pid)
    assert mapped(files, DTLS_LIBRARIES + NEVER_IN_A_WORKER) == []

    router = await worker.create_router()
    transport = await router.create_webrtc_transport()
    # The certificate is made on demand and the answer carries its fingerprints.
    fingerprints = transport.dtls_parameters["fingerprints"]
    assert {f["algorithm"] for f in fingerprints} >= {"sha-256"}
    assert all(len(f["value"].split(":")) >= 32 for f in fingerprints)
    await transport.connect({"role": "client", "fingerprints": fingerprints})
    assert transport.dtls_parameters["role"] == "server"

    files = mapped_files(worker.pid)
    assert mapped(files, DTLS_LIBRARIES), "DTLS libraries should load with the first WebRTC transport"
    assert mapped(files, NEVER_IN_A_WORKER) == []
    # A second transport reuses the worker's certificate.
    second = await router.create_webrtc_transport()
    assert second.dtls_parameters["fingerprints"] == fingerprints
