"""create_app(): the FastAPI application with its routes, errors and middleware."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from echopilot import __version__
from echopilot.api import pool
from echopilot.api.auth import KeyGuard
from echopilot.api.envelope import ERROR_RESPONSES, error_response
from echopilot.api.middleware import EdgeMiddleware, is_protected
from echopilot.api.pool import (
    RETRY_AFTER_SECONDS,
    Admission,
    Overloaded,
    connections_needed,
    limit_threads,
)
from echopilot.api.routes import (
    activity,
    alerts,
    automations,
    dashboard,
    docs,
    executive,
    finance,
    jobs,
    metrics,
    notion,
    optimizer,
    payments,
    prometheus,
    reports,
    retention,
    selfheal,
    system,
)
from echopilot.db.outage import EveryFew, outage_of
from echopilot.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    OperationFailed,
)
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

# Routers under /api/ (EdgeMiddleware makes every path there need the key); later
# features append theirs here.
API_ROUTERS: list[APIRouter] = [
    jobs.router,
    metrics.router,
    system.router,
    automations.router,
    retention.router,
    activity.router,
    alerts.router,
    selfheal.router,
    optimizer.router,
    finance.router,
    reports.router,
    payments.router,
    notion.router,
    executive.router,
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
    502: "upstream_failed",
    429: "rate_limited",
}
# How the key is sent, for the OpenAPI schema (EdgeMiddleware does the checking).
SECURITY_SCHEMES = {
    "DashKey": {"type": "apiKey", "in": "header", "name": "X-Dash-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}


def create_app(runtime: Runtime, dashboard_key: str) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="EchoPilot",
        version=__version__,
        description="Operations API of EchoPilot. Every /api/ route needs the dashboard key "
        "(X-Dash-Key or Authorization: Bearer).",
        docs_url=None,  # /docs is ours (routes/docs.py): served offline, behind the key
        redoc_url=None,
        openapi_url=None,  # /openapi.json needs the key (routes/docs.py)
    )
    app.state.runtime = runtime
    app.state.key_guard = guard = KeyGuard(dashboard_key, runtime)
    app.state.prometheus = CollectorRegistry(auto_describe=False)
    app.state.prometheus.register(prometheus.DatabaseCollector(runtime))
    threads = runtime.settings.resolved_api_threads
    app.state.admission = admission = Admission(app.state.prometheus, threads)
    pool.current = admission

    api = APIRouter(prefix="/api", responses=ERROR_RESPONSES)
    for router in API_ROUTERS:
        api.include_router(router)
    app.include_router(api)
    app.include_router(prometheus.router, responses=ERROR_RESPONSES)
    app.include_router(system.public)
    app.include_router(payments.public)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=str(dashboard.WEB / "static")), name="static")
    _install_error_handlers(app)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=runtime.settings.max_body_bytes,
        key_guard=guard,
        admission=admission,
    )
    app.openapi = _openapi_with_key(app)  # type: ignore[method-assign]
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    limit_threads(app, app.state.runtime.settings.resolved_api_threads)
    yield


def _openapi_with_key(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema, with the key's security schemes required by every operation
    under /api/ and /metrics (documented here; checked by EdgeMiddleware)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, item in schema.get("paths", {}).items():
                if is_protected(path):
                    for operation in item.values():
                        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def app_from_environment() -> FastAPI:
    """The app for a server process started by uvicorn (`echopilot serve --workers N`):
    settings from the environment, the key from DASHBOARD_KEY or the key file."""
    from echopilot import keys, logsetup
    from echopilot.api.server import configure
    from echopilot.config import load_settings

    settings = load_settings()
    # Each process logs to api.log itself (uvicorn starts them afresh, without the
    # parent's logging), and its protocol takes its limits from the same settings.
    logsetup.setup(settings.home, "api", settings.log_level, console=True)
    configure(settings)
    runtime = Runtime(settings, pool_size=connections_needed(settings.resolved_api_threads))
    return create_app(runtime, keys.load_or_create(settings).value)


def _request_id(request: Request) -> str | None:
    state: dict[str, Any] = request.scope.get("state", {})
    value = state.get("request_id")
    return str(value) if value else None


def _install_error_handlers(app: FastAPI) -> None:
    # Async: they do no I/O, and a sync handler would cost a hop to the thread pool.
    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return error_response(
            503,
            "overloaded",
            str(exc),
            request_id=_request_id(request),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    outage_log = EveryFew(seconds=10.0)  # an outage answers thousands of requests

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        # The database or queue gone for a moment, or the disk full: the client may retry.
        # Anything else is a bug, and the edge middleware answers it 500 with its log line.
        found = outage_of(exc)
        if found is None:
            raise exc
        # The driver's words name hosts and addresses: the log has them, the answer not.
        if outage_log.due(found.code):
            log.warning("answering 503 %s: %s", found.code, found.described)
        return error_response(
            503,
            found.code,
            found.message,
            request_id=_request_id(request),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for kind in (DBAPIError, RedisError, OSError):
        app.add_exception_handler(kind, _outage)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        problems = []
        for error in exc.errors():
            if error.get("type") == "json_invalid":
                # Its loc is ("body", position): say what is wrong, not "0: JSON decode error".
                fields.append("body")
                problems.append("body: not valid JSON")
                continue
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
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return error_response(
            422, "invalid_input", str(exc), request_id=_request_id(request), fields=[exc.field]
        )

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        setting = str(exc).split(":", 1)[0]
        return error_response(
            422,
            "bad_configuration",
            str(exc),
            request_id=_request_id(request),
            fields=[setting],
        )

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(exc), request_id=_request_id(request))

    @app.exception_handler(OperationFailed)
    async def _failed(request: Request, exc: OperationFailed) -> JSONResponse:
        # A service the operation needs (Stripe) could not be reached or refused.
        return error_response(502, "upstream_failed", str(exc), request_id=_request_id(request))

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return error_response(409, "conflict", str(exc), request_id=_request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(
            exc.status_code,
            code,
            message,
            request_id=_request_id(request),
            headers=getattr(exc, "headers", None),
        )
