"""The interactive API docs at /docs, served offline, and the API's schema behind the key.

Swagger UI's JavaScript and CSS come from the installed `fastapi-offline` package (never a
CDN, never copied into this repository) and are served by a route of ours. The page is ours
too: a template with no data and no inline script; docs.js asks for the dashboard key the way
the dashboard does, fetches /openapi.json with it and sends it with "Try it out" requests.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from echopilot import __version__
from echopilot.api.routes.dashboard import templates

SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
# The only files served from that package, with their media types.
SWAGGER_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "docs.html", {"version": __version__})


@router.api_route("/static/vendor/swagger-ui/{name}", methods=["GET", "HEAD"])
async def swagger_asset(name: str) -> FileResponse:
    media_type = SWAGGER_ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such file")
    return FileResponse(
        SWAGGER_UI / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    """The schema, for holders of the key only: EdgeMiddleware checks the key on this path
    (api/middleware.py is_protected) as on every /api/ path, since it maps every route."""
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)
