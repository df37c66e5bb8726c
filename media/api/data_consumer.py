"""One receiver's copy of a data producer, seen from the main process (mediasoup's DataConsumer).

Its `sctp_stream_parameters` name the stream the server sends on (chosen by the
server) with the data producer's reliability: the client opens a negotiated
DataChannel with exactly these (mediasoup-client's `transport.consumeData()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyee.asyncio import AsyncIOEventEmitter

from media.api.errors import InvalidStateError, close_request, log_listener_error, worker_request

if TYPE_CHECKING:
    from media.api.data_producer import DataProducer
    from media.api.transport import Transport


class DataConsumer(AsyncIOEventEmitter):
    """Events: `transportclose`, `dataproducerclose`; private `@close` (closed by the application)."""

    def __init__(self, transport: Transport, data_producer: DataProducer, data_consumer_id: str,
                 sctp_stream_parameters: dict[str, Any], app_data: dict[str, Any]):
        super().__init__()
        self.on("error", log_listener_error)
        self.transport = transport
        self.data_producer = data_producer
        self.id = data_consumer_id
        self.data_producer_id = data_producer.id
        self.type = "sctp"
        self.sctp_stream_parameters = sctp_stream_parameters
        self.label = data_producer.label
        self.protocol = data_producer.protocol
        self.app_data = app_data
        self.closed = False

    async def get_stats(self) -> list[dict[str, Any]]:
        """Messages and bytes sent, the stream's unsent bytes, and the messages dropped (by reason)."""
        if self.closed:
            raise InvalidStateError(f"data consumer {self.id} is closed")
        data = await worker_request(self.transport.worker, "dataConsumer.getStats", {"dataConsumerId": self.id})
        return data.get("stats", [])

    async def close(self) -> None:
        """Close the data consumer and tell the worker."""
        if self.closed:
            return
        self._close_here()
        self.emit("@close")
        await close_request(self.transport.worker, "dataConsumer.close", {"dataConsumerId": self.id})

    def transport_closed(self) -> None:
        """Its transport closed (the worker already knows): close without a request."""
        if self.closed:
            return
        self._close_here()
        self.emit("transportclose")

    def data_producer_closed(self) -> None:
        """Its data producer closed (the worker closes the data consumer with it): close without a request."""
        if self.closed:
            return
        self._close_here()
        self.emit("dataproducerclose")

    def _close_here(self) -> None:
        self.closed = True
        self.transport.data_consumers.pop(self.id, None)
        self.data_producer.data_consumers.pop(self.id, None)
