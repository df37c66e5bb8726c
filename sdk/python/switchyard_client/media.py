"""The media half of a connection: pymediasoup's Device and transports over aiortc, signaled here.

mediasoup-client's flow, as the web app runs it (PROTOCOL.md section 3): `createWebRtcTransport`
for each direction, the transport's `connect` event answered with `connectWebRtcTransport`, its
`produce` event with `produce`; and to receive, `consume` (paused), the local consumer, then
`resumeConsumer` once it is ready. Every transport is created with the device's `sctpCapabilities`
so it can carry DataChannels (PROTOCOL.md section 4): `produceData` names a negotiated stream the
client opened, `consumeData` answers the stream the server chose (RFC 8831 section 6.5).
When the server has TURN, its answer's `iceServers` (credentials minted for this peer) go to aiortc's
RTCConfiguration, which gathers a relayed candidate over UDP, TCP or TLS (`turns:`) from the first.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from aiortc import RTCIceServer
from pymediasoup import AiortcHandler, Device
from pymediasoup.rtp_parameters import RtpCapabilities
from pymediasoup.sctp_parameters import SctpParameters, SctpStreamParameters

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack
    from pymediasoup.consumer import Consumer
    from pymediasoup.data_consumer import DataConsumer
    from pymediasoup.data_producer import DataProducer
    from pymediasoup.producer import Producer
    from pymediasoup.transport import Transport

    from switchyard_client.signaling import SwitchyardClient


def wire(value: Any) -> Any:
    """pymediasoup's pydantic models -> plain dicts, as they travel as JSON."""
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def ice_servers(answer: dict[str, Any]) -> list[RTCIceServer] | None:
    """The answer's `iceServers` (W3C RTCIceServer dictionaries) as aiortc's; None without any."""
    servers = [RTCIceServer(urls=entry["urls"], username=entry.get("username"),
                            credential=entry.get("credential"))
               for entry in answer.get("iceServers") or [] if isinstance(entry, dict) and entry.get("urls")]
    return servers or None


def new_device() -> Device:
    return Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))


async def load_device(device: Device, router_rtp_capabilities: dict[str, Any]) -> None:
    """Device.load once per Room: the router's capabilities do not change between connections."""
    if not device.loaded:
        await device.load(RtpCapabilities.model_validate(copy.deepcopy(router_rtp_capabilities)))


class MediaSession:
    """One connection's send and receive transports; closing it ends every track it received."""

    def __init__(self, client: SwitchyardClient, device: Device, force_tcp: bool = False,
                 use_turn: bool = True):
        self.client = client
        self.device = device
        self.force_tcp = force_tcp
        # False: no TURN allocation even when the server hands out TURN servers
        self.use_turn = use_turn
        self.send_transport: Transport | None = None
        self.recv_transport: Transport | None = None
        # pymediasoup renegotiates one RTCPeerConnection per transport: one change at a time
        self._send_lock = asyncio.Lock()
        self._recv_lock = asyncio.Lock()

    async def _transport(self, direction: str) -> Transport:
        info = await self.client.create_webrtc_transport(
            direction, force_tcp=self.force_tcp, sctp_capabilities=wire(self.device.sctpCapabilities))
        sctp = info.get("sctpParameters")
        create = self.device.createSendTransport if direction == "send" else self.device.createRecvTransport
        transport = create(id=info["id"], iceParameters=info["iceParameters"],
                           iceCandidates=info["iceCandidates"], dtlsParameters=info["dtlsParameters"],
                           sctpParameters=SctpParameters.model_validate(sctp) if sctp else None,
                           iceServers=ice_servers(info) if self.use_turn else None)
        client = self.client

        @transport.on("connect")
        async def on_connect(dtlsParameters: Any) -> None:
            await client.connect_webrtc_transport(info["id"], wire(dtlsParameters))

        if direction == "send":
            @transport.on("produce")
            async def on_produce(kind: str, rtpParameters: Any, appData: Any) -> str:
                return await client.produce(info["id"], kind, wire(rtpParameters), appData)

            @transport.on("producedata")
            async def on_produce_data(sctpStreamParameters: Any, label: str, protocol: str, appData: Any) -> str:
                return await client.produce_data(info["id"], wire(sctpStreamParameters), label or "",
                                                 protocol or "", appData)

        return transport

    async def produce(self, track: MediaStreamTrack, app_data: dict[str, Any] | None = None) -> Producer:
        """A producer for `track` (one encoding); its `id` is the server's producer id."""
        async with self._send_lock:
            if self.send_transport is None:
                self.send_transport = await self._transport("send")
            return await self.send_transport.produce(track=track, stopTracks=False, appData=app_data or {})

    async def consume(self, producer_id: str) -> tuple[Consumer, dict[str, Any]]:
        """consume (paused) -> local consumer -> resumeConsumer; the local consumer and the ack."""
        async with self._recv_lock:
            if self.recv_transport is None:
                self.recv_transport = await self._transport("recv")
            answer = await self.client.consume(self.recv_transport.id, producer_id,
                                               wire(self.device.rtpCapabilities))
            consumer = await self.recv_transport.consume(
                id=answer["id"], producerId=producer_id, kind=answer["kind"],
                rtpParameters=answer["rtpParameters"])
        await self.client.resume_consumer(answer["id"])
        return consumer, answer

    async def produce_data(self, label: str, ordered: bool, max_retransmits: int | None,
                           max_packet_life_time: int | None, protocol: str = "",
                           app_data: dict[str, Any] | None = None) -> DataProducer:
        """A data producer on a negotiated stream of the send transport; its `id` is the server's."""
        async with self._send_lock:
            if self.send_transport is None:
                self.send_transport = await self._transport("send")
            return await self.send_transport.produceData(
                ordered=ordered, maxRetransmits=max_retransmits, maxPacketLifeTime=max_packet_life_time,
                label=label, protocol=protocol, appData=app_data or {})

    async def consume_data(self, data_producer_id: str) -> tuple[DataConsumer, dict[str, Any]]:
        """consumeData (the server picks the stream), then the negotiated channel here; no resume needed."""
        async with self._recv_lock:
            if self.recv_transport is None:
                self.recv_transport = await self._transport("recv")
            answer = await self.client.consume_data(data_producer_id, self.recv_transport.id)
            consumer = await self.recv_transport.consumeData(
                id=answer["id"], dataProducerId=answer["dataProducerId"],
                sctpStreamParameters=SctpStreamParameters.model_validate(answer["sctpStreamParameters"]),
                label=answer.get("label", ""), protocol=answer.get("protocol", ""),
                appData=answer.get("appData") or {})
        return consumer, answer

    async def close_consumer(self, consumer: Consumer) -> None:
        async with self._recv_lock:
            if not consumer.closed:
                await consumer.close()

    async def close(self) -> None:
        """Close both transports (their RTCPeerConnections): every received track ends."""
        for transport in (self.send_transport, self.recv_transport):
            if transport is not None and not transport.closed:
                await transport.close()
        self.send_transport = self.recv_transport = None
