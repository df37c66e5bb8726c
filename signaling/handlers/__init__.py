"""One module per group of requests: room, transport, media, presence (chat, mute, hand)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from signaling.errors import RequestError

if TYPE_CHECKING:
    from signaling.peer import Peer
    from signaling.server import Connection


def joined(connection: Connection) -> Peer:
    """The caller's peer; requests other than join need one."""
    if connection.peer is None:
        raise RequestError("invalid_state", "join a room first")
    return connection.peer
