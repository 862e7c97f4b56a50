"""create_app(): the FastAPI application with its routes, errors and middleware."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from echopilot import __version__
from echopilot.api.auth import AuthError, KeyGuard
from echopilot.api.deps import require_key
from echopilot.api.envelope import ERROR_RESPONSES, error_response
from echopilot.api.middleware import EdgeMiddleware
from echopilot.api.routes import (
    activity,
    automations,
    dashboard,
    jobs,
    metrics,
    prometheus,
    retention,
    system,
)
from echopilot.errors import ConflictError, InputError, NotFoundError
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

# Routers under /api/ that need the key; later features append theirs here.
API_ROUTERS: list[APIRouter] = [
    jobs.router,
    metrics.router,
    system.router,
    automations.router,
    retention.router,
    activity.router,
]
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def create_app(runtime: Runtime, dashboard_key: str) -> FastAPI:
    app = FastAPI(
        title="EchoPilot",
        version=__version__,
        description="Operations API of EchoPilot. Every /api/ route needs the dashboard key "
        "(X-Dash-Key or Authorization: Bearer).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.key_guard = KeyGuard(dashboard_key)
    app.state.prometheus = CollectorRegistry(auto_describe=False)
    app.state.prometheus.register(prometheus.DatabaseCollector(runtime))

    protected = [Depends(require_key)]
    api = APIRouter(prefix="/api", dependencies=protected, responses=ERROR_RESPONSES)
    for router in API_ROUTERS:
        api.include_router(router)
    app.include_router(api)
    app.include_router(prometheus.router, dependencies=protected, responses=ERROR_RESPONSES)
    app.include_router(system.public)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=str(dashboard.WEB / "static")), name="static")
    _install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=runtime.settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """The app for a server process started by uvicorn (`echopilot serve --workers N`):
    settings from the environment, the key from DASHBOARD_KEY or the key file."""
    from echopilot import keys
    from echopilot.config import load_settings

    settings = load_settings()
    runtime = Runtime(settings, pool_size=20)
    return create_app(runtime, keys.load_or_create(settings).value)


def _request_id(request: Request) -> str | None:
    state: dict[str, Any] = request.scope.get("state", {})
    value = state.get("request_id")
    return str(value) if value else None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    def _auth(request: Request, exc: AuthError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(
            exc.status,
            HTTP_CODES[exc.status],
            exc.message,
            request_id=_request_id(request),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
            name = ".".join(loc) or "body"
            fields.append(name)
            problems.append(f"{name}: {error.get('msg', 'invalid')}")
        return error_response(
            422,
            "invalid_input",
            "; ".join(problems),
            request_id=_request_id(request),
            fields=sorted(set(fields)),
        )

    @app.exception_handler(InputError)
    def _input(request: Request, exc: InputError) -> JSONResponse:
        return error_response(
            422, "invalid_input", str(exc), request_id=_request_id(request), fields=[exc.field]
        )

    @app.exception_handler(NotFoundError)
    def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(exc), request_id=_request_id(request))

    @app.exception_handler(ConflictError)
    def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return error_response(409, "conflict", str(exc), request_id=_request_id(request))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(
            exc.status_code,
            code,
            message,
            request_id=_request_id(request),
            headers=getattr(exc, "headers", None),
        )
