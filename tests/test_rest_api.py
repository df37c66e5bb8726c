"""The API as a whole: the OpenAPI document, Swagger UI from local files, /metrics, /api/health,
`/`, and JSON errors (never HTML) for whatever reaches no handler."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import REGISTRY
from app.routes import all_endpoints
from app.schemas import ErrorAnswer
from tests.rest_helpers import assert_error, bearer, register

pytest_plugins = ("tests.rest_fixtures",)

# PROTOCOL.md §2, every row
CONTRACT_ROUTES = {
    ("post", "/api/auth/register"), ("post", "/api/auth/login"), ("post", "/api/auth/guest"),
    ("get", "/api/me"), ("post", "/api/rooms"), ("get", "/api/rooms"), ("get", "/api/rooms/{roomId}"),
    ("delete", "/api/rooms/{roomId}"), ("get", "/api/rooms/{roomId}/messages"), ("get", "/api/health"),
    ("get", "/metrics"), ("get", "/api/openapi.json"), ("get", "/api/docs"),
}
PUBLIC_ROUTES = {("post", "/api/auth/register"), ("post", "/api/auth/login"), ("post", "/api/auth/guest"),
                 ("get", "/api/health"), ("get", "/metrics"), ("get", "/api/openapi.json"), ("get", "/api/docs")}


async def test_openapi_document_covers_the_contract(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.0")
    operations = {(method, path): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert CONTRACT_ROUTES <= set(operations)
    for key in CONTRACT_ROUTES:
        secured = "security" in operations[key]
        assert secured == (key not in PUBLIC_ROUTES), key
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    register_op = operations[("post", "/api/auth/register")]
    assert set(register_op["responses"]) >= {"201", "409", "422", "400", "413", "415"}
    body = doc["components"]["schemas"]["RegisterBody"]
    assert set(body["required"]) == {"email", "password", "displayName"}
    room = doc["components"]["schemas"]["RoomOut"]["properties"]
    assert set(room) == {"id", "name", "ownerId", "isPublic", "maxParticipants", "createdAt", "participantCount"}
    assert room["maxParticipants"]["nullable"] is True
    params = {p["name"]: p for p in operations[("get", "/api/rooms/{roomId}/messages")]["parameters"]}
    assert params["roomId"]["in"] == "path"
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert params["before"]["in"] == "query" and not params["before"]["required"]
    assert operations[("delete", "/api/rooms/{roomId}")]["responses"]["204"]
    error = doc["components"]["schemas"]["ErrorAnswer"]
    assert error["required"] == ["error"]


def test_every_declared_error_status_points_at_the_error_shape():
    from app.openapi import openapi_document

    doc = openapi_document(all_endpoints())
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400 and (path, status) != ("/api/health", "503"):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith(f"/{ErrorAnswer.__name__}"), (method, path, status)


def test_openapi_is_valid_for_schemathesis():
    import schemathesis

    from app.openapi import openapi_document

    schema = schemathesis.openapi.from_dict(openapi_document(all_endpoints()))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(all_endpoints())


async def test_swagger_ui_is_served_from_local_files(client):
    resp = await client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "SwaggerUIBundle" in page and "/api/openapi.json" in page
    assert not re.search(r"https?://", page), "no CDN, no outside URL"
    assets = re.findall(r'(?:src|href)="(/api/docs/static/[^"]+)"', page)
    assert len(assets) >= 3
    for asset in assets:
        resp = await client.get(asset)
        assert resp.status == 200, asset
        assert len(await resp.read()) > 100
    resp = await client.get("/api/docs/static/swagger-ui-bundle.js")
    assert "javascript" in resp.content_type


@pytest.mark.parametrize("name", ["index.html", "swagger-initializer.js", "..%2F__init__.py", "nope.js"])
async def test_only_swagger_uis_own_files_are_served(client, name):
    await assert_error(await client.get(f"/api/docs/static/{name}"), 404, "not_found")


def sample_value(text: str, name: str, labels: dict) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_metrics_count_requests_by_route_and_status(client):
    token, _ = await register(client)
    before = (await (await client.get("/metrics")).text())
    route = {"method": "GET", "route": "/api/rooms/{roomId}", "status": "404"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    n_before = sample_value(before, "switchyard_http_requests_total", route)
    unmatched_before = sample_value(before, "switchyard_http_requests_total", unmatched)
    for _ in range(3):
        await client.get("/api/rooms/00000000-0000-4000-8000-000000000000", headers=bearer(token))
    await client.get("/no/such/path")
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert sample_value(text, "switchyard_http_requests_total", route) == n_before + 3
    assert sample_value(text, "switchyard_http_requests_total", unmatched) == unmatched_before + 1
    assert "switchyard_http_request_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text or "python_info" in text


async def test_metrics_registry_takes_other_layers_metrics(client):
    from prometheus_client import Gauge

    gauge = Gauge("switchyard_test_rooms", "a metric another layer adds", registry=REGISTRY)
    try:
        gauge.set(7)
        text = await (await client.get("/metrics")).text()
        assert "switchyard_test_rooms 7.0" in text
    finally:
        REGISTRY.unregister(gauge)


async def test_metrics_speak_openmetrics_when_asked(client):
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert resp.status == 200 and resp.content_type == "application/openmetrics-text"
    assert (await resp.text()).rstrip().endswith("# EOF")


async def test_health_still_answers(client):
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "db": "ok", "redis": "disabled", "workers": []}


async def test_the_web_app_placeholder_is_still_at_root(client):
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/api/nothing-here", 404, "not_found"),
    ("GET", "/api/rooms/", 404, "not_found"),
    ("POST", "/api/health", 405, "method_not_allowed"),
    ("PUT", "/api/auth/register", 405, "method_not_allowed"),
    ("DELETE", "/metrics", 405, "method_not_allowed"),
    ("GET", "/api/auth/guest", 405, "method_not_allowed"),
])
async def test_requests_that_reach_no_handler_get_json_errors(client, method, path, status, code):
    await assert_error(await client.request(method, path), status, code)


async def test_405_names_the_allowed_methods(client):
    resp = await client.put("/api/rooms")
    await assert_error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_an_unexpected_failure_is_a_json_500_without_a_trace(client, app, monkeypatch):
    from app.api import STORE

    async def broken(*args, **kwargs):
        raise RuntimeError("database exploded at line 42")

    monkeypatch.setattr(app[STORE], "rooms_visible_to", broken)
    token, _ = await register(client)
    resp = await client.get("/api/rooms", headers=bearer(token))
    message = await assert_error(resp, 500, "internal_error")
    assert "exploded" not in message
