"""A lossy link for tests: a UDP relay between a client and the worker that drops some media packets."""

from __future__ import annotations

import asyncio


class LossyRelay(asyncio.DatagramProtocol):
    """Relays datagrams both ways; drops every `every`-th RTP packet (not RTCP) one way.

    direction "up" loses what the client sends to the server, "down" what the server sends back.
    """

    def __init__(self, server: tuple, every: int, direction: str = "up"):
        self.server = server
        self.every = every
        self.direction = direction
        self.client: tuple | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.media_seen = 0
        self.dropped = 0

    @classmethod
    async def start(cls, server: tuple, every: int, direction: str = "up") -> LossyRelay:
        loop = asyncio.get_running_loop()
        _, relay = await loop.create_datagram_endpoint(lambda: cls(server, every, direction),
                                                       local_addr=("127.0.0.1", 0))
        return relay

    @property
    def address(self) -> tuple:
        return self.transport.get_extra_info("sockname")

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        upstream = addr != self.server
        if upstream:
            self.client = addr
        elif self.client is None:
            return
        if upstream == (self.direction == "up") and self._lose(data):
            return
        self.transport.sendto(data, self.server if upstream else self.client)

    def _lose(self, data: bytes) -> bool:
        """Whether this is the every-th media packet (RTP, not RTCP: RFC 5761 payload types)."""
        if len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            self.media_seen += 1
            if self.media_seen % self.every == 0:
                self.dropped += 1
                return True
        return False

    def close(self) -> None:
        self.transport.close()
