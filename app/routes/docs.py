"""`/api/openapi.json` and `/api/docs`: the OpenAPI document and Swagger UI, served from the
swagger-ui-bundle package's files (no CDN)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from app.api import Call, Endpoint
from app.errors import ApiError

OPENAPI = web.AppKey("openapi", dict)
SWAGGER_DIR = Path(str(swagger_ui_path))
SWAGGER_FILES = frozenset({
    "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
    "favicon-16x16.png", "favicon-32x32.png",
})

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Switchyard API</title>
  <link rel="stylesheet" href="/api/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api/docs/static/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/static/swagger-ui-bundle.js"></script>
  <script src="/api/docs/static/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"""


async def openapi_json(call: Call) -> web.Response:
    return web.json_response(call.request.app[OPENAPI])


async def swagger_ui(call: Call) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


async def swagger_asset(call: Call) -> web.FileResponse:
    name = call.request.match_info["name"]
    if name not in SWAGGER_FILES:
        raise ApiError(404, "not_found", "no such file")
    return web.FileResponse(SWAGGER_DIR / name)


ENDPOINTS = [
    Endpoint("GET", "/api/openapi.json", openapi_json, "This OpenAPI 3 document", "meta", auth=False),
    Endpoint("GET", "/api/docs", swagger_ui, "Swagger UI for this API", "meta", auth=False,
             media_type="text/html"),
    Endpoint("GET", "/api/docs/static/{name}", swagger_asset, "Swagger UI's files", "meta", auth=False,
             media_type="application/octet-stream", errors=(404,)),
]
