"""Switchyard's Python SDK: rooms with media (pymediasoup + aiortc) and the signaling client.

    from switchyard_client import Room
    room = await Room.join("http://localhost:3000", room_id, "Bot")
"""

from switchyard_client.data import DataChannel, RemoteDataChannel
from switchyard_client.media import MediaSession, wire
from switchyard_client.models import ChatMessage, Peer, ProducerInfo, RemoteTrack
from switchyard_client.room import SIMULCAST_UNSUPPORTED, Publication, Room
from switchyard_client.signaling import ApiError, SignalingError, SwitchyardClient

__version__ = "0.1.0"

__all__ = [
    "SIMULCAST_UNSUPPORTED", "ApiError", "ChatMessage", "DataChannel", "MediaSession", "Peer", "ProducerInfo", "Publication",
    "RemoteDataChannel", "RemoteTrack", "Room", "SignalingError", "SwitchyardClient", "wire",
]
