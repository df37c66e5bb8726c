"""A lossy link for tests: a UDP relay between a client and the worker that drops some media or SCTP packets."""

from __future__ import annotations

import asyncio

# an SCTP packet this large carries a DATA chunk of a message of 200 bytes or more
SCTP_DATA_SIZE = 200


class LossyRelay(asyncio.DatagramProtocol):
    """Relays datagrams both ways; drops every `every`-th RTP packet (not RTCP) one way.

    direction "up" loses what the client sends to the server, "down" what the server sends back.
    kind "sctp" drops DTLS application data (SCTP packets, RFC 8261) of at least SCTP_DATA_SIZE
    bytes instead (DATA chunks of messages that large, never the short SACK, FORWARD-TSN or
    HEARTBEAT packets), and only while `every` is not 0, so a test can let the association come
    up before the losses start.
    """

    def __init__(self, server: tuple, every: int, direction: str = "up", kind: str = "rtp"):
        self.server = server
        self.every = every
        self.direction = direction
        self.kind = kind
        self.client: tuple | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.media_seen = 0
        self.dropped = 0

    @classmethod
    async def start(cls, server: tuple, every: int, direction: str = "up", kind: str = "rtp") -> LossyRelay:
        loop = asyncio.get_running_loop()
        _, relay = await loop.create_datagram_endpoint(lambda: cls(server, every, direction, kind),
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
        if self.kind == "sctp":
            # a DTLS application_data record (content type 23, RFC 6347 section 4.1)
            if self.every and data[:1] == b"\x17" and len(data) >= SCTP_DATA_SIZE:
                self.media_seen += 1
                if self.media_seen % self.every == 0:
                    self.dropped += 1
                    return True
            return False
        if len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            self.media_seen += 1
            if self.media_seen % self.every == 0:
                self.dropped += 1
                return True
        return False

    def close(self) -> None:
        self.transport.close()
