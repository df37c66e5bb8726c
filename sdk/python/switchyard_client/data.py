"""DataChannels of a Room: the ones it publishes (DataChannel) and the others' it receives (RemoteDataChannel).

Messages travel over SCTP (RFC 8831) through the server's worker; text stays text and binary stays
binary (PROTOCOL.md section 4). Each channel is negotiated out of band (RFC 8831 section 6.5).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymediasoup.data_producer import DataProducer

    from switchyard_client.models import Peer
    from switchyard_client.room import Room

# how long publishing or receiving a channel waits for its SCTP stream to open
OPEN_TIMEOUT = 10.0


async def wait_open(channel: Any, timeout: float = OPEN_TIMEOUT) -> None:
    """Until a pymediasoup DataProducer's or DataConsumer's channel is open (the association is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while channel.readyState != "open":
        if channel.readyState == "closed" or loop.time() > deadline:
            raise TimeoutError(f"data channel {channel.label!r} is {channel.readyState}, not open")
        await asyncio.sleep(0.02)


class DataChannel:
    """A channel this Room publishes (a data producer); a reconnection opens it again with a new `id`."""

    def __init__(self, room: Room, label: str, ordered: bool, max_retransmits: int | None,
                 max_packet_life_time: int | None, protocol: str, app_data: dict[str, Any]):
        self.room = room
        self.label = label
        self.ordered = ordered
        self.max_retransmits = max_retransmits
        self.max_packet_life_time = max_packet_life_time
        self.protocol = protocol
        self.app_data = app_data
        self.producer: DataProducer | None = None
        self.closed = False

    @property
    def id(self) -> str:
        """The server's data producer id (`new-data-producer` at the others)."""
        assert self.producer is not None, "not published"
        return self.producer.id

    def send(self, message: str | bytes) -> None:
        """Send one message to every peer receiving this channel (at most 262,144 bytes).

        Raises aiortc's InvalidStateError while the channel is not open (closed, or reconnecting).
        """
        if self.closed or self.producer is None:
            raise ConnectionError(f"data channel {self.label!r} is closed")
        self.producer.send(message)

    async def close(self) -> None:
        """closeDataProducer: the others get `data-producer-closed` (the Room's `data-channel-closed`)."""
        await self.room.unpublish_data(self)


@dataclass
class RemoteDataChannel:
    """Another peer's data producer that this Room receives."""

    peer: Peer
    label: str
    protocol: str
    data_producer_id: str
    data_consumer_id: str
    app_data: dict[str, Any]
