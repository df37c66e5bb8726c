"""A lossy link for tests: a UDP relay between a client and the worker that drops some media packets."""

from __future__ import annotations

import asyncio


class LossyRelay(asyncio.DatagramProtocol):
    """Relays datagrams both ways; drops every `every`-th RTP packet (not RTCP) from client to server."""

    def __init__(self, server: tuple, every: int):
        self.server = server
        self.every = every
        self.client: tuple | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.media_seen = 0
        self.dropped = 0

    @classmethod
    async def start(cls, server: tuple, every: int) -> LossyRelay:
        loop = asyncio.get_running_loop()
        _, relay = await loop.create_datagram_endpoint(lambda: cls(server, every), local_addr=("127.0.0.1", 0))
        return relay

    @property
    def address(self) -> tuple:
        return self.transport.get_extra_info("sockname")

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if addr == self.server:
            if self.client is not None:
                self.transport.sendto(data, self.client)
            return
        self.client = addr
        if len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            self.media_seen += 1
            if self.media_seen % self.every == 0:
                self.dropped += 1
                return
        self.transport.sendto(data, self.server)

    def close(self) -> None:
        self.transport.close()
