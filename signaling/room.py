"""A live room: the database room, its routers (one per worker it spreads to), and the peers in it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from media.api.data_producer import DataProducer
    from media.api.producer import Producer
    from media.api.router import Router
    from signaling.peer import Peer


def producer_info(producer: Producer, peer: Peer) -> dict[str, Any]:
    """The contract's `producerInfo` shape."""
    return {"producerId": producer.id, "peerId": peer.peer_id, "kind": producer.kind,
            "appData": producer.app_data}


def data_producer_info(producer: DataProducer, peer: Peer) -> dict[str, Any]:
    """The contract's `dataProducerInfo` shape."""
    return {"dataProducerId": producer.id, "peerId": peer.peer_id, "label": producer.label,
            "protocol": producer.protocol, "appData": producer.app_data}


@dataclass(eq=False)
class Room:
    id: str
    name: str
    max_participants: int | None
    router: Router  # the first of `routers`: where the room opened (and recordings run)
    peers: dict[str, Peer] = field(default_factory=dict)
    # every router of the room, one per worker it uses (signaling.placement spreads it)
    routers: list[Router] = field(default_factory=list)
    observed: set[str] = field(default_factory=set)  # routers whose active-speaker events are relayed
    # each router's loudest producer (id, dBov), and the room's: the loudest of those
    speakers: dict[str, tuple[str, float]] = field(default_factory=dict)
    speaker: str | None = None
    speaker_volume: float | None = None
    placing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one placement decision at a time

    def __post_init__(self) -> None:
        if not self.routers:
            self.routers = [self.router]

    def others(self, peer: Peer) -> list[Peer]:
        return [p for p in self.peers.values() if p is not peer]

    def producer_owner(self, producer_id: str) -> Peer | None:
        for peer in self.peers.values():
            if producer_id in peer.producers:
                return peer
        return None

    def data_producer_owner(self, data_producer_id: str) -> Peer | None:
        for peer in self.peers.values():
            if data_producer_id in peer.data_producers:
                return peer
        return None

    def is_full(self) -> bool:
        return self.max_participants is not None and len(self.peers) >= self.max_participants
