"""A WebRTC transport, seen from the main process (mediasoup's WebRtcTransport).

The worker is ICE-lite and holds the DTLS session; this object carries the
local parameters the client needs (ICE, candidates, DTLS fingerprints, and
SCTP parameters when DataChannels are enabled) and the states the worker
reports. Its data producers and data consumers (SCTP streams of the
transport's association) close with it, as its media producers and consumers do.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from media.api.data_consumer import DataConsumer
from media.api.data_producer import DataProducer
from media.api.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    SwitchyardError,
    worker_request,
)
from media.api.sctp import validate_label, validate_sctp_stream_parameters
from media.api.transport import Transport, app_data_of

if TYPE_CHECKING:
    from media.api.router import Router

DTLS_ROLES = ("auto", "client", "server")
MAX_FINGERPRINTS = 8
MAX_FINGERPRINT_FIELD = 255


def _clean_dtls_parameters(dtls_parameters: Any) -> dict[str, Any]:
    """The remote DTLS parameters (RFC 8122 fingerprints, RFC 5763 role) with nothing else in them."""
    if not isinstance(dtls_parameters, dict):
        raise InvalidInputError("dtlsParameters must be an object")
    role = dtls_parameters.get("role") or "auto"
    if role not in DTLS_ROLES:
        raise InvalidInputError("dtlsParameters.role must be auto, client or server")
    fingerprints = dtls_parameters.get("fingerprints")
    if not isinstance(fingerprints, list) or not 0 < len(fingerprints) <= MAX_FINGERPRINTS:
        raise InvalidInputError(f"dtlsParameters.fingerprints must be a list of 1..{MAX_FINGERPRINTS}")
    clean = []
    for index, fingerprint in enumerate(fingerprints):
        if not isinstance(fingerprint, dict) or not all(
            isinstance(fingerprint.get(key), str) and 0 < len(fingerprint[key]) <= MAX_FINGERPRINT_FIELD
            for key in ("algorithm", "value")
        ):
            raise InvalidInputError(
                f"dtlsParameters.fingerprints[{index}] must have an algorithm and a value"
            )
        clean.append({"algorithm": fingerprint["algorithm"], "value": fingerprint["value"]})
    return {"role": role, "fingerprints": clean}


class WebRtcTransport(Transport):
    """Events: `icestatechange`, `iceselectedtuplechange`, `dtlsstatechange`, `sctpstatechange`, `routerclose`."""

    def __init__(self, router: Router, transport_id: str, data: dict[str, Any], app_data: dict[str, Any]):
        super().__init__(router, transport_id, app_data)
        self.ice_role = "controlled"
        self.ice_parameters: dict[str, Any] = data["iceParameters"]
        self.ice_candidates: list[dict[str, Any]] = data["iceCandidates"]
        self.dtls_parameters: dict[str, Any] = data["dtlsParameters"]
        self.ice_state = "new"
        self.ice_selected_tuple: dict[str, Any] | None = None
        self.dtls_state = "new"
        self.srtp_crypto_suite: str | None = None
        self._connect_called = False
        self.sctp_parameters: dict[str, Any] | None = data.get("sctpParameters")
        self.sctp_state: str | None = "new" if self.sctp_parameters else None

    async def connect(self, dtls_parameters: dict[str, Any]) -> None:
        """Give the worker the client's DTLS parameters; the handshake follows ICE. Only once."""
        self._check_open()
        if self._connect_called:
            raise InvalidStateError(f"connect() was already called on transport {self.id}")
        remote = _clean_dtls_parameters(dtls_parameters)
        self._connect_called = True
        try:
            data = await worker_request(
                self.worker, "transport.connect", {"transportId": self.id, "dtlsParameters": remote}
            )
        except SwitchyardError:
            self._connect_called = False
            raise
        self.dtls_parameters["role"] = data["dtlsLocalRole"]

    async def restart_ice(self) -> dict[str, Any]:
        """New ICE username fragment and password; the client restarts ICE with them."""
        self._check_open()
        data = await worker_request(self.worker, "transport.restartIce", {"transportId": self.id})
        self.ice_parameters = data["iceParameters"]
        return self.ice_parameters

    def _check_sctp(self) -> dict[str, Any]:
        self._check_open()
        if self.sctp_parameters is None:
            raise InvalidStateError(f"transport {self.id} has no SCTP (create it with enable_sctp)")
        return self.sctp_parameters

    async def produce_data(self, sctp_stream_parameters: dict[str, Any], label: str | None = None,
                           protocol: str | None = None, app_data: dict[str, Any] | None = None) -> DataProducer:
        """Receive messages on the SCTP stream the client chose (mediasoup's transport.produceData())."""
        sctp = self._check_sctp()
        app_data = app_data_of(app_data)
        params = validate_sctp_stream_parameters(sctp_stream_parameters, sctp["MIS"])
        label, protocol = validate_label(label, "label"), validate_label(protocol, "protocol")
        if any(p.sctp_stream_parameters["streamId"] == params["streamId"] for p in self.data_producers.values()):
            raise InvalidInputError(f"sctpStreamParameters.streamId {params['streamId']} is already in use")
        data_producer_id = str(uuid.uuid4())
        await worker_request(self.worker, "transport.produceData", {
            "transportId": self.id, "dataProducerId": data_producer_id, "sctpStreamParameters": params,
            "label": label, "protocol": protocol})
        # Closed meanwhile: the worker closed the data producer with the transport.
        self._check_open()
        producer = DataProducer(self, data_producer_id, params, label, protocol, app_data)
        self.data_producers[producer.id] = producer
        self.router.data_producers[producer.id] = producer
        return producer

    async def consume_data(self, data_producer_id: str, app_data: dict[str, Any] | None = None) -> DataConsumer:
        """Send a data producer's messages on a stream the server picks (mediasoup's transport.consumeData())."""
        self._check_sctp()
        app_data = app_data_of(app_data)
        producer = self.router.data_producers.get(data_producer_id) if isinstance(data_producer_id, str) else None
        if producer is None:
            raise NotFoundError(f"data producer {data_producer_id!r} not found")
        data_consumer_id = str(uuid.uuid4())
        answer = await worker_request(self.worker, "transport.consumeData", {
            "transportId": self.id, "dataConsumerId": data_consumer_id, "dataProducerId": producer.id})
        self._check_open()
        if producer.closed:
            raise InvalidStateError(f"data producer {producer.id} closed while it was being consumed")
        consumer = DataConsumer(self, producer, data_consumer_id, answer["sctpStreamParameters"], app_data)
        self.data_consumers[consumer.id] = consumer
        producer.data_consumers[consumer.id] = consumer
        return consumer

    def _handle_notification(self, event: str, data: dict[str, Any]) -> None:
        if event == "transport.sctpstatechange":
            self.sctp_state = data["sctpState"]
            self.emit("sctpstatechange", self.sctp_state)
        elif event == "transport.icestatechange":
            self.ice_state = data["iceState"]
            self.emit("icestatechange", self.ice_state)
        elif event == "transport.iceselectedtuplechange":
            self.ice_selected_tuple = data.get("iceSelectedTuple")
            self.emit("iceselectedtuplechange", self.ice_selected_tuple)
        elif event == "transport.dtlsstatechange":
            self.dtls_state = data["dtlsState"]
            self.srtp_crypto_suite = data.get("srtpCryptoSuite") or self.srtp_crypto_suite
            self.emit("dtlsstatechange", self.dtls_state)

    def _closed_states(self) -> None:
        self.ice_state = "closed"
        self.ice_selected_tuple = None
        self.dtls_state = "closed"
        if self.sctp_state is not None:
            self.sctp_state = "closed"
