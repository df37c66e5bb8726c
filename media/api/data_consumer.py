"""One receiver's copy of a data producer, seen from the main process (mediasoup's DataConsumer).

Its `sctp_stream_parameters` name the stream the server sends on (chosen by the
server) with the data producer's reliability: the client opens a negotiated
DataChannel with exactly these (mediasoup-client's `transport.consumeData()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from media.api.owned import TransportOwned

if TYPE_CHECKING:
    from media.api.data_producer import DataProducer
    from media.api.transport import Transport


class DataConsumer(TransportOwned):
    """Events: `transportclose`, `dataproducerclose`; private `@close` (closed by the application)."""

    WORKER_NAME = "dataConsumer"
    DISPLAY_NAME = "data consumer"

    def __init__(self, transport: Transport, data_producer: DataProducer, data_consumer_id: str,
                 sctp_stream_parameters: dict[str, Any], app_data: dict[str, Any]):
        super().__init__(transport, data_consumer_id)
        self.data_producer = data_producer
        self.data_producer_id = data_producer.id
        self.type = "sctp"
        self.sctp_stream_parameters = sctp_stream_parameters
        self.label = data_producer.label
        self.protocol = data_producer.protocol
        self.app_data = app_data

    def data_producer_closed(self) -> None:
        """Its data producer closed (the worker closes the data consumer with it): close without a request."""
        self._closed_by("dataproducerclose")

    def _close_here(self) -> None:
        self.closed = True
        self.transport.data_consumers.pop(self.id, None)
        self.data_producer.data_consumers.pop(self.id, None)
