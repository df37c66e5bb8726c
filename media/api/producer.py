"""A media source on a transport, seen from the main process (mediasoup's Producer).

The worker holds the producer's streams and forwards its RTP; this object
holds what the API needs (the validated RtpParameters, the ORTC mapping, the
consumable parameters every consumer is cut from) and the consumers of it on
any transport of the router, so that closing or pausing it reaches them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from media.api.errors import worker_request
from media.api.owned import TransportOwned

if TYPE_CHECKING:
    from media.api.consumer import Consumer
    from media.api.transport import Transport
    from media.ortc import RtpMapping, RtpParameters


class Producer(TransportOwned):
    """Events: `transportclose` (its transport closed); private `@close` (closed by the application)."""

    WORKER_NAME = "producer"
    DISPLAY_NAME = "producer"

    def __init__(
        self,
        transport: Transport,
        producer_id: str,
        kind: str,
        rtp_parameters: RtpParameters,
        producer_type: str,
        consumable_rtp_parameters: RtpParameters,
        rtp_mapping: RtpMapping,
        paused: bool,
        app_data: dict[str, Any],
    ):
        super().__init__(transport, producer_id)
        self.kind = kind
        self.rtp_parameters = rtp_parameters
        self.type = producer_type
        self.consumable_rtp_parameters = consumable_rtp_parameters
        self.rtp_mapping = rtp_mapping
        self.paused = paused
        self.app_data = app_data
        self.consumers: dict[str, Consumer] = {}

    async def pause(self) -> None:
        """Stop forwarding; every consumer hears `producerpause`."""
        self._check_open()
        await worker_request(self.transport.worker, "producer.pause", {"producerId": self.id})
        self._set_paused(True)

    async def resume(self) -> None:
        """Forward again; every consumer hears `producerresume`."""
        self._check_open()
        await worker_request(self.transport.worker, "producer.resume", {"producerId": self.id})
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if self.closed or self.paused == paused:
            return
        self.paused = paused
        for consumer in list(self.consumers.values()):
            consumer.producer_paused_changed(paused)

    def _close_here(self) -> None:
        self.closed = True
        router = self.transport.router
        self.transport.producers.pop(self.id, None)
        router.producers.pop(self.id, None)
        consumers = list(self.consumers.values())
        self.consumers.clear()
        # When the whole router goes, each consumer hears it from its own transport instead.
        if not router.closed:
            for consumer in consumers:
                consumer.producer_closed()
