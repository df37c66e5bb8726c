"""A participant as a real app is built: the Switchyard SDK for signaling, pymediasoup + aiortc for media."""

from __future__ import annotations

import copy

from pymediasoup import AiortcHandler, Device
from pymediasoup.rtp_parameters import RtpCapabilities
from switchyard_client import SwitchyardClient

from tests.media.client import wire


class Participant:
    def __init__(self, sdk: SwitchyardClient, tracks: list | None = None):
        self.sdk = sdk
        self.device = Device(handlerFactory=AiortcHandler.createFactory(tracks=tracks or []))
        self.send_transport = None
        self.recv_transport = None
        self.joined: dict = {}

    async def join(self, room_id: str) -> dict:
        self.joined = await self.sdk.join(room_id)
        if not self.device.loaded:
            caps = RtpCapabilities.model_validate(copy.deepcopy(self.joined["routerRtpCapabilities"]))
            await self.device.load(caps)
        return self.joined

    async def _transport(self, direction: str):
        info = await self.sdk.create_webrtc_transport(direction)
        create = self.device.createSendTransport if direction == "send" else self.device.createRecvTransport
        transport = create(id=info["id"], iceParameters=info["iceParameters"], iceCandidates=info["iceCandidates"],
                           dtlsParameters=info["dtlsParameters"], sctpParameters=None)

        @transport.on("connect")
        async def on_connect(dtlsParameters):
            await self.sdk.connect_webrtc_transport(info["id"], wire(dtlsParameters))

        if direction == "send":
            @transport.on("produce")
            async def on_produce(kind, rtpParameters, appData):
                return await self.sdk.produce(info["id"], kind, wire(rtpParameters), appData)

        return transport

    async def produce(self, track):
        if self.send_transport is None:
            self.send_transport = await self._transport("send")
        return await self.send_transport.produce(track=track, stopTracks=False)

    async def consume(self, producer_id: str):
        """consume (paused) -> local consumer -> resumeConsumer, as mediasoup-client apps do."""
        if self.recv_transport is None:
            self.recv_transport = await self._transport("recv")
        answer = await self.sdk.consume(self.recv_transport.id, producer_id, wire(self.device.rtpCapabilities))
        consumer = await self.recv_transport.consume(id=answer["id"], producerId=producer_id, kind=answer["kind"],
                                                     rtpParameters=answer["rtpParameters"])
        await self.sdk.resume_consumer(answer["id"])
        return consumer, answer

    async def close(self) -> None:
        for transport in (self.send_transport, self.recv_transport):
            if transport is not None:
                await transport.close()
        await self.sdk.close()
