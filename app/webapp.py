"""Serve the built web app at `/`, or a small index page until one is built."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard</title></head>
<body><h1>Switchyard</h1>
<p>The media server is running. The web app is not built in this install.</p>
<ul><li><a href="/api/health">/api/health</a></li></ul>
</body></html>
"""


def static_routes(web_dir: str | None) -> list[web.RouteDef]:
    """Routes for `/` and the built assets."""
    if web_dir and (Path(web_dir) / "index.html").is_file():
        index = Path(web_dir) / "index.html"

        async def index_page(request: web.Request) -> web.FileResponse:
            return web.FileResponse(index)

        routes = [web.get("/", index_page)]
        assets = Path(web_dir) / "assets"
        if assets.is_dir():
            routes.append(web.static("/assets", assets))
        return routes

    async def placeholder(request: web.Request) -> web.Response:
        return web.Response(text=PLACEHOLDER, content_type="text/html")

    return [web.get("/", placeholder)]
