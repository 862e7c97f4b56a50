"""The calls EchoPilot makes to Notion, through the official `notion-client` library.

Calls are paced under Notion's limit (an average of 3 requests per second per
integration), a 429 waits as long as its Retry-After says, and a server error or a
connection that broke is tried again with backoff, but only for reads and page updates,
which are safe to repeat; a page creation is never repeated here (its caller looks for the
row before it asks again). What is left comes out as one of four errors, none of which
carries the token:

- `Unreachable`: Notion could not be asked or did not answer usefully; try again later.
- `Denied`: Notion refused the token or the database (401, 403, 404 on a database): the
  connector stops until a person fixes it.
- `Gone`: one page is no longer there for the integration (404 on a page).
- `Invalid`: Notion refused one request's content (400): that page's write is wrong.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from notion_client import Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError

from echopilot.clock import utcnow
from echopilot.config import Settings

log = logging.getLogger(__name__)
SDK_LOG = logging.getLogger("echopilot.notion.sdk")

PAGE_SIZE = 100
TRIES = 5  # per call, counting the first
MAX_RETRY_AFTER = 60.0  # seconds; a longer wait ends this run, the next one asks again
MAX_MESSAGE = 300


class Unreachable(Exception):
    """Notion did not answer usefully (network, timeout, 5xx, 429 for too long)."""


class Denied(Exception):
    """Notion refused the token or the database: a person must act."""


class Gone(Exception):
    """The page is not there for the integration (deleted, or no longer shared)."""


class Invalid(Exception):
    """Notion refused the request's content (a property value, a limit)."""


@dataclass
class Timer:
    """The connector's clock and its way to wait; tests give both a settable clock."""

    now: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = time.sleep

    def seconds(self) -> float:
        return self.now().timestamp()


@dataclass
class Pace:
    """Requests spaced to at most `rate` per second on average, across threads."""

    rate: float
    timer: Timer
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> None:
        with self._lock:
            now = self.timer.seconds()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        if start > now:
            self.timer.sleep(start - now)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:MAX_MESSAGE]


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(raw) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


class Gateway:
    """A Notion client built from the settings. `what` names, in every error, the database
    a call concerns (for example "the queue database (NOTION_QUEUE_DB_ID)")."""

    def __init__(
        self, settings: Settings, *, timer: Timer | None = None, tries: int = TRIES
    ) -> None:
        if settings.notion_token is None:
            raise Denied("the Notion connector is off: set NOTION_TOKEN")
        self.timer = timer or Timer()
        self.tries = tries
        self.pace = Pace(settings.notion_requests_per_second, self.timer)
        options: dict[str, Any] = {
            "auth": settings.notion_token.get_secret_value(),
            "timeout_ms": int(settings.notion_timeout_seconds * 1000),
            # Retries are ours: paced, with Retry-After honoured in full, on our clock.
            "retry": False,
            # Our own logger: without one, every Client adds a handler to the SDK's shared
            # logger (a leak in a long-running scheduler). We log failures ourselves.
            "logger": SDK_LOG,
            "log_level": logging.ERROR,
        }
        if settings.notion_api_base:
            options["base_url"] = settings.notion_api_base
        self._client = Client(**options)
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    def _call(
        self, fn: Callable[[], Any], *, what: str, page: bool = False, repeatable: bool = True
    ) -> Any:
        delay = 1.0
        for attempt in range(1, self.tries + 1):
            last = attempt == self.tries
            self.pace.wait()
            self.requests += 1
            try:
                return fn()
            except HTTPResponseError as exc:
                status, code = exc.status, str(exc.code)
                message = _one_line(exc)
                if status == 429:
                    wait = _retry_after(exc.headers, self.timer.now())
                    wait = delay if wait is None else wait
                    if last or wait > MAX_RETRY_AFTER:
                        raise Unreachable(
                            f"Notion is rate limiting (asked to wait {wait:.0f} s)"
                        ) from None
                    log.info("notion: 429, waiting %.1f s as Retry-After asks", wait)
                    self.timer.sleep(wait)
                    continue
                if status in (401, 403) or (status == 404 and not page):
                    raise Denied(_denied(status, what, message)) from None
                if status == 404:
                    raise Gone(f"the page is not there for the integration: {message}") from None
                if status >= 500 or code == "conflict_error":
                    if repeatable and not last:
                        self.timer.sleep(_jitter(delay))
                        delay *= 2
                        continue
                    raise Unreachable(f"Notion answered {status} ({code}): {message}") from None
                raise Invalid(f"Notion refused the request ({status} {code}): {message}") from None
            except (RequestTimeoutError, httpx.HTTPError) as exc:
                reason = (
                    "timed out"
                    if isinstance(exc, RequestTimeoutError | httpx.TimeoutException)
                    else _one_line(exc) or type(exc).__name__
                )
                if repeatable and not last:
                    self.timer.sleep(_jitter(delay))
                    delay *= 2
                    continue
                raise Unreachable(f"Notion unreachable: {reason}") from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def database(self, database_id: str, *, what: str) -> dict[str, Any]:
        return dict(self._call(lambda: self._client.databases.retrieve(database_id), what=what))

    def source(self, source_id: str, *, what: str) -> dict[str, Any]:
        return dict(self._call(lambda: self._client.data_sources.retrieve(source_id), what=what))

    def query(self, source_id: str, flt: dict[str, Any], *, what: str) -> Iterator[dict[str, Any]]:
        """Every page matching `flt`, all pages of results."""
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"filter": flt, "page_size": PAGE_SIZE}
            if cursor:
                body["start_cursor"] = cursor
            ask = functools.partial(self._client.data_sources.query, source_id, **body)
            answer = self._call(ask, what=what)
            yield from answer.get("results") or []
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return

    def page(self, page_id: str, *, what: str) -> dict[str, Any]:
        return dict(self._call(lambda: self._client.pages.retrieve(page_id), what=what, page=True))

    def update(self, page_id: str, properties: dict[str, Any], *, what: str) -> dict[str, Any]:
        return dict(
            self._call(
                lambda: self._client.pages.update(page_id, properties=properties),
                what=what,
                page=True,
            )
        )

    def create(self, source_id: str, properties: dict[str, Any], *, what: str) -> dict[str, Any]:
        parent = {"type": "data_source_id", "data_source_id": source_id}
        return dict(
            self._call(
                lambda: self._client.pages.create(parent=parent, properties=properties),
                what=what,
                repeatable=False,
            )
        )


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.8, 1.2)


def _denied(status: int, what: str, message: str) -> str:
    if status == 401:
        return f"Notion refused the token (NOTION_TOKEN) for {what}: {message}"
    if status == 403:
        return f"the integration may not do this in {what} (403): {message}"
    return (
        f"{what} was not found (404): share the database with the integration "
        f"(in Notion: ... > Connections) or fix the id; {message}"
    )
