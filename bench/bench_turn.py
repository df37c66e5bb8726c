"""What the TURN relay adds on loopback: coturn's start, an allocation, and the round trip.

Starts coturn as `switchyard serve` does (app/turn/coturn.py, with a self-signed certificate for
TLS), then compares a direct UDP echo with the same echo through an allocation over UDP, TCP and
TLS (aioice's TURN client). The clients are Python, so the round trips include an asyncio wakeup
at each end; the difference to the direct echo is what the relay adds. Needs coturn installed.

    .venv/bin/python bench/bench_turn.py [--rounds 300] [--output bench/results/turn.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from aioice.turn import create_turn_endpoint

from app.turn.coturn import Coturn
from app.turn.credentials import mint
from app.turn.settings import TurnSettings
from loadgen.harness import spawn
from tests.turn_fixtures import self_signed

PAYLOAD = b"x" * 200


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(data, addr)


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait(data)


async def round_trips(send, inbox: Inbox, rounds: int) -> dict:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        send(PAYLOAD)
        await asyncio.wait_for(inbox.queue.get(), 5)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {"median_us": round(statistics.median(samples) * 1e6),
            "p95_us": round(samples[int(len(samples) * 0.95)] * 1e6)}


async def main(rounds: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-turn-"))
    cert, key, _ = self_signed(folder)
    base = spawn.free_port_range(40, low=32000, high=33000, host="0.0.0.0")
    turn = TurnSettings(mode="coturn", secret="bench-secret-0123456789", host="127.0.0.1", port=base,
                        tls_port=base + 2, cert=str(cert), key=str(key), relay_ports=(base + 4, base + 39),
                        binary=shutil.which("turnserver") or "turnserver", ttl=600)
    coturn = Coturn(turn, "127.0.0.1", "127.0.0.1")
    started = time.perf_counter()
    await coturn.start()
    results: dict = {"coturn_ready_ms": round((time.perf_counter() - started) * 1e3, 1)}
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    peer = echo.get_extra_info("sockname")
    try:
        direct, inbox = await loop.create_datagram_endpoint(Inbox, remote_addr=peer)
        results["direct"] = await round_trips(direct.sendto, inbox, rounds)
        direct.close()
        for transport in ("udp", "tcp", "tls"):
            username, password = mint(turn.secret, "bench", 600)
            context = ssl.create_default_context(cafile=str(cert)) if transport == "tls" else None
            started = time.perf_counter()
            relay, inbox = await create_turn_endpoint(
                Inbox, ("127.0.0.1", turn.tls_port if transport == "tls" else turn.port), username, password,
                ssl=context, transport="udp" if transport == "udp" else "tcp")
            allocation_ms = round((time.perf_counter() - started) * 1e3, 1)
            relay.sendto(b"warm-up", peer)  # binds the channel
            await asyncio.wait_for(inbox.queue.get(), 5)
            results[transport] = {"allocation_ms": allocation_ms,
                                  **await round_trips(lambda data, relay=relay: relay.sendto(data, peer), inbox, rounds)}
            relay.close()
            await asyncio.sleep(0.1)
    finally:
        echo.close()
        await coturn.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--output", default="bench/results/turn.json")
    args = parser.parse_args()
    figures = asyncio.run(main(args.rounds))
    print(json.dumps(figures, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")
