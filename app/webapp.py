"""Serve the built web app at `/`, or a small index page until one is built."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard</title></head>
<body><h1>Switchyard</h1>
<p>The media server is running. The web app is not built in this install.</p>
<ul><li><a href="/api/health">/api/health</a></li></ul>
</body></html>
"""

# The web app manifest (installing the app, docs/web.md): its registered type, which Python's
# mimetypes table lacks on some systems (FileResponse would say application/octet-stream).
mimetypes.add_type("application/manifest+json", ".webmanifest")

# The app's own pages (web/src/router.ts): a reload or a shared link on one of them gets the app.
# Listed one by one rather than a catch-all, so an unknown /api path still answers JSON 404.
APP_PAGES = ("/login", "/register", "/rooms", "/rooms/", "/rooms/{roomId}")

# index.html names hashed assets, so it must never be cached; the assets themselves never change.
NO_CACHE = {"Cache-Control": "no-cache"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def static_routes(web_dir: str | None) -> list[web.RouteDef]:
    """Routes for `/`, the app's pages, the built assets and the files beside index.html."""
    if web_dir and (Path(web_dir) / "index.html").is_file():
        root = Path(web_dir)
        index = root / "index.html"

        async def index_page(request: web.Request) -> web.FileResponse:
            return web.FileResponse(index, headers=NO_CACHE)

        routes = [web.get(path, index_page) for path in ("/", *APP_PAGES)]
        assets = root / "assets"
        if assets.is_dir():
            routes.append(web.get("/assets/{name}", _asset_handler(assets)))
        # Files Vite copies from web/public (the icon): served at the top level, as the page names them.
        for file in sorted(root.iterdir()):
            if file.is_file() and file.name != "index.html" and not file.name.startswith("."):
                routes.append(web.get(f"/{file.name}", _file_handler(file)))
        return routes

    async def placeholder(request: web.Request) -> web.Response:
        return web.Response(text=PLACEHOLDER, content_type="text/html")

    return [web.get("/", placeholder)]


def _file_handler(file: Path):
    async def serve_file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(file, headers=NO_CACHE)
    return serve_file


def _asset_handler(assets: Path):
    async def serve_asset(request: web.Request) -> web.FileResponse:
        # `{name}` never holds a slash; hidden files and `..` are refused, and a missing file is
        # the usual JSON 404. Looked up per request, so a rebuild while serving is picked up.
        name = request.match_info["name"]
        file = assets / name
        if name.startswith(".") or not file.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(file, headers=IMMUTABLE)
    return serve_asset
