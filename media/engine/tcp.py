"""ICE-TCP (RFC 6544) on the worker's shared TCP port: RFC 4571 framing, passive connections only.

Each accepted connection carries one ICE tuple. Its frames are demuxed like
datagrams (RFC 7983): STUN goes to the transport named by the USERNAME, DTLS
and media to the transport that validated this tuple. Media read from TCP
enters the Forwarder through `inject`, and the Forwarder's TCP output is
written back in one `write` per connection per drain.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

from common.log import get_logger
from media.engine.ice import ufrag_of

if TYPE_CHECKING:
    from media.engine.core import Engine

log = get_logger("engine.tcp")

FRAME_HEADER = struct.Struct("!H")
# A connection that has not passed an ICE check after this long is closed (RFC 6544 §8 leaves it open).
UNVALIDATED_TIMEOUT = 10.0
# More unread input than this means a peer that floods us: drop the connection.
MAX_BUFFERED = 256 * 1024


def frame(packet: bytes) -> bytes:
    """One RFC 4571 frame: a 16-bit length, then the packet."""
    return FRAME_HEADER.pack(len(packet)) + packet


class IceTcpConnection(asyncio.Protocol):
    """One accepted TCP connection; `addr` is the remote (ip, port) that names its ICE tuple."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.addr: tuple | None = None
        self.buffer = bytearray()
        self.validated = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        self.engine.tcp_connections[self.addr] = self
        self._timer = self.engine.loop.call_later(UNVALIDATED_TIMEOUT, self._expire)

    def _expire(self) -> None:
        if not self.validated and self.transport is not None:
            self.engine.control_drops["tcp_unvalidated"] += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_BUFFERED:
            self.engine.control_drops["tcp_flood"] += 1
            self.transport.close()
            return
        while len(self.buffer) >= 2:
            (length,) = FRAME_HEADER.unpack_from(self.buffer)
            if len(self.buffer) < 2 + length:
                break
            packet = bytes(self.buffer[2:2 + length])
            del self.buffer[:2 + length]
            if length:
                self._dispatch(packet)

    def _dispatch(self, packet: bytes) -> None:
        engine = self.engine
        try:
            first = packet[0]
            if first <= 3:
                transport = engine.ufrags.get(ufrag_of(packet) or "")
                if transport is None:
                    engine.control_drops["stun_unknown_ufrag"] += 1
                else:
                    transport.on_stun(packet, self.addr, protocol="tcp")
                    if transport.ice.is_valid_tuple(self.addr, "tcp"):
                        self.validated = True
                return
            if not self.validated:
                # the first frames of an ICE-TCP connection must be connectivity checks (RFC 6544 §7.2)
                engine.control_drops["tcp_unvalidated"] += 1
                self.transport.close()
                return
            transport = engine.tcp_tuples.get(self.addr)
            if transport is None:
                engine.control_drops["tcp_unknown_tuple"] += 1
            elif 20 <= first <= 63:
                transport.on_dtls(packet, self.addr, protocol="tcp")
            elif 128 <= first <= 191:
                transport.on_tcp_media(packet, self.addr)
            else:
                engine.control_drops["unknown_class"] += 1
        except Exception:
            engine.control_drops["control_error"] += 1
            log.exception("TCP frame from %s failed", self.addr)

    def send(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(packet))

    def send_framed(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.engine.tcp_connections.pop(self.addr, None)
        transport = self.engine.tcp_tuples.get(self.addr)
        if transport is not None:
            transport.on_tcp_closed(self.addr)
