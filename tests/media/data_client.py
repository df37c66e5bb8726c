"""A participant with DataChannels, as a mediasoup-client app builds one: pymediasoup's produceData/consumeData
over transports created with sctpCapabilities, signalled through the SDK's client."""

from __future__ import annotations

import asyncio

from pymediasoup import AiortcHandler, Device
from pymediasoup.sctp_parameters import SctpParameters, SctpStreamParameters
from switchyard_client import SwitchyardClient, wire
from switchyard_client.media import load_device


class DataParticipant:
    """Transports are created with the device's sctpCapabilities; `relay` routes the receive side through a UDP relay."""

    def __init__(self, sdk: SwitchyardClient, relay: tuple | None = None):
        self.sdk = sdk
        self.relay = relay
        self.device = Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))
        self.send_transport = None
        self.recv_transport = None
        self.transport_info: dict[str, dict] = {}
        self.joined: dict = {}

    async def join(self, room_id: str) -> dict:
        self.joined = await self.sdk.join(room_id)
        await load_device(self.device, self.joined["routerRtpCapabilities"])
        return self.joined

    async def _transport(self, direction: str):
        info = await self.sdk.create_webrtc_transport(
            direction, sctp_capabilities=wire(self.device.sctpCapabilities))
        self.transport_info[direction] = info
        candidates = [c for c in info["iceCandidates"] if c["protocol"] == "udp"]
        if self.relay is not None and direction == "recv":
            candidates = [{**c, "ip": self.relay[0], "address": self.relay[0], "port": self.relay[1]}
                          for c in candidates]
        create = self.device.createSendTransport if direction == "send" else self.device.createRecvTransport
        transport = create(id=info["id"], iceParameters=info["iceParameters"], iceCandidates=candidates,
                           dtlsParameters=info["dtlsParameters"],
                           sctpParameters=SctpParameters.model_validate(info["sctpParameters"]))

        @transport.on("connect")
        async def on_connect(dtlsParameters):
            await self.sdk.connect_webrtc_transport(info["id"], wire(dtlsParameters))

        @transport.on("producedata")
        async def on_produce_data(sctpStreamParameters, label, protocol, appData):
            return await self.sdk.produce_data(info["id"], wire(sctpStreamParameters), label or "",
                                               protocol or "", appData)

        return transport

    async def produce_data(self, **options):
        if self.send_transport is None:
            self.send_transport = await self._transport("send")
        return await self.send_transport.produceData(**options)

    async def consume_data(self, data_producer_id: str):
        """consumeData at the server (it picks the stream), then the negotiated channel here."""
        if self.recv_transport is None:
            self.recv_transport = await self._transport("recv")
        answer = await self.sdk.consume_data(data_producer_id, self.recv_transport.id)
        consumer = await self.recv_transport.consumeData(
            id=answer["id"], dataProducerId=answer["dataProducerId"],
            sctpStreamParameters=SctpStreamParameters.model_validate(answer["sctpStreamParameters"]),
            label=answer["label"], protocol=answer["protocol"], appData=answer["appData"])
        return consumer, answer

    async def close(self) -> None:
        for transport in (self.send_transport, self.recv_transport):
            if transport is not None and not transport.closed:
                await transport.close()
        await self.sdk.close()


async def wait_open(channel_owner, timeout: float = 10.0) -> None:
    """Until a DataProducer's or DataConsumer's channel is open (the SCTP association is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while channel_owner.readyState != "open":
        if loop.time() > deadline:
            raise TimeoutError(f"channel still {channel_owner.readyState}")
        await asyncio.sleep(0.02)
