"""A live room: the database room, its router on one worker, and the peers in it."""

from __future__ import annotations

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
    router: Router
    peers: dict[str, Peer] = field(default_factory=dict)
    observed: bool = False  # the router's active-speaker events are relayed

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
