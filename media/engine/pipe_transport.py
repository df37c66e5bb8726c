"""A pipe transport in the worker: one end of a pipe between routers of two workers (mediasoup's PipeTransport).

A plain transport without comedia, with one difference: the worker finds a transport by the remote
address a datagram comes from, and every pipe to another worker comes from that worker's one
port. So the plain-RTP pipes of all router pairs between two workers share one Forwarder
transport slot, a *link*: packets are told apart by SSRC within it (the Forwarder keys streams and
consumers by slot and SSRC, and pipe SSRCs are drawn at random per encoding), and the link's slot
lives while any pipe uses it. An SRTP pipe keeps a slot of its own with its own keys, so it is the
only pipe between its two workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.engine.errors import invalid_input
from media.engine.plain_transport import PlainTransport

if TYPE_CHECKING:
    from media.engine.core import Engine
    from media.engine.router import Router


class PipeLink:
    """The Forwarder slot shared by the plain pipes to one remote worker address."""

    def __init__(self, engine: Engine, slot: int, addr: tuple):
        self.engine = engine
        self.slot = slot
        self.addr = addr
        self.users: set[PipeTransport] = set()

    def on_unknown_rtp(self, packet: bytes) -> None:
        """Every pipe producer's SSRCs are known when it is made: an unknown one belongs to none."""
        self.engine.control_drops["unmatched_ssrc"] += 1


class PipeTransport(PlainTransport):
    kind = "pipe"

    def __init__(self, engine: Engine, router: Router, transport_id: str, data: dict):
        if data.get("comedia") or not data.get("rtcpMux", True):
            raise invalid_input("a pipe transport has rtcpMux and no comedia")
        super().__init__(engine, router, transport_id, data)
        self.link: PipeLink | None = None

    def connect(self, data: dict) -> dict:
        """The other worker's address; a plain pipe joins the link to it when there is one."""
        ip, port = data.get("ip"), data.get("port")
        if self.enable_srtp or self.connected or not isinstance(ip, str) or not isinstance(port, int):
            return super().connect(data)  # its own slot (or the parent's refusal)
        links = self.engine.pipe_links
        link = links.get((ip, port))
        if link is None:
            result = super().connect(data)
            link = links[(ip, port)] = PipeLink(self.engine, self.slot, (ip, port))
            self.engine.transports_by_slot[self.slot] = link
        else:
            # give back the slot made for us and use the link's
            self.engine.forwarder.remove_transport(self.slot)
            self.engine.transports_by_slot.pop(self.slot, None)
            self.slot = link.slot
            self.tuple = (ip, port)
            self.connected = True
            result = {"tuple": self._local_tuple(self.tuple)}
        link.users.add(self)
        self.link = link
        return result

    def close(self) -> None:
        link = self.link
        if self.closed or link is None:
            super().close()
            return
        link.users.discard(self)
        if not link.users:  # the last pipe on the link frees its slot
            self.engine.pipe_links.pop(link.addr, None)
            super().close()
            return
        # others still use the slot: close only what is ours
        self.closed = True
        self.close_data()
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        self.engine.transports.pop(self.id, None)
        self.router.transports.pop(self.id, None)
