"""`join` and `leave`: entering a room (opening its router on first use) and leaving it cleanly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.log import get_logger
from signaling.errors import RequestError, not_found
from signaling.peer import Peer
from signaling.placement import active_speaker
from signaling.room import data_producer_info, producer_info
from signaling.schemas import Empty, Join, parse

if TYPE_CHECKING:
    from signaling.server import Connection, SignalingServer

log = get_logger("signaling.room")


async def join(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Join, payload)
    if connection.peer is not None:
        await leave_room(server, connection)
    record = await server.store.room(request.roomId)
    if record is None:
        raise not_found("room")
    for _ in range(3):  # the room may close (its last peer leaving) while this peer's router is chosen
        live = await server.registry.open(record)
        if live.is_full():
            await server.registry.release_if_empty(live)
            raise RequestError("room_full", f"the room has reached its {live.max_participants} participants")
        router = await server.registry.placement.router_for_new_peer(live)
        if server.registry.rooms.get(live.id) is live and not router.closed:
            break
    else:
        raise RequestError("internal_error", "the room closed while joining it: join again")
    peer = Peer(connection.sid, connection.user, request.displayName or connection.user.display_name, live,
                router=router)
    live.peers[peer.peer_id] = peer
    connection.peer = peer
    server.registry.peers_changed()
    for each in live.routers:
        if each.id not in live.observed:
            each.on("activespeaker", _active_speaker_listener(server, live, each))
            live.observed.add(each.id)
    session = await server.store.session_started(room_id=live.id, user_id=connection.user.id, peer_id=peer.peer_id)
    peer.session_id = session.id
    await server.sio.enter_room(connection.sid, live.id)
    await server.to_others(peer, "user-joined", peer.info())
    others = live.others(peer)
    # the room's peers and producers on other nodes too (signaling/cascade.py)
    remote = server.cascade
    return {
        "peerId": peer.peer_id,
        "roomId": live.id,
        "routerRtpCapabilities": live.router.rtp_capabilities,
        "peers": [p.info() for p in others] + (remote.remote_peers(live.id) if remote else []),
        "producers": [producer_info(producer, p) for p in others for producer in p.producers.values()]
        + (remote.remote_producers(live.id) if remote else []),
        "dataProducers": [data_producer_info(producer, p) for p in others
                          for producer in p.data_producers.values()]
        + (remote.remote_data_producers(live.id) if remote else []),
    }


def _active_speaker_listener(server: SignalingServer, live, router):
    """One router's choice; the room's (the loudest of its routers') goes to every peer when it changes."""
    def on_active_speaker(data: dict) -> None:
        if not active_speaker(live, router.id, data.get("producerId"), data.get("volume")):
            return
        producer_id = live.speaker
        owner = live.producer_owner(producer_id) if producer_id else None
        owner_id = owner.peer_id if owner else None
        if owner_id is None and producer_id and server.cascade is not None:  # piped from another node
            owner_id = server.cascade.remote_owner(live.id, producer_id)
        event = ({"peerId": owner_id, "volume": live.speaker_volume} if owner_id
                 else {"peerId": None, "volume": None})
        # each node's routers observe the audio they carry and tell this node's peers
        server.emit_later("active-speaker", event, room=live.id, ignore_queue=True)
    return on_active_speaker


async def leave(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    parse(Empty, payload)
    await leave_room(server, connection)
    return {}


async def leave_room(server: SignalingServer, connection: Connection) -> None:
    """Close everything the peer owns, tell the others, free an empty room."""
    peer = connection.peer
    if peer is None:
        return
    await drop_peer(server, connection, notify=True)
    await server.registry.release_if_empty(peer.room)


async def drop_peer(server: SignalingServer, connection: Connection, notify: bool) -> None:
    peer = connection.peer
    if peer is None:
        return
    connection.peer = None
    live = peer.room
    live.peers.pop(peer.peer_id, None)
    # the chat limit is per peer id, and a peer id is never used again after its peer leaves
    server.chat_limits.forget(peer.peer_id)
    server.registry.peers_changed()
    if notify:
        for producer_id in list(peer.producers):
            await server.to_others(peer, "producer-closed", {"producerId": producer_id, "peerId": peer.peer_id})
        for data_producer_id in list(peer.data_producers):
            await server.to_others(peer, "data-producer-closed",
                                   {"dataProducerId": data_producer_id, "peerId": peer.peer_id})
    for transport in list(peer.transports.values()):
        await transport.close()
    peer.transports.clear()
    peer.producers.clear()
    peer.consumers.clear()
    peer.data_producers.clear()
    peer.data_consumers.clear()
    await server.sio.leave_room(connection.sid, live.id)
    if notify:
        if server.cascade is not None:
            await server.cascade.peer_left(live.id, peer.peer_id)
        await server.sio.emit("user-left", {"peerId": peer.peer_id}, room=live.id)
    if peer.session_id is not None:
        try:
            await server.store.session_ended(peer.session_id)
        except Exception:  # the session row is a record; losing it must not keep the peer in
            log.exception("could not record the end of session %s", peer.session_id)


HANDLERS = {"join": join, "leave": leave}
