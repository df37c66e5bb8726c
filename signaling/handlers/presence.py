"""`chat`, `audio-mute`, `video-mute`, `raise-hand`: room-wide presence, sent to every other peer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling.errors import limit_exceeded
from signaling.handlers import joined
from signaling.schemas import Chat, Mute, RaiseHand, parse

if TYPE_CHECKING:
    from signaling.server import Connection, SignalingServer


async def chat(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Chat, payload)
    peer = joined(connection)
    if not server.chat_limits.allow(peer.peer_id):
        raise limit_exceeded("at most 10 chat messages a second")
    record = await server.store.add_chat_message(room_id=peer.room.id, user_id=peer.user.id,
                                                 peer_id=peer.peer_id, display_name=peer.display_name,
                                                 text=request.text)
    message = server.message_shape(record)
    await server.to_others(peer, "chat", message)
    return {"message": message}


def mute_handler(kind: str):
    """`audio-mute` / `video-mute`: the peer's state, then the same event to every other peer."""
    event = f"{kind}-mute"

    async def mute(server: SignalingServer, connection: Connection, payload: Any) -> dict:
        request = parse(Mute, payload)
        peer = joined(connection)
        setattr(peer, f"{kind}_muted", request.muted)
        await server.to_others(peer, event, {"peerId": peer.peer_id, "muted": request.muted})
        return {}

    return mute


async def raise_hand(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(RaiseHand, payload)
    peer = joined(connection)
    peer.hand_raised = request.raised
    await server.to_others(peer, "raised-hand", {"peerId": peer.peer_id, "raised": request.raised})
    return {}


HANDLERS = {"chat": chat, "audio-mute": mute_handler("audio"), "video-mute": mute_handler("video"),
            "raise-hand": raise_hand}
