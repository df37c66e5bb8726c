"""A participant of a room: its socket, presence state, and the engine objects it owns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.models import User
    from media.api.consumer import Consumer
    from media.api.data_consumer import DataConsumer
    from media.api.data_producer import DataProducer
    from media.api.producer import Producer
    from media.api.router import Router
    from media.api.transport import Transport
    from signaling.room import Room

# Per-peer caps (the contract's limit_exceeded): enough for camera, microphone and screen share
# both ways, and for a 25-tile grid with room to spare.
MAX_TRANSPORTS = 4
MAX_PRODUCERS = 8
MAX_CONSUMERS = 200
# DataChannels: a few channels sent (reactions, a whiteboard, captions), and one per channel of others
MAX_DATA_PRODUCERS = 8
MAX_DATA_CONSUMERS = 200


@dataclass(eq=False)
class Peer:
    sid: str
    user: User
    display_name: str
    room: Room
    peer_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False
    session_id: str | None = None
    transports: dict[str, Transport] = field(default_factory=dict)
    producers: dict[str, Producer] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    data_producers: dict[str, DataProducer] = field(default_factory=dict)
    data_consumers: dict[str, DataConsumer] = field(default_factory=dict)
    # producer id -> the spatial layers last announced in producer-layers-needed
    layers_needed: dict[str, list[int]] = field(default_factory=dict)
    # the router of the room its transports are on (signaling.placement); None: the room's first
    router: Router | None = None

    def info(self) -> dict[str, Any]:
        """The contract's `peer` shape."""
        return {
            "peerId": self.peer_id,
            "userId": self.user.id,
            "displayName": self.display_name,
            "audioMuted": self.audio_muted,
            "videoMuted": self.video_muted,
            "handRaised": self.hand_raised,
        }
