"""A data source on a transport, seen from the main process (mediasoup's DataProducer).

The worker receives the messages on the data producer's SCTP stream and sends
them to every data consumer; this object holds the stream parameters, the
label and protocol, and the data consumers of it on any transport of the
router, so that closing it closes them all (they hear `dataproducerclose`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from media.api.owned import TransportOwned

if TYPE_CHECKING:
    from media.api.data_consumer import DataConsumer
    from media.api.transport import Transport


class DataProducer(TransportOwned):
    """Events: `transportclose` (its transport closed); private `@close` (closed by the application)."""

    WORKER_NAME = "dataProducer"
    DISPLAY_NAME = "data producer"

    def __init__(self, transport: Transport, data_producer_id: str, sctp_stream_parameters: dict[str, Any],
                 label: str, protocol: str, app_data: dict[str, Any]):
        super().__init__(transport, data_producer_id)
        self.type = "sctp"
        self.sctp_stream_parameters = sctp_stream_parameters
        self.label = label
        self.protocol = protocol
        self.app_data = app_data
        self.data_consumers: dict[str, DataConsumer] = {}

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
