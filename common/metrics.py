"""The node's one Prometheus registry, below every layer so each declares its metrics on it.

`/metrics` (app/metrics.py) serves it; signaling and the media engine's exporters add to it.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# `_created` series double every counter's lines and no dashboard of ours reads them.
disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
