"""A data source on a transport, seen from the main process (mediasoup's DataProducer).

The worker receives the messages on the data producer's SCTP stream and sends
them to every data consumer; this object holds the stream parameters, the
label and protocol, and the data consumers of it on any transport of the
router, so that closing it closes them all (they hear `dataproducerclose`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyee.asyncio import AsyncIOEventEmitter

from media.api.errors import InvalidStateError, close_request, log_listener_error, worker_request

if TYPE_CHECKING:
    from media.api.data_consumer import DataConsumer
    from media.api.transport import Transport


class DataProducer(AsyncIOEventEmitter):
    """Events: `transportclose` (its transport closed); private `@close` (closed by the application)."""

    def __init__(self, transport: Transport, data_producer_id: str, sctp_stream_parameters: dict[str, Any],
                 label: str, protocol: str, app_data: dict[str, Any]):
        super().__init__()
        self.on("error", log_listener_error)
        self.transport = transport
        self.id = data_producer_id
        self.type = "sctp"
        self.sctp_stream_parameters = sctp_stream_parameters
        self.label = label
        self.protocol = protocol
        self.app_data = app_data
        self.closed = False
        self.data_consumers: dict[str, DataConsumer] = {}

    async def get_stats(self) -> list[dict[str, Any]]:
        """Messages and bytes received, and the messages dropped (by reason)."""
        if self.closed:
            raise InvalidStateError(f"data producer {self.id} is closed")
        data = await worker_request(self.transport.worker, "dataProducer.getStats", {"dataProducerId": self.id})
        return data.get("stats", [])

    async def close(self) -> None:
        """Close the data producer and every data consumer of it; the worker is told once."""
        if self.closed:
            return
        self._close_here()
        self.emit("@close")
        await close_request(self.transport.worker, "dataProducer.close", {"dataProducerId": self.id})

    def transport_closed(self) -> None:
        """Its transport closed (the worker already knows): close without a request."""
        if self.closed:
            return
        self._close_here()
        self.emit("transportclose")

    def _close_here(self) -> None:
        self.closed = True
        router = self.transport.router
        self.transport.data_producers.pop(self.id, None)
        router.data_producers.pop(self.id, None)
        consumers = list(self.data_consumers.values())
        self.data_consumers.clear()
        # When the whole router goes, each data consumer hears it from its own transport instead.
        if not router.closed:
            for consumer in consumers:
                consumer.data_producer_closed()
