"""What a Room reports: peers, remote producers, tracks, publications and chat messages.

The wire shapes are PROTOCOL.md's (`peer`, `producerInfo`, `message`); these dataclasses give them
Python names and types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack


@dataclass
class Peer:
    """Someone in the room (PROTOCOL.md `peer`)."""

    peer_id: str
    user_id: str
    display_name: str
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Peer:
        return cls(peer_id=data["peerId"], user_id=data.get("userId", ""),
                   display_name=data.get("displayName", ""), audio_muted=bool(data.get("audioMuted")),
                   video_muted=bool(data.get("videoMuted")), hand_raised=bool(data.get("handRaised")))


@dataclass
class ProducerInfo:
    """A remote peer's producer that can be subscribed to (PROTOCOL.md `producerInfo`)."""

    producer_id: str
    peer_id: str
    kind: str
    app_data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ProducerInfo:
        return cls(producer_id=data["producerId"], peer_id=data["peerId"], kind=data["kind"],
                   app_data=dict(data.get("appData") or {}))


@dataclass
class RemoteTrack:
    """A subscription: the decoded aiortc track of a remote producer, and whose it is."""

    track: MediaStreamTrack
    peer: Peer
    kind: str
    producer_id: str
    consumer_id: str
    layer: int | None = None


@dataclass
class ChatMessage:
    """A chat message of the room (PROTOCOL.md `message`); `ts` is ISO 8601 UTC."""

    id: str
    peer_id: str
    user_id: str
    display_name: str
    text: str
    ts: str

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatMessage:
        return cls(id=data.get("id", ""), peer_id=data.get("peerId", ""), user_id=data.get("userId", ""),
                   display_name=data.get("displayName", ""), text=data.get("text", ""), ts=data.get("ts", ""))
