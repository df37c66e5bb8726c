"""A pipe transport in the worker: one end of a pipe between routers of two workers (mediasoup's PipeTransport).

A plain transport without comedia, with one difference: the worker finds a transport by the remote
address a datagram comes from, and every pipe to another worker comes from that worker's one
port. So the pipes of all router pairs between two workers share one Forwarder transport slot, a
*link*: packets are told apart by SSRC within it (the Forwarder keys streams and consumers by slot
and SSRC, and pipe SSRCs are drawn at random per encoding), and the link's slot lives while any
pipe uses it.

A link carries plain RTP or SRTP, never both. SRTP needs one key per direction for the whole
link, since the Forwarder protects and unprotects per slot, while each pipe's key is signalled
when its end is made, before its far address is known. So every SRTP pipe end of a worker has the
same key, drawn once per worker process (and cipher suite): whichever pipe makes the link, its
sessions are keyed by this worker's key and the far worker's, as every later pipe between the two
would key them. A far worker that is replaced on its port (a respawn) comes with a new key: a pipe
joining with another key than the link's re-keys it, the old far worker's pipes carrying nothing
any more.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastpath.srtp import SrtpSession

from media.engine.errors import invalid_input, invalid_state
from media.engine.plain_transport import PlainTransport, srtp_key_length

if TYPE_CHECKING:
    from media.engine.core import Engine
    from media.engine.router import Router


class PipeLink:
    """The Forwarder slot shared by the pipes to one remote worker address."""

    def __init__(self, engine: Engine, slot: int, addr: tuple, srtp_suite: str | None = None,
                 remote_key: bytes | None = None):
        self.engine = engine
        self.slot = slot
        self.addr = addr
        # SRTP: the suite and the far worker's key the link's sessions use; None: plain RTP
        self.srtp_suite = srtp_suite
        self.remote_key = remote_key
        self.users: set[PipeTransport] = set()

    def on_unknown_rtp(self, packet: bytes) -> None:
        """Every pipe producer's SSRCs are known when it is made: an unknown one belongs to none."""
        self.engine.control_drops["unmatched_ssrc"] += 1

    def admit(self, pipe: PipeTransport, remote_key: bytes | None) -> None:
        """Check that a pipe can share the link; a far worker's new key re-keys it."""
        kind = "SRTP" if self.srtp_suite else "plain RTP"
        if (remote_key is None) != (self.srtp_suite is None):
            raise invalid_state(f"the pipes to {self.addr[0]}:{self.addr[1]} carry {kind}: a "
                                f"{'plain RTP' if remote_key is None else 'SRTP'} pipe cannot share their link")
        if remote_key is None:
            return
        if pipe.srtp_suite != self.srtp_suite:
            raise invalid_state(f"the pipes to {self.addr[0]}:{self.addr[1]} use {self.srtp_suite}")
        if remote_key == self.remote_key:
            return
        assert pipe.local_key is not None
        self.engine.forwarder.set_transport_srtp(self.slot, SrtpSession(self.srtp_suite, remote_key, "inbound"),
                                                 SrtpSession(self.srtp_suite, pipe.local_key, "outbound"))
        self.remote_key = remote_key


def worker_pipe_key(engine: Engine, suite: str) -> bytes:
    """This worker's SRTP key (and salt) for every pipe end of the suite, drawn on first use."""
    key = engine.pipe_keys.get(suite)
    if key is None:
        key = engine.pipe_keys[suite] = os.urandom(srtp_key_length(suite))
    return key


class PipeTransport(PlainTransport):
    kind = "pipe"

    def __init__(self, engine: Engine, router: Router, transport_id: str, data: dict):
        if data.get("comedia") or not data.get("rtcpMux", True):
            raise invalid_input("a pipe transport has rtcpMux and no comedia")
        super().__init__(engine, router, transport_id, data)
        if self.enable_srtp:
            self.local_key = worker_pipe_key(engine, self.srtp_suite)
        self.link: PipeLink | None = None

    def connect(self, data: dict) -> dict:
        """The other worker's address; the pipe joins the link to it when there is one."""
        ip, port = data.get("ip"), data.get("port")
        if self.connected or not isinstance(ip, str) or not isinstance(port, int):
            return super().connect(data)  # the parent's refusal
        remote_key = self._remote_key(data.get("srtpParameters")) if self.enable_srtp else None
        links = self.engine.pipe_links
        link = links.get((ip, port))
        if link is None:
            result = super().connect(data)
            link = links[(ip, port)] = PipeLink(self.engine, self.slot, (ip, port),
                                                self.srtp_suite if self.enable_srtp else None, remote_key)
            self.engine.transports_by_slot[self.slot] = link
        else:
            link.admit(self, remote_key)
            # give back the slot made for us and use the link's
            self.engine.forwarder.remove_transport(self.slot)
            self.engine.transports_by_slot.pop(self.slot, None)
            self.slot = link.slot
            self.tuple = (ip, port)
            self.remote_key = remote_key
            self.connected = True
            result = {"tuple": self._local_tuple(self.tuple)}
        link.users.add(self)
        self.link = link
        return result

    def get_stats(self) -> list[dict]:
        """A plain transport's stats (the link's counters, shared by its pipes), and whether it is SRTP."""
        [stats] = super().get_stats()
        return [{**stats, "srtpCryptoSuite": self.srtp_suite if self.enable_srtp else None,
                 "linkPipes": len(self.link.users) if self.link is not None else 0}]

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
