"""The OpenAPI 3.0 document, generated from the endpoint table and its pydantic models."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from app.api import Endpoint
from app.schemas import ErrorAnswer

ERROR_DESCRIPTIONS = {
    400: "`invalid_json`: the body is not valid JSON",
    401: "`unauthorized`: the bearer token is missing, forged or expired (or `invalid_credentials` at login)",
    403: "`forbidden`: not allowed for this caller",
    404: "`not_found`: no such id",
    409: "`email_taken`: an account with this email exists (recordings: `invalid_state`, `conflict`)",
    413: "`payload_too_large`: the body is over 64 KiB",
    415: "`unsupported_media_type`: the body is not sent as application/json",
    422: "`invalid_input`: a field is missing, of the wrong type or out of range",
    429: "`limit_exceeded`: too many attempts; see Retry-After",
    507: "`insufficient_storage`: the disk has less free space than a recording needs",
}
SCHEMA_REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"\{(\w+)\}")


class OpenApi30Schema(GenerateJsonSchema):
    """pydantic's JSON Schema in OpenAPI 3.0's dialect: `nullable: true` instead of a `null` type."""

    def field_title_should_be_set(self, schema) -> bool:
        return False  # titles made from field names ("Createdat") only clutter the document

    def nullable_schema(self, schema) -> dict[str, Any]:
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        return {**inner, "nullable": True}


def package_version() -> str:
    try:
        return version("switchyard")
    except PackageNotFoundError:
        return "0.0.0"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}


def json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": ref(model)}}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, schema_generator=OpenApi30Schema)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        if prop.get("nullable") and "default" in prop and prop["default"] is None:
            # an absent parameter is the `null` here; a query string cannot send a null
            prop.pop("nullable")
            prop.pop("default")
        parameters.append({"name": name, "in": "query", "required": name in required,
                           "description": description, "schema": prop})
    return parameters


def operation(endpoint: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    if endpoint.description:
        op["description"] = endpoint.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        parameters += query_parameters(endpoint.query)
    if parameters:
        op["parameters"] = parameters
    if endpoint.body is not None:
        op["requestBody"] = {"required": True, "content": json_content(endpoint.body)}
    success: dict[str, Any] = {"description": endpoint.summary}
    if endpoint.answer is not None:
        success["content"] = json_content(endpoint.answer)
    elif endpoint.media_type != "application/json":
        success["content"] = {endpoint.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(endpoint.status): success}
    for status, model, description in endpoint.other_answers:
        responses[str(status)] = {"description": description, "content": json_content(model)}
    for status in sorted(endpoint.errors):
        responses[str(status)] = {"description": ERROR_DESCRIPTIONS[status], "content": json_content(ErrorAnswer)}
    op["responses"] = responses
    if endpoint.auth:
        op["security"] = [{"bearerAuth": []}]
    return op


def component_schemas(endpoints: list[Endpoint]) -> dict[str, Any]:
    wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorAnswer, "serialization"): None}
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted[(endpoint.body, "validation")] = None
        if endpoint.answer is not None:
            wanted[(endpoint.answer, "serialization")] = None
        for _, model, _ in endpoint.other_answers:
            wanted[(model, "serialization")] = None
    _, top = models_json_schema(list(wanted), by_alias=True, ref_template=SCHEMA_REF,
                                schema_generator=OpenApi30Schema)
    return top.get("$defs", {})


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation(endpoint)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Switchyard",
            "version": package_version(),
            "description": "REST API of the Switchyard SFU. Errors are always "
                           '`{"error": {"code", "message"}}`. Real-time signaling is Socket.IO at '
                           "`/socket.io` (see docs/PROTOCOL.md §3).",
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(endpoints),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
