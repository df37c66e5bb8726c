"""What the REST layer asks of the live rooms (the signaling layer): the integration point.

`Runtime.rooms_live` holds an object with these two methods. Until signaling provides its own,
`NoLiveRooms` stands in: every room has 0 participants and closing a room has nobody to tell.
The signaling layer sets `runtime.rooms_live` to its room registry before the app serves; with
Redis it answers for rooms hosted on every node (counts from the registry, closes by a pub/sub
message to the hosting node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class RoomsLive(Protocol):
    async def participant_counts(self, room_ids: Sequence[str]) -> Mapping[str, int]:
        """Peers in each room now; a room with nobody in it may be left out (it counts 0)."""

    async def close_room(self, room_id: str) -> None:
        """The room was deleted: send every peer in it `room-closed` ({roomId}), then disconnect
        them and free the room's media. Called after the database marks the room deleted."""


class NoLiveRooms:
    """No signaling yet: rooms are always empty, and closing one does nothing."""

    async def participant_counts(self, room_ids: Sequence[str]) -> Mapping[str, int]:
        return {}

    async def close_room(self, room_id: str) -> None:
        return None
