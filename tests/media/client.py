"""A pymediasoup + aiortc client wired straight to the engine's API objects (no signaling server).

This is the test's stand-in for signaling, not a mock: every request goes to a
real worker process, and media flows over real UDP between aiortc and it.
"""

from __future__ import annotations

import asyncio
import copy
import time

from pymediasoup import AiortcHandler, Device
from pymediasoup.rtp_parameters import RtpCapabilities
from switchyard_client import wire

from media.api.router import Router


class Client:
    """One participant: a Device, a send and/or receive transport, producers and consumers."""

    def __init__(self, router: Router, tracks: list | None = None, relay: tuple | None = None):
        self.router = router
        # send media through this (ip, port) instead of the worker's candidate (a lossy link)
        self.relay = relay
        self.device = Device(handlerFactory=AiortcHandler.createFactory(tracks=tracks or []))
        self.send_transport = None
        self.recv_transport = None
        self.server_send = None
        self.server_recv = None

    async def load(self) -> Client:
        caps = RtpCapabilities.model_validate(copy.deepcopy(self.router.rtp_capabilities))
        await self.device.load(caps)
        return self

    async def _transport(self, direction: str):
        server = await self.router.create_webrtc_transport()
        create = self.device.createSendTransport if direction == "send" else self.device.createRecvTransport
        candidates = [c for c in server.ice_candidates if c["protocol"] == "udp"]
        if self.relay is not None:
            candidates = [{**c, "ip": self.relay[0], "address": self.relay[0], "port": self.relay[1]}
                          for c in candidates]
        transport = create(id=server.id, iceParameters=server.ice_parameters,
                           iceCandidates=candidates, dtlsParameters=server.dtls_parameters,
                           sctpParameters=None)

        @transport.on("connect")
        async def on_connect(dtlsParameters):
            await server.connect(wire(dtlsParameters))

        if direction == "send":
            @transport.on("produce")
            async def on_produce(kind, rtpParameters, appData):
                producer = await server.produce(kind, wire(rtpParameters), app_data=appData)
                return producer.id

        return transport, server

    async def produce(self, track, **options):
        if self.send_transport is None:
            self.send_transport, self.server_send = await self._transport("send")
        client_producer = await self.send_transport.produce(track=track, stopTracks=False, **options)
        return client_producer, self.server_send.producers[client_producer.id]

    async def consume(self, producer_id: str, paused: bool = True):
        if self.recv_transport is None:
            self.recv_transport, self.server_recv = await self._transport("recv")
        server_consumer = await self.server_recv.consume(producer_id, wire(self.device.rtpCapabilities),
                                                         paused=paused)
        client_consumer = await self.recv_transport.consume(
            id=server_consumer.id, producerId=producer_id, kind=server_consumer.kind,
            rtpParameters=server_consumer.rtp_parameters)
        return client_consumer, server_consumer

    async def close(self) -> None:
        for transport in (self.send_transport, self.recv_transport):
            if transport is not None:
                await transport.close()


async def receive_frames(track, count: int, timeout: float = 20.0) -> tuple[list, float]:
    """Decode `count` frames from a remote track; returns them and the monotonic time of the first."""
    frames = []
    start = time.monotonic()
    first = None
    deadline = start + timeout
    while len(frames) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {len(frames)} of {count} frames in {timeout}s")
        frame = await asyncio.wait_for(track.recv(), remaining)
        if first is None:
            first = time.monotonic()
        frames.append(frame)
    return frames, first
