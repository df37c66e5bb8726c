"""`createWebRtcTransport`, `connectWebRtcTransport`, `restartIce`, `setMaxIncomingBitrate`: the peer's own transports only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling.errors import limit_exceeded, not_found
from signaling.handlers import joined
from signaling.peer import MAX_TRANSPORTS
from signaling.schemas import (
    ConnectWebRtcTransport,
    CreateWebRtcTransport,
    SetMaxIncomingBitrate,
    TransportRef,
    parse,
)

if TYPE_CHECKING:
    from media.api.webrtc_transport import WebRtcTransport
    from signaling.peer import Peer
    from signaling.server import Connection, SignalingServer


def own_transport(peer: Peer, transport_id: str) -> WebRtcTransport:
    transport = peer.transports.get(transport_id)
    if transport is None:
        raise not_found("transport")
    return transport


async def create_webrtc_transport(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(CreateWebRtcTransport, payload)
    peer = joined(connection)
    if len(peer.transports) >= MAX_TRANSPORTS:
        raise limit_exceeded(f"at most {MAX_TRANSPORTS} transports per peer")
    # forceTcp: only the TCP candidate, for networks that block UDP (as mediasoup's demo does)
    transport = await peer.room.router.create_webrtc_transport(
        enable_udp=not request.forceTcp, enable_tcp=True,
        app_data={"direction": request.direction, "peerId": peer.peer_id},
        # sctpCapabilities given: DataChannels, with mediasoup's stream counts and message size
        enable_sctp=request.sctpCapabilities is not None)
    peer.transports[transport.id] = transport
    transport.on("routerclose", lambda: peer.transports.pop(transport.id, None))
    if request.maxIncomingBitrate is not None:
        await transport.set_max_incoming_bitrate(request.maxIncomingBitrate)
    return {
        "id": transport.id,
        "iceParameters": transport.ice_parameters,
        "iceCandidates": transport.ice_candidates,
        "dtlsParameters": transport.dtls_parameters,
        **({"sctpParameters": transport.sctp_parameters} if transport.sctp_parameters else {}),
        # TURN relays for networks that block UDP or every port but 443, when the server has TURN
        **({"iceServers": server.ice_servers(peer)} if server.ice_servers is not None else {}),
    }


async def connect_webrtc_transport(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(ConnectWebRtcTransport, payload)
    await own_transport(joined(connection), request.transportId).connect(request.dtlsParameters)
    return {}


async def restart_ice(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(TransportRef, payload)
    parameters = await own_transport(joined(connection), request.transportId).restart_ice()
    return {"iceParameters": parameters}


async def set_max_incoming_bitrate(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(SetMaxIncomingBitrate, payload)
    await own_transport(joined(connection), request.transportId).set_max_incoming_bitrate(request.bitrate)
    return {}


HANDLERS = {
    "createWebRtcTransport": create_webrtc_transport,
    "connectWebRtcTransport": connect_webrtc_transport,
    "restartIce": restart_ice,
    "setMaxIncomingBitrate": set_max_incoming_bitrate,
}
