"""The HTTP server below the app: uvicorn's httptools protocol with bounds, and the options
EchoPilot runs uvicorn with.

uvicorn's httptools protocol reads a request's head without a limit and lets a client take
as long as it likes to send a request. EchoPilotProtocol adds:

- a bound on the head: more than MAX_HEAD_BYTES of request line and headers, or more than
  MAX_HEADER_FIELDS header fields, is answered 431 and the connection closed; no more than
  about MAX_HEAD_BYTES of an unfinished head is ever held;
- a deadline: a client has ECHOPILOT_REQUEST_TIMEOUT_SECONDS from the moment a request
  begins (or the connection opens) until the request is complete, headers and body; a
  slower one gets 408 (unless an answer has started) and is disconnected. A connection
  that sends nothing is closed at the same deadline;
- its own answers (400 for a malformed request, 408, 431, and 503 over the concurrency
  limit) as the JSON envelope with the security headers and `Cache-Control: no-store`.

Connections are closed gracefully after such an answer: the server stops writing (FIN) and
discards what the client still sends for up to LINGER_SECONDS, so the client reads the
answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from echopilot.api import pool
from echopilot.api.middleware import NO_STORE, SECURITY_HEADERS
from echopilot.api.pool import RETRY_AFTER_SECONDS, SHED_PREFIXES_BYTES

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from echopilot.config import Settings

log = logging.getLogger("echopilot.api")

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100
# Open connections (idle ones included) or requests in progress per process beyond which
# requests are answered 503. Slow clients are cut off by the request deadline, so this
# bounds work and memory under a flood, not ordinary use.
LIMIT_CONCURRENCY = 1000
KEEP_ALIVE_SECONDS = 5
GRACEFUL_SHUTDOWN_SECONDS = 5
LINGER_SECONDS = 2.0
REQUEST_LINE_OVERHEAD = 16  # method, spaces, "HTTP/1.1", CRLF: about this many bytes


@dataclass(frozen=True)
class Limits:
    request_timeout: float = 10.0
    max_head_bytes: int = MAX_HEAD_BYTES
    max_header_fields: int = MAX_HEADER_FIELDS


_limits: Limits | None = None


def configure(settings: Settings) -> None:
    """Set this process's limits from `settings` (uvicorn_options() does it for the
    server process; app_from_environment() for each of `--workers N`)."""
    global _limits
    _limits = Limits(request_timeout=settings.request_timeout_seconds)


def current_limits() -> Limits:
    if _limits is None:
        from echopilot.config import load_settings

        configure(load_settings())
    assert _limits is not None
    return _limits


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Every uvicorn option EchoPilot uses but the address (host and port)."""
    configure(settings)
    proxies = list(settings.trusted_proxy_list)
    return {
        "http": EchoPilotProtocol,
        "ws": "none",  # no WebSocket routes: upgrade requests are plain HTTP requests
        # X-Forwarded-For / -Proto are believed only from the proxies the owner names;
        # passing the list keeps uvicorn from reading FORWARDED_ALLOW_IPS.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or [],
        "server_header": False,
        "date_header": True,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "limit_concurrency": LIMIT_CONCURRENCY,
    }


