"""Payload shapes of every client request (PROTOCOL.md §3), checked before anything acts on them."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from media.limits import MAX_INCOMING_BITRATE
from signaling.errors import invalid_input

Id = Annotated[str, Field(min_length=1, max_length=64)]
DisplayName = Annotated[str, Field(min_length=1, max_length=64)]
APP_DATA_MAX_BYTES = 4096


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


def check_app_data(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > APP_DATA_MAX_BYTES:
        raise ValueError(f"appData is larger than {APP_DATA_MAX_BYTES} bytes")
    return value


class Join(Payload):
    roomId: Id
    displayName: DisplayName | None = None


class Empty(Payload):
    pass


class NumSctpStreams(Payload):
    OS: Annotated[StrictInt, Field(ge=1, le=65535)]
    MIS: Annotated[StrictInt, Field(ge=1, le=65535)]


class SctpCapabilities(Payload):
    """mediasoup-client's SctpCapabilities: what the client's SCTP stack offers (numStreams)."""
    numStreams: NumSctpStreams | None = None


class CreateWebRtcTransport(Payload):
    direction: Literal["send", "recv"]
    sctpCapabilities: SctpCapabilities | None = None
    forceTcp: StrictBool = False
    # mediasoup's transport.setMaxIncomingBitrate(), at creation; None: the server's default
    maxIncomingBitrate: Annotated[StrictInt, Field(ge=0, le=MAX_INCOMING_BITRATE)] | None = None


class SetMaxIncomingBitrate(Payload):
    transportId: Id
    bitrate: Annotated[StrictInt, Field(ge=0, le=MAX_INCOMING_BITRATE)]


class ConnectWebRtcTransport(Payload):
    transportId: Id
    dtlsParameters: dict[str, Any]


class TransportRef(Payload):
    transportId: Id


class Produce(Payload):
    transportId: Id
    kind: Literal["audio", "video"]
    rtpParameters: dict[str, Any]
    appData: dict[str, Any] | None = None

    _app_data = field_validator("appData")(check_app_data)


DataLabel = Annotated[str, Field(max_length=1024)]


class ProduceData(Payload):
    transportId: Id
    sctpStreamParameters: dict[str, Any]
    label: DataLabel | None = None
    protocol: DataLabel | None = None
    appData: dict[str, Any] | None = None

    _app_data = field_validator("appData")(check_app_data)


class ConsumeData(Payload):
    dataProducerId: Id
    # omitted: the caller's receive transport that has SCTP
    transportId: Id | None = None


class DataProducerRef(Payload):
    dataProducerId: Id


class DataConsumerRef(Payload):
    dataConsumerId: Id


class ProducerRef(Payload):
    producerId: Id


class Consume(Payload):
    transportId: Id
    producerId: Id
    rtpCapabilities: dict[str, Any]
    paused: StrictBool = True


class ConsumerRef(Payload):
    consumerId: Id


class PreferredLayers(Payload):
    consumerId: Id
    spatialLayer: Annotated[StrictInt, Field(ge=0, le=15)]
    temporalLayer: Annotated[StrictInt, Field(ge=0, le=15)] | None = None


class StatsRef(Payload):
    id: Id


class Chat(Payload):
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class Mute(Payload):
    muted: StrictBool


class RaiseHand(Payload):
    raised: StrictBool


def parse(model: type[Payload], payload: object) -> Payload:
    """Validate a payload; the error names the first bad field."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise invalid_input("the payload must be an object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise invalid_input(f"{where}: {first['msg']}") from None
