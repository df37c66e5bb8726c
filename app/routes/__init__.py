"""Every REST endpoint of PROTOCOL.md §2, one module per group."""

from __future__ import annotations

from app import health, metrics
from app.api import Endpoint
from app.routes import auth, docs, recordings, rooms


def all_endpoints() -> list[Endpoint]:
    return [
        *auth.ENDPOINTS,
        *rooms.ENDPOINTS,
        *recordings.ENDPOINTS,
        *health.ENDPOINTS,
        Endpoint("GET", "/metrics", metrics.metrics, "Prometheus metrics", "meta", auth=False,
                 media_type="text/plain"),
        *docs.ENDPOINTS,
    ]
