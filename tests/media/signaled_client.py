"""A participant as a real app is built: the SDK's signaling client and its MediaSession (pymediasoup +
aiortc), driven request by request, for tests that look at each step (a Room does them all itself)."""

from __future__ import annotations

from pymediasoup import AiortcHandler, Device
from switchyard_client import MediaSession, SwitchyardClient
from switchyard_client.media import load_device


class Participant:
    def __init__(self, sdk: SwitchyardClient, tracks: list | None = None):
        self.sdk = sdk
        self.device = Device(handlerFactory=AiortcHandler.createFactory(tracks=tracks or []))
        self.media = MediaSession(sdk, self.device)
        self.joined: dict = {}

    @property
    def send_transport(self):
        return self.media.send_transport

    @property
    def recv_transport(self):
        return self.media.recv_transport

    async def join(self, room_id: str) -> dict:
        self.joined = await self.sdk.join(room_id)
        await load_device(self.device, self.joined["routerRtpCapabilities"])
        return self.joined

    async def produce(self, track):
        return await self.media.produce(track)

    async def consume(self, producer_id: str):
        """consume (paused) -> local consumer -> resumeConsumer, as mediasoup-client apps do."""
        return await self.media.consume(producer_id)

    async def close(self) -> None:
        await self.media.close()
        await self.sdk.close()