def edge_answer(
    status: int,
    code: str,
    message: str,
    default_headers: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A whole HTTP/1.1 answer with the JSON envelope, the security headers and
    `connection: close`."""
    body = json.dumps(
        {"ok": False, "data": None, "error": {"code": code, "message": message}}
    ).encode()
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        NO_STORE,
        *SECURITY_HEADERS,
        *(extra or []),
        (b"connection", b"close"),
    ]
    head = [STATUS_LINE[status]]
    for name, value in headers:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", body])


class _Refused(Exception):
    """Raised in a parser callback to stop parsing and answer `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class EchoPilotProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head, a request deadline and JSON
    answers of its own (see the module's docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = current_limits()
        self._timeout = limits.request_timeout
        self._max_head = limits.max_head_bytes
        self._max_fields = limits.max_header_fields
        # uvicorn's own 503 is plain text: this class answers it (on_headers_complete).
        self._concurrency_limit, self.limit_concurrency = self.limit_concurrency, None
        self._in_head = True  # the parser is reading a request line and headers
        self._head_received = 0  # bytes fed while reading this head (an upper bound)
        self._head_size = 0  # bytes of this head's request line and complete headers
        self._fields = 0
        self._begun = False  # a byte of the current request has been parsed
        # Chunked bodies end in trailer fields, which the parser buffers like headers: bytes
        # fed after a chunk header that brought no data are counted as trailers.
        self._awaiting_chunk_data = False
        self._trailer_received = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._closing = False  # answered at the edge: discarding input until closed
        # Refused over capacity (answered already): the rest of the request is skipped.
        self._refusing = False
        self._keep_alive_after_refusal = True
        self._linger: asyncio.TimerHandle | None = None

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # answered already: discard
        self._unset_keepalive_if_required()
        if self._in_head and self._deadline is None:
            self._arm()  # the next request on a kept-alive connection
        view = memoryview(data)
        while view:
            if self._in_head:
                room = self._max_head - self._head_received
                if room <= 0:
                    self._refuse_head()
                    return
                piece = view[:room]
                self._head_received += len(piece)
            else:
                # Bodies are fed in head-sized pieces too, so that what follows a request
                # (a pipelined head, trailers) is never more than that before it is counted.
                piece = view[: self._max_head]
            view = view[len(piece) :]
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # No WebSocket (or other) upgrades here: the request was a plain one.
                log.info("upgrade request from %s served as plain HTTP", self._peer())
                return
            except httptools.HttpParserError as exc:
                refused = exc.__context__
                if isinstance(refused, _Refused):
                    log.info("%s from %s: %s", refused.status, self._peer(), refused.message)
                    self._answer_and_close(refused.status, refused.code, refused.message)
                else:
                    self.send_400_response(str(exc) or "Invalid HTTP request received.")
                return
            if self._closing or self.transport.is_closing():
                return
            if not self._in_head and self._awaiting_chunk_data:
                # An upper bound (the piece may have begun with the last chunk's data),
                # hence the allowance of two heads.
                self._trailer_received += len(piece)
                if self._trailer_received > 2 * self._max_head:
                    log.info("431 to %s: trailers over the limit", self._peer())
                    self._answer_and_close(
                        431,
                        "headers_too_large",
                        f"trailer fields over {self._max_head} bytes; send smaller ones",
                    )
                    return

    def send_400_response(self, msg: str) -> None:
        """The answer to a request that cannot be parsed (`msg`: the parser's reason), in
        the envelope with the security headers."""
        reason = msg.rstrip(".")
        log.info("400 to %s: %s", self._peer(), reason)
        self._answer_and_close(400, "bad_request", f"invalid HTTP request ({reason})")

    # Parser callbacks

    def on_message_begin(self) -> None:
        # A request pipelined behind a refused one is no idle connection.
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._begun = True
        self._head_size = REQUEST_LINE_OVERHEAD
        self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self._max_head:
            raise self._head_too_large()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_size += len(name) + len(value) + 4
        if self._fields > self._max_fields:
            raise _Refused(
                431,
                "headers_too_large",
                f"more than {self._max_fields} header fields; send fewer",
            )
        if self._head_size > self._max_head:
            raise self._head_too_large()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        limit = self._concurrency_limit
        refusal = None
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            log.warning("over the concurrency limit (%s): answering 503", limit)
            refusal = _unavailable
        elif self._over_capacity():
            if self._refusable_here():
                self._refuse_here()
                return
            # A body to read, or behind an answer still being written: through uvicorn.
            refusal = _overloaded
        if refusal is None:
            super().on_headers_complete()
            return
        app, self.app = self.app, refusal
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def _refusable_here(self) -> bool:
        """Whether the 503 can be written straight away: nothing of an earlier request is
        still being answered, and no body follows (whose reading uvicorn must manage)."""
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return False
        return True

    def _refuse_here(self) -> None:
        """The cheapest refusal: the answer written here, with no app and no task at all."""
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() == "1.1"
        self._refusing = True
        self._keep_alive_after_refusal = keep_alive
        defaults = self.server_state.default_headers  # the date, as uvicorn sends it
        head_only = self.parser.get_method() == b"HEAD"
        self.transport.write(
            b"".join(
                [
                    _OVERLOADED_STATUS,
                    *(name + b": " + value + b"\r\n" for name, value in defaults),
                    b"" if keep_alive else b"connection: close\r\n",
                    _OVERLOADED_HEAD_ONLY if head_only else _OVERLOADED_REST,
                ]
            )
        )

    def _over_capacity(self) -> bool:
        """Whether the app's thread pool is too far behind for this request: then it is
        refused here, before any of the app runs (refusals must cost little: at three
        times the capacity there are two of them for each request served)."""
        admission = pool.current
        if admission is None or not self.url.startswith(SHED_PREFIXES_BYTES):
            return False
        if not admission.full():
            return False
        admission.refuse("busy")
        return True

    def on_chunk_header(self) -> None:
        self._awaiting_chunk_data = True

    def on_body(self, body: bytes) -> None:
        self._awaiting_chunk_data = False
        self._trailer_received = 0
        if not self._refusing:
            super().on_body(body)

    def on_chunk_complete(self) -> None:
        self._awaiting_chunk_data = False

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_received = 0
        self._begun = False
        self._awaiting_chunk_data = False
        self._trailer_received = 0
        if not self._refusing:
            super().on_message_complete()
            return
        self._refusing = False
        if not self._keep_alive_after_refusal:
            self._close_gracefully()
            return
        self.flow.resume_reading()
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    # The deadline

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self._closing or self.transport.is_closing():
            return
        if self._refusing:  # answered 503 already; the rest of the request never came
            self._close_quietly()
            return
        if not self._begun and self._in_head:
            self._close_quietly()  # nothing of a request came: no answer, just close
            return
        log.info("408 to %s: request not complete in %ss", self._peer(), self._timeout)
        self._answer_and_close(
            408,
            "request_timeout",
            f"the request was not complete within {self._timeout:g} s; send the whole "
            "request (headers and body) promptly",
        )

    # Answers of our own

    def _head_too_large(self) -> _Refused:
        return _Refused(
            431,
            "headers_too_large",
            f"request line and headers over {self._max_head} bytes; send smaller headers",
        )

    def _refuse_head(self) -> None:
        refused = self._head_too_large()
        log.info("431 to %s: %s", self._peer(), refused.message)
        self._answer_and_close(refused.status, refused.code, refused.message)

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        """Answer `status` unless an answer has begun on this connection; then stop
        reading the request, cut the app off from it, and close."""
        self._disarm()
        cycle = self.cycle
        if self._in_head:  # the cycle, if any, is the previous request's
            can_answer = cycle is None or cycle.response_complete
        else:  # the cycle is this request's
            can_answer = cycle is not None and not cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() gets http.disconnect
            cycle.keep_alive = False
            cycle.message_event.set()
        if not can_answer:
            self._close_quietly()
            return
        extra = [(b"retry-after", b"1")] if status == 503 else None
        self.transport.write(
            edge_answer(status, code, message, self.server_state.default_headers, extra)
        )
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        self._closing = True
        self.flow.resume_reading()  # keep reading (and discarding) until closed
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_SECONDS, self._close_quietly)
        else:
            self.transport.close()

    def _close_quietly(self) -> None:
        self._closing = True
        if not self.transport.is_closing():
            self.transport.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else "unknown"


_OVERLOADED_BODY = json.dumps(
    {
        "ok": False,
        "data": None,
        "error": {
            "code": "overloaded",
            "message": f"the server is busy; retry in {RETRY_AFTER_SECONDS} s",
        },
    }
).encode()
_OVERLOADED_HEAD = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    NO_STORE,
    *SECURITY_HEADERS,
]


_OVERLOADED_STATUS = STATUS_LINE[503]
_OVERLOADED_HEAD_ONLY = b"".join(
    [*(name + b": " + value + b"\r\n" for name, value in _OVERLOADED_HEAD), b"\r\n"]
)
_OVERLOADED_REST = _OVERLOADED_HEAD_ONLY + _OVERLOADED_BODY


async def _overloaded(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The answer over capacity, in the envelope, the connection kept open."""
    await send({"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEAD})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})


async def _unavailable(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The answer over the concurrency limit, in the envelope with the security headers."""
    body = json.dumps(
        {
            "ok": False,
            "data": None,
            "error": {
                "code": "service_unavailable",
                "message": "the server is at its limit of open connections; retry shortly",
            },
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                NO_STORE,
                *SECURITY_HEADERS,
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
