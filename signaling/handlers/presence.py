"""`chat`, `audio-mute`, `video-mute`, `raise-hand`: room-wide presence, sent to every other peer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.schemas import ChatMessageOut
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
    message = ChatMessageOut.of(record).model_dump(mode="json", by_alias=True)
    await server.to_others(peer, "chat", message)
    return {"message": message}


async def audio_mute(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Mute, payload)
    peer = joined(connection)
    peer.audio_muted = request.muted
    await server.to_others(peer, "audio-mute", {"peerId": peer.peer_id, "muted": request.muted})
    return {}


async def video_mute(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Mute, payload)
    peer = joined(connection)
    peer.video_muted = request.muted
    await server.to_others(peer, "video-mute", {"peerId": peer.peer_id, "muted": request.muted})
    return {}


async def raise_hand(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(RaiseHand, payload)
    peer = joined(connection)
    peer.hand_raised = request.raised
    await server.to_others(peer, "raised-hand", {"peerId": peer.peer_id, "raised": request.raised})
    return {}


HANDLERS = {"chat": chat, "audio-mute": audio_mute, "video-mute": video_mute, "raise-hand": raise_hand}
