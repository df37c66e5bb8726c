"""Prometheus metrics: one registry for the whole node, served at `/metrics`.

Every layer declares its metric objects on `common.metrics.REGISTRY`, so that every metric of
the node is in one place and `/metrics` serves them all.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import Counter, Histogram
from prometheus_client.exposition import choose_encoder

from common.metrics import REGISTRY

HTTP_REQUESTS = Counter(
    "switchyard_http_requests_total", "HTTP requests answered, by method, route and status",
    ["method", "route", "status"], registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "switchyard_http_request_duration_seconds", "Time to answer an HTTP request, by method and route",
    ["method", "route"], registry=REGISTRY,
)

# Requests that match no route, or use an odd method, share one label each, so that scanners
# cannot grow the label set.
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(request: web.Request) -> str:
    """The route's template (`/api/rooms/{roomId}`), not the path the client sent."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None or request.match_info.http_exception is not None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def count_requests(request: web.Request, handler) -> web.StreamResponse:
    """Count every answer by route and final status; outermost, so it sees the error middleware's answers."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_label(request)
        method = request.method if request.method in KNOWN_METHODS else "other"
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - start)


async def metrics(call) -> web.Response:
    """`GET /metrics`: the Prometheus text format, or OpenMetrics when the scraper asks for it."""
    encode, content_type = choose_encoder(call.request.headers.get("Accept", ""))
    return web.Response(body=encode(REGISTRY), headers={"Content-Type": content_type})
