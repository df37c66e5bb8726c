"""Socket.IO request metrics, in the node's Prometheus registry (common.metrics)."""

from prometheus_client import Counter, Histogram

from common.metrics import REGISTRY

SIGNALING_REQUESTS = Counter(
    "switchyard_signaling_requests_total", "Socket.IO requests by event and outcome (ok or error code)",
    ["event", "outcome"], registry=REGISTRY,
)
SIGNALING_SECONDS = Histogram(
    "switchyard_signaling_request_seconds", "Time to answer a Socket.IO request", ["event"], registry=REGISTRY,
)
SIGNALING_MALFORMED = Counter(
    "switchyard_signaling_malformed_total",
    "Socket.IO packets that are no well-formed request: answered invalid_input (an event with an ack id) or "
    "dropped", ["outcome"], registry=REGISTRY,
)
