"""One ASGI middleware at the edge: the refusal when over capacity (api/pool.py), request
ids, security headers, `Cache-Control: no-store`, the dashboard key, the request-size
limit, and the 500 answer.

The key is checked here, for /api/ and /metrics, before the body is read or its size
checked: a request without the key gets 401 (and counts as a failed attempt) whatever its
body, and never makes the server read or parse that body.

Unhandled errors are answered here rather than in an app exception handler: Starlette runs
those outside every middleware, so their answers would lack the headers and the request id.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from echopilot.api.auth import AuthError, KeyGuard, presented_key
from echopilot.api.pool import RETRY_AFTER_SECONDS, SHED_PREFIXES, Admission

log = logging.getLogger("echopilot.api")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# API answers and pages are never cached (they carry jobs and figures); /static/ files,
# the chart library among them, keep their own caching.
NO_STORE = (b"cache-control", b"no-store")
CACHED_PREFIX = "/static/"
AUTH_CODES = {401: "unauthorized", 429: "rate_limited"}


# Sec-Fetch-Site values of requests a browser makes for a page of another origin.
OTHER_SITES = frozenset({b"cross-site", b"same-site"})


def is_protected(path: str) -> bool:
    """Whether `path` needs the dashboard key: everything under /api/, /metrics, and the
    schema (/openapi.json maps every route)."""
    return (
        path.startswith("/api/")
        or path in ("/api", "/metrics", "/openapi.json")
        or path.startswith("/metrics/")
    )


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        key_guard: KeyGuard | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.key_guard = key_guard
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        # Before anything else: refusing costs least when nothing has been done yet.
        if self.admission is not None and path.startswith(SHED_PREFIXES) and self.admission.full():
            self.admission.refuse("busy")
            request_id = new_request_id()
            await self._error(
                _with_headers(send, [*SECURITY_HEADERS, NO_STORE, _request_header(request_id)]),
                503,
                "overloaded",
                f"the server is busy; retry in {RETRY_AFTER_SECONDS} s",
                request_id,
                headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )
            return
        await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        extra = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]
        path: str = scope.get("path", "")
        no_store = not path.startswith(CACHED_PREFIX)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if no_store and not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                # A route that sets its own header of a kind (a brief's stricter content
                # policy) keeps it alone: two policies would both apply, confusingly.
                named = {bytes(name).lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in named)]
            await send(message)

        if is_protected(path) and _header(scope, b"sec-fetch-site") in OTHER_SITES:
            # A browser on another site's page (or another port of this host): refused
            # before the key is looked at, so such pages cannot lock the owner out.
            await self._error(
                send_with_headers,
                403,
                "forbidden",
                "requests from other web pages are refused",
                request_id,
            )
            return
        if self.key_guard is not None and is_protected(path):
            client = scope.get("client")
            try:
                await self.key_guard.check(
                    client[0] if client else "unknown",
                    presented_key(scope.get("headers", [])),
                    method=scope.get("method", "GET"),
                    path=path,
                )
            except AuthError as exc:
                if exc.status == 401:
                    headers = [(b"www-authenticate", b"Bearer")]
                else:
                    headers = [(b"retry-after", str(exc.retry_after or 1).encode())]
                await self._error(
                    send_with_headers,
                    exc.status,
                    AUTH_CODES[exc.status],
                    exc.message,
                    request_id,
                    headers=headers,
                )
                return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._error(
                send_with_headers,
                413,
                "payload_too_large",
                f"request body over {self.max_body_bytes} bytes",
                request_id,
            )
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException passes through the framework's body parsing as is
                    # and becomes the 413 envelope in the app's handler.
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except ClientDisconnect:
            # The client went away (or the server cut it off: too slow) mid-body; nobody
            # is left to answer.
            log.info("client gone before its request was read (request %s)", request_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if started:
                raise
            await self._error(
                send_with_headers,
                500,
                "internal_error",
                f"internal error; quote request id {request_id} to find it in the logs",
                request_id,
            )

    @staticmethod
    async def _error(
        send: Any,
        status: int,
        code: str,
        message: str,
        request_id: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(
            {
                "ok": False,
                "data": None,
                "error": {"code": code, "message": message, "request_id": request_id},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# Request ids: unique in this process by a counter, across processes by a random prefix
# (uuid4 read the system's random source on every request).
_REQUEST_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_REQUEST_PREFIX}{next(_request_numbers):08x}"


def _request_header(request_id: str) -> tuple[bytes, bytes]:
    return (b"x-request-id", request_id.encode())


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
