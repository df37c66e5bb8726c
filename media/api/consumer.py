"""One receiver's copy of a producer, seen from the main process (mediasoup's Consumer).

Simulcast and SVC consumers forward one spatial layer at a time; the
application states a preference (`preferred_layers`, clamped to what the
stream has, the highest by default, as mediasoup does) and the worker reports
what it actually forwards (`current_layers`, "layerschange").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from media.api.errors import (
    InvalidInputError,
)
from media.api.owned import TransportOwned
from media.ortc import parse_scalability_mode

if TYPE_CHECKING:
    from media.api.producer import Producer
    from media.api.transport import Transport
    from media.ortc import RtpParameters

ConsumerLayers = dict[str, int | None]  # {"spatialLayer": int, "temporalLayer": int | None}


def _layer_index(value: Any, name: str) -> int:
    # bool is an int in Python but never a layer on the wire.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative integer")
    return value


def clamp_layers(
    rtp_parameters: RtpParameters, consumer_type: str, spatial_layer: Any, temporal_layer: Any = None
) -> ConsumerLayers | None:
    """Preferred layers within the consumer's stream (the highest when not given); None for a simple consumer."""
    if spatial_layer is not None:
        spatial_layer = _layer_index(spatial_layer, "spatialLayer")
    if temporal_layer is not None:
        temporal_layer = _layer_index(temporal_layer, "temporalLayer")
    if consumer_type not in ("simulcast", "svc"):
        return None
    layers = parse_scalability_mode(rtp_parameters["encodings"][0].get("scalabilityMode"))
    top_spatial = layers["spatialLayers"] - 1
    top_temporal = layers["temporalLayers"] - 1
    return {
        "spatialLayer": top_spatial if spatial_layer is None else min(spatial_layer, top_spatial),
        "temporalLayer": top_temporal if temporal_layer is None else min(temporal_layer, top_temporal),
    }


def initial_layers(rtp_parameters: RtpParameters, consumer_type: str, preferred: Any) -> ConsumerLayers | None:
    """The preferred layers a new consumer starts with, from consume()'s {spatialLayer, temporalLayer?}."""
    if preferred is None:
        return clamp_layers(rtp_parameters, consumer_type, None)
    if not isinstance(preferred, dict) or preferred.get("spatialLayer") is None:
        raise InvalidInputError("preferredLayers must be {spatialLayer, temporalLayer?}")
    return clamp_layers(
        rtp_parameters, consumer_type, preferred["spatialLayer"], preferred.get("temporalLayer")
    )


class Consumer(TransportOwned):
    """Events: `transportclose`, `producerclose`, `producerpause`, `producerresume`,
    `layerschange` (ConsumerLayers or None); private `@close` (closed by the application)."""

    WORKER_NAME = "consumer"
    DISPLAY_NAME = "consumer"

    def __init__(
        self,
        transport: Transport,
        producer: Producer,
        consumer_id: str,
        rtp_parameters: RtpParameters,
        consumer_type: str,
        paused: bool,
        preferred_layers: ConsumerLayers | None,
        app_data: dict[str, Any],
    ):
        super().__init__(transport, consumer_id)
        self.producer = producer
        self.producer_id = producer.id
        self.kind = producer.kind
        self.rtp_parameters = rtp_parameters
        self.type = consumer_type
        self.paused = paused
        self.producer_paused = producer.paused
        self.preferred_layers = preferred_layers
        self.current_layers: ConsumerLayers | None = None
        self.app_data = app_data

    async def pause(self) -> None:
        await self._worker_request("pause")
        self.paused = True

    async def resume(self) -> None:
        await self._worker_request("resume")
        self.paused = False

    async def set_preferred_layers(self, spatial_layer: int, temporal_layer: int | None = None) -> None:
        """Ask for a spatial (and temporal) layer; the worker switches on the next key frame of it."""
        self._check_open()
        spatial_layer = _layer_index(spatial_layer, "spatialLayer")
        layers = clamp_layers(self.rtp_parameters, self.type, spatial_layer, temporal_layer)
        await self._worker_request(
            "setPreferredLayers",
            layers or {"spatialLayer": spatial_layer, "temporalLayer": temporal_layer},
        )
        self.preferred_layers = layers

    async def request_key_frame(self) -> None:
        await self._worker_request("requestKeyFrame")

    def producer_closed(self) -> None:
        """Its producer closed (the worker closes the consumer with it): close without a request."""
        self._closed_by("producerclose")

    def producer_paused_changed(self, paused: bool) -> None:
        """The producer was paused or resumed."""
        if self.closed or self.producer_paused == paused:
            return
        self.producer_paused = paused
        self.emit("producerpause" if paused else "producerresume")

    def _handle_notification(self, event: str, data: dict[str, Any]) -> None:
        """A worker notification addressed to this consumer."""
        if event == "consumer.layerschange":
            if data.get("spatialLayer") is None:
                self.current_layers = None
            else:
                self.current_layers = {
                    "spatialLayer": data["spatialLayer"],
                    "temporalLayer": data.get("temporalLayer"),
                }
            self.emit("layerschange", self.current_layers)

    def _close_here(self) -> None:
        self.closed = True
        self.transport.consumers.pop(self.id, None)
        self.producer.consumers.pop(self.id, None)
        self.transport.router._forget_target(self.id)
