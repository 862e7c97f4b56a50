"""A fake Notion API on 127.0.0.1, for the real `notion-client` SDK (3.x).

It speaks the part of Notion's API version 2025-09-03 that EchoPilot uses, the way Notion
does: JSON bodies, a bearer integration token (401 ``unauthorized`` when it is wrong), the
``Notion-Version`` header, errors as ``{"object": "error", "status", "code", "message",
"request_id"}`` (which the SDK turns into ``APIResponseError`` with ``.code``, ``.status`` and
``.headers``), databases that hold data sources, and pages whose properties follow their data
source's schema:

    GET   /v1/databases/{id}              GET  /v1/data_sources/{id}
    POST  /v1/data_sources/{id}/query     (filter, sorts, start_cursor, page_size <= 100)
    GET   /v1/pages/{id}                  PATCH /v1/pages/{id}    POST /v1/pages
    GET   /v1/users/me

As Notion does, it reports ``created_time`` and ``last_edited_time`` rounded down to the
minute, returns every property of the schema on every page (empty when unset), creates a
select option the first time a page names it, and refuses with 400 ``validation_error``
(naming the property) an unknown property, a value of the wrong type, a text over 2000
characters (counted as JavaScript does, in UTF-16 code units), more than 100 rich text items
and a select name with a comma. Queries return the pages of a data source oldest first
(``created_time``, then id), filtered by checkbox, number, select, status, text and date
conditions and ``and``/``or`` of them.

The server starts with two databases, each with one data source: the task queue
(`queue_schema`) and the job log (`joblog_schema`). Its clock is the test's (``clock=``), so
Notion's troubles can be played without sleeping: ``lag(seconds)`` makes reads serve a page's
previous version for a while after each write (pages keep every version with the time it
becomes visible), ``rate_limit(n)`` answers 429 with ``Retry-After``, ``fail(n, 500)`` server
errors, ``deny(403)`` refuses everything until ``deny(None)``, ``fail_path`` fails chosen
requests, ``lose_answer`` does a request but drops the connection before answering, and
``stop()``/``start()`` refuse connections on the same port meanwhile. Tests play the user
with ``add_page``, ``tick``, ``edit`` and ``trash``, and read what Notion holds with ``page``,
``pages``, ``joblog_rows`` and ``writes``. Every request is recorded (``requests``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cmp_to_key
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

NOTION_VERSION = "2025-09-03"
TOKEN = "ntn_fake_4Xq9LmT2vR7cW1pZ8kD3nB6yH0sJ5gF2aE9uQ4rVt"
PAGE_SIZE_MAX = 100
TEXT_MAX = 2000  # characters of one rich text item's content (UTF-16 code units)
RICH_TEXT_ITEMS_MAX = 100
URL_MAX = 2000
OPTION_NAME_MAX = 100

TYPES = frozenset(
    {
        "title",
        "rich_text",
        "checkbox",
        "select",
        "status",
        "number",
        "email",
        "url",
        "phone_number",
        "date",
    }
)
TEXT_TYPES = frozenset({"title", "rich_text"})
STRING_TYPES = frozenset({"email", "url", "phone_number"})
COLORS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")

QUEUE_STATUSES = ("Processing", "Done", "Waiting Human", "Failed")
TASK_TYPES = ("Research", "Drafting", "Data-transform", "Transcription", "Other")
OPTIONS: dict[str, tuple[str, ...]] = {"Status": QUEUE_STATUSES, "Task Type": TASK_TYPES}

_QUEUE_SCHEMA: dict[str, str] = {
    "Name": "title",
    "Trigger": "checkbox",
    "Status": "select",
    "Task Type": "select",
    "Description": "rich_text",
    "QA Target": "number",
    "Client Email": "email",
    "Result Summary": "rich_text",
    "QA Score": "number",
    "Cost": "number",
    "Job ID": "number",
}
_JOBLOG_SCHEMA: dict[str, str] = {
    "Name": "title",
    "Job ID": "number",
    "Status": "select",
    "Task Type": "select",
    "QA Score": "number",
    "Cost": "number",
    "Price": "number",
    "Finished": "date",
    "Queue Page": "url",
}

_SHARE_HINT = "Make sure the relevant pages and databases are shared with your integration."
_USER_ID = "4f1c2b9e-7d3a-4e51-9a7c-1b2d3e4f5a6b"  # the person editing in Notion's app
_BOT_ID = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # the integration


def queue_schema(**changes: str | None) -> dict[str, str]:
    """The task queue's schema (property name -> type) with `changes`: None removes a
    property, a type changes or adds one. An underscore in a key stands for a space when that
    names an existing property (``Task_Type="rich_text"``); ``**{"Name": ...}`` works too."""
    return _changed(_QUEUE_SCHEMA, changes)


def joblog_schema(**changes: str | None) -> dict[str, str]:
    """The job log's schema with `changes`, as `queue_schema`."""
    return _changed(_JOBLOG_SCHEMA, changes)


def _changed(base: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    schema = dict(base)
    for key, kind in changes.items():
        name = _property_name(schema, key)
        if kind is None:
            schema.pop(name, None)
        elif kind not in TYPES:
            raise ValueError(f"the fake knows no property type {kind!r} (it knows {sorted(TYPES)})")
        else:
            schema[name] = kind
    return schema


def _property_name(names: dict[str, Any], key: str) -> str:
    """`key` as a property name: itself, or with underscores as spaces if that one exists."""
    if key in names:
        return key
    spaced = key.replace("_", " ")
    return spaced if spaced in names else key


def notion_time(moment: datetime) -> str:
    """A time as Notion reports created_time/last_edited_time: UTC, rounded down to the
    minute ("2026-12-04T10:15:00.000Z")."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _js_length(text: str) -> int:
    """The length JavaScript sees (UTF-16 code units): an emoji counts 2."""
    return len(text.encode("utf-16-le")) // 2


def _shown(value: Any) -> str:
    """A value as Notion quotes it in a validation message."""
    return "`" + json.dumps(value, ensure_ascii=False) + "`"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_when(text: Any) -> tuple[datetime, bool] | None:
    """An ISO 8601 date or datetime as an aware UTC datetime, and whether it was a date
    only; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC), False


def _date_text(text: str) -> str:
    """A date property's start/end as Notion returns it: a date as given, a datetime with
    milliseconds and its offset ("2026-12-04T10:15:00.000+00:00")."""
    if len(text) == 10:
        return text
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.strftime("%z") or "+0000"
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{moment.microsecond // 1000:03d}{offset[:3]}:{offset[3:]}"


def _rich_text(content: str, link: str | None = None, annotations: Any = None) -> dict[str, Any]:
    """One rich text item as Notion returns it."""
    marks: dict[str, Any] = {
        "bold": False,
        "italic": False,
        "strikethrough": False,
        "underline": False,
        "code": False,
        "color": "default",
    }
    if isinstance(annotations, dict):
        marks.update({k: v for k, v in annotations.items() if k in marks})
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": link} if link else None},
        "annotations": marks,
        "plain_text": content,
        "href": link,
    }


def _empty(kind: str) -> Any:
    if kind in TEXT_TYPES:
        return []
    if kind == "checkbox":
        return False
    return None


def _simple(kind: str, value: Any) -> Any:
    """A stored property value as a plain Python value (text, bool, option name...)."""
    if kind in TEXT_TYPES:
        return "".join(item["plain_text"] for item in value or [])
    if kind in ("select", "status"):
        return value["name"] if value else None
    if kind == "date":
        return value["start"] if value else None
    return value


class NotionError(Exception):
    """An error answer, in Notion's shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "object": "error",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": str(uuid.uuid4()),
        }


def _invalid(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def _body_invalid(path: str, should: str, value: Any) -> NotionError:
    return _invalid(
        f"body failed validation: {path} should be {should}, instead was {_shown(value)}."
    )


def _not_found(kind: str, object_id: str) -> NotionError:
    return NotionError(
        404, "object_not_found", f"Could not find {kind} with ID: {object_id}. {_SHARE_HINT}"
    )


def _status_error(status: int, retry_after: int = 1) -> NotionError:
    """The answer Notion gives with `status` when something goes wrong on its side (or on
    the caller's, for 401/403/404/409/429)."""
    if status == 429:
        return NotionError(
            429,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
            {"Retry-After": str(retry_after)},
        )
    if status == 503:
        return NotionError(
            503,
            "service_unavailable",
            "Public API service is temporarily unavailable, please try again later.",
        )
    if status == 504:
        return NotionError(504, "gateway_timeout", "Gateway timed out.")
    if status >= 500:
        return NotionError(status, "internal_server_error", "Unexpected error occurred.")
    if status == 401:
        return NotionError(401, "unauthorized", "API token is invalid.")
    if status == 403:
        return NotionError(
            403, "restricted_resource", "Insufficient permissions for this endpoint."
        )
    if status == 404:
        return NotionError(404, "object_not_found", f"Could not find object. {_SHARE_HINT}")
    if status == 409:
        return NotionError(
            409,
            "conflict_error",
            "Conflict occurred while saving. Please try again.",
        )
    return NotionError(status, "invalid_request", "This request is not supported.")


@dataclass
class Seen:
    """One request as the fake received it. `status` is what it answered (or, when the
    answer was lost, would have answered); `at` is time.monotonic() at arrival and `now`
    the fake's clock then."""

    method: str
    path: str
    body: Any
    at: float
    now: datetime
    headers: dict[str, str]
    status: int = 0
    lost: bool = False


@dataclass
class _Property:
    id: str
    name: str
    type: str
    options: list[dict[str, str]] = field(default_factory=list)

    def config(self) -> dict[str, Any]:
        if self.type == "select":
            return {"options": copy.deepcopy(self.options)}
        if self.type == "status":
            return {
                "options": copy.deepcopy(self.options),
                "groups": [
                    {
                        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.id + "group")),
                        "name": "To-do",
                        "color": "gray",
                        "option_ids": [o["id"] for o in self.options],
                    }
                ],
            }
        if self.type == "number":
            return {"format": "number"}
        return {}

    def option(self, name: str) -> dict[str, str] | None:
        return next((o for o in self.options if o["name"] == name), None)


@dataclass
class _DataSource:
    id: str
    database_id: str
    name: str
    properties: dict[str, _Property]
    created: datetime

    def find(self, key: str) -> _Property | None:
        """A property by its name or its id (Notion takes either)."""
        found = self.properties.get(key)
        if found is None:
            found = next((p for p in self.properties.values() if p.id == key), None)
        return found


@dataclass
class _Database:
    id: str
    title: str
    data_source_ids: list[str]
    created: datetime


@dataclass
class _Version:
    values: dict[str, Any]  # property name -> the value as Notion returns it
    edited: datetime
    visible_from: datetime
    in_trash: bool = False


@dataclass
class _Page:
    id: str
    data_source_id: str
    database_id: str
    created: datetime
    versions: list[_Version]

    @property
    def true(self) -> _Version:
        return self.versions[-1]

    def visible(self, now: datetime) -> _Version | None:
        """What reads see at `now`: the newest version visible by then."""
        return next((v for v in reversed(self.versions) if v.visible_from <= now), None)


@dataclass
class _Rule:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    remaining: int
    hang: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and self.pattern.fullmatch(path) is not None
        )


Predicate = Callable[[_Page, _Version], bool]
Row = tuple[_Page, _Version]


class NotionServer:
    """The fake Notion API (see the module docstring); `with NotionServer() as fake:`."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        queue_schema: dict[str, str] | None = None,
        joblog_schema: dict[str, str] | None = None,
    ) -> None:
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.requests: list[Seen] = []
        self.user_edits_lag = False  # whether add_page/tick/edit/trash lag like API writes
        self._lock = threading.RLock()
        self._lag = timedelta(0)
        self._rate_limited = 0
        self._retry_after = 1
        self._failing = 0
        self._fail_status = 500
        self._denied: int | None = None
        self._path_faults: list[_Rule] = []
        self._losses: list[_Rule] = []
        self._databases: dict[str, _Database] = {}
        self._sources: dict[str, _DataSource] = {}
        self._pages: dict[str, _Page] = {}
        self._cursors: dict[str, tuple[str, str, list[Any]]] = {}
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()  # kept-alive connections, closed by stop()
        self.queue_db_id, self.queue_ds_id = self._database(
            "EchoPilot Queue", _QUEUE_SCHEMA if queue_schema is None else queue_schema
        )
        self.joblog_db_id, self.joblog_ds_id = self._database(
            "EchoPilot Job Log", _JOBLOG_SCHEMA if joblog_schema is None else joblog_schema
        )

    def _database(self, title: str, schema: dict[str, str]) -> tuple[str, str]:
        titles = [name for name, kind in schema.items() if kind == "title"]
        if len(titles) != 1:
            raise ValueError(f"a Notion data source has exactly one title property, not {titles}")
        now = self._now()
        db_id, ds_id = str(uuid.uuid4()), str(uuid.uuid4())
        properties: dict[str, _Property] = {}
        used: set[str] = set()
        for name, kind in schema.items():
            if kind not in TYPES:
                raise ValueError(f"the fake knows no property type {kind!r}")
            prop_id = "title" if kind == "title" else _short_id(used)
            used.add(prop_id)
            prop = _Property(prop_id, name, kind)
            if kind in ("select", "status"):
                for i, option in enumerate(OPTIONS.get(name, ())):
                    prop.options.append(
                        {"id": str(uuid.uuid4()), "name": option, "color": COLORS[i % 10]}
                    )
            properties[name] = prop
        self._databases[db_id] = _Database(db_id, title, [ds_id], now)
        self._sources[ds_id] = _DataSource(ds_id, db_id, title, properties, now)
        return db_id, ds_id

    # ---- the server ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """What `Client(base_url=...)` takes (the SDK adds /v1/)."""
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> NotionServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> NotionServer:
        """Listen (on a free port the first time, then on the same one again)."""
        if self._server is not None:
            return self
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY each answer
            # waits ~40 ms for the client's delayed ACK (Nagle), which is not Notion's cost.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._open.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._open.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_POST(self) -> None:
                outer._handle(self, "POST")

            def do_PATCH(self) -> None:
                outer._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                outer._handle(self, "DELETE")

            def do_PUT(self) -> None:
                outer._handle(self, "PUT")

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            open_now, self._open = list(self._open), set()
        for conn in open_now:  # a kept-alive connection would still be answered
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # ---- Notion's troubles -----------------------------------------------------------

    def lag(self, seconds: float, *, user_edits: bool | None = None) -> None:
        """From now on a write to a page (and a new page, for queries) becomes visible to
        reads only `seconds` later on the clock; 0 ends it. `user_edits=True` makes the
        user's edits (add_page, tick, edit, trash) lag too."""
        with self._lock:
            self._lag = timedelta(seconds=seconds)
            if user_edits is not None:
                self.user_edits_lag = user_edits

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        """The next `times` requests answer 429 rate_limited with Retry-After."""
        with self._lock:
            self._rate_limited = times
            self._retry_after = retry_after

    def fail(self, times: int, status: int = 500) -> None:
        """The next `times` requests answer `status` (500 internal_server_error, 503
        service_unavailable, 504 gateway_timeout, other 5xx internal_server_error)."""
        with self._lock:
            self._failing = times
            self._fail_status = status

    def deny(self, status: int | None) -> None:
        """Every request answers `status` (401 unauthorized, 403 restricted_resource, 404
        object_not_found naming the database) until `deny(None)`."""
        if status not in (None, 401, 403, 404):
            raise ValueError("deny() takes 401, 403, 404 or None")
        with self._lock:
            self._denied = status

    def fail_path(self, method: str | None, path_regex: str, status: int, times: int = 1) -> None:
        """The next `times` requests of `method` (None: any) whose path fully matches
        `path_regex` (e.g. "/v1/pages", "/v1/pages/.+") answer `status` without being
        done. Checked before rate_limit/fail/deny."""
        with self._lock:
            self._path_faults.append(_Rule(method, re.compile(path_regex), status, times))

    def lose_answer(
        self, method: str | None, path_regex: str, times: int = 1, *, hang: float = 0.0
    ) -> None:
        """The next `times` such requests are done, but the connection is closed without an
        answer (after `hang` real seconds, to reach a client's timeout)."""
        with self._lock:
            self._losses.append(_Rule(method, re.compile(path_regex), 0, times, hang))

    # ---- what the tests read ---------------------------------------------------------

    def seen(self, method: str | None = None, path_regex: str | None = None) -> list[Seen]:
        """Requests received, optionally of one method and a path fully matching a regex."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_regex is None or re.fullmatch(path_regex, r.path))
            ]

    def writes(self, page_id: str) -> list[Seen]:
        """The PATCHes received for a page (whatever they were answered)."""
        path = f"/v1/pages/{_uuid(page_id)}"
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "PATCH" and r.path.replace("-", "") == path.replace("-", "")
            ]

    def page(self, page_id: str) -> dict[str, Any]:
        """A page as Notion truly holds it now (its newest version, whatever reads see):
        property name -> plain value, with its id, created_time, last_edited_time and
        in_trash."""
        with self._lock:
            page = self._pages[_uuid(page_id) or page_id]
            return self._plain(page, page.true)

    def pages(self) -> list[dict[str, Any]]:
        """Every queue page (newest versions, plain values), in the order they were made."""
        return self._rows(self.queue_ds_id)

    def joblog_rows(self) -> list[dict[str, Any]]:
        """Every job log page (newest versions, plain values), in the order they were made."""
        return self._rows(self.joblog_ds_id)

    def _rows(self, ds_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._plain(p, p.true) for p in self._pages.values() if p.data_source_id == ds_id
            ]

    def _plain(self, page: _Page, version: _Version) -> dict[str, Any]:
        ds = self._sources[page.data_source_id]
        plain: dict[str, Any] = {
            name: _simple(prop.type, version.values.get(name, _empty(prop.type)))
            for name, prop in ds.properties.items()
        }
        plain.update(
            id=page.id,
            created_time=notion_time(page.created),
            last_edited_time=notion_time(version.edited),
            in_trash=version.in_trash,
        )
        return plain

    # ---- the user's side: edits made in Notion's app ---------------------------------

    def add_page(
        self,
        title: str,
        *,
        trigger: bool = True,
        task_type: str | None = "Research",
        description: str = "Research the topic and write a one-page summary with sources.",
        qa_target: float | None = None,
        client_email: str | None = None,
        status: str | None = None,
        **other_properties: Any,
    ) -> str:
        """A user adds a task to the queue (visible at once unless `user_edits_lag`);
        returns its page id. Defaults for properties the schema lacks are left out;
        `other_properties` name properties as `queue_schema` keys do."""
        ds = self._sources[self.queue_ds_id]
        title_name = next(n for n, p in ds.properties.items() if p.type == "title")
        given: dict[str, Any] = {title_name: title}
        defaults = {
            "Trigger": (trigger, trigger is True),
            "Task Type": (task_type, task_type in ("Research", None)),
            "Description": (description, True),
            "QA Target": (qa_target, qa_target is None),
            "Client Email": (client_email, client_email is None),
            "Status": (status, status is None),
        }
        for name, (value, is_default) in defaults.items():
            if name in ds.properties:
                given[name] = value
            elif not is_default:
                raise KeyError(f"the queue's schema has no {name!r} property")
        for key, value in other_properties.items():
            given[_property_name(ds.properties, key)] = value
        with self._lock:
            now = self._now()
            values = self._plain_values(ds, given)
            visible = now + self._lag if self.user_edits_lag else now
            page = _Page(
                str(uuid.uuid4()), ds.id, ds.database_id, now, [_Version(values, now, visible)]
            )
            self._pages[page.id] = page
            return page.id

    def tick(self, page_id: str, value: bool = True) -> None:
        """The user ticks (or unticks) the page's Trigger checkbox."""
        self.edit(page_id, Trigger=value)

    def edit(self, page_id: str, **properties: Any) -> None:
        """The user changes properties of a page (plain values: text, bool, number, option
        name, ISO date, None): a new version, edited now."""
        with self._lock:
            page = self._pages[_uuid(page_id) or page_id]
            ds = self._sources[page.data_source_id]
            given = {_property_name(ds.properties, k): v for k, v in properties.items()}
            self._user_version(page, self._plain_values(ds, given), page.true.in_trash)

    def trash(self, page_id: str, in_trash: bool = True) -> None:
        """The user deletes the page (moves it to the trash), or restores it."""
        with self._lock:
            page = self._pages[_uuid(page_id) or page_id]
            self._user_version(page, {}, in_trash)

    def _user_version(self, page: _Page, changes: dict[str, Any], in_trash: bool) -> None:
        now = self._now()
        values = {**copy.deepcopy(page.true.values), **changes}
        visible = now + self._lag if self.user_edits_lag else now
        page.versions.append(_Version(values, now, visible, in_trash))

    def _plain_values(self, ds: _DataSource, given: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in given.items():
            prop = ds.properties.get(name)
            if prop is None:
                raise KeyError(f"{name!r} is not a property of {ds.name!r}")
            values[name] = self._from_plain(prop, value)
        return values

    @staticmethod
    def _from_plain(prop: _Property, value: Any) -> Any:
        kind = prop.type
        if kind in TEXT_TYPES:
            return [_rich_text(str(value))] if value else []
        if kind == "checkbox":
            return bool(value)
        if kind in ("select", "status"):
            if value is None:
                return None
            option = prop.option(str(value))
            if option is None:
                option = {
                    "id": str(uuid.uuid4()),
                    "name": str(value),
                    "color": COLORS[len(prop.options) % 10],
                }
                prop.options.append(option)
            return dict(option)
        if kind == "date":
            if value is None:
                return None
            text = value.isoformat() if isinstance(value, date) else str(value)
            return {"start": _date_text(text), "end": None, "time_zone": None}
        return value

    # ---- the API ---------------------------------------------------------------------

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        with self._lock:
            now = self._now()
            seen = Seen(
                method=method,
                path=path,
                body=body,
                at=time.monotonic(),
                now=now,
                headers={k.lower(): v for k, v in handler.headers.items()},
            )
            self.requests.append(seen)
            fault = self._fault(method, path, body)
        lost: _Rule | None = None
        try:
            if fault is not None:
                raise fault
            if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise _status_error(401)
            if not handler.headers.get("Notion-Version"):
                raise NotionError(
                    400,
                    "missing_version",
                    "Notion-Version header failed validation: Notion-Version header should "
                    "be defined, instead was `undefined`.",
                )
            with self._lock:
                lost = next((r for r in self._losses if r.matches(method, path)), None)
                if lost is not None:
                    lost.remaining -= 1
                if bad_json:
                    raise NotionError(400, "invalid_json", "Error parsing JSON body.")
                status, answer, headers = 200, self._route(method, path, body, now), {}
        except NotionError as exc:
            status, answer, headers = exc.status, exc.body(), exc.headers
        seen.status = status
        if lost is not None:  # done at Notion; the answer never arrives
            seen.lost = True
            if lost.hang:
                time.sleep(lost.hang)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(answer).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-notion-request-id", str(uuid.uuid4()))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fault(self, method: str, path: str, body: Any) -> NotionError | None:
        """The scripted trouble this request meets, if any (counts are used up)."""
        rule = next((r for r in self._path_faults if r.matches(method, path)), None)
        if rule is not None:
            rule.remaining -= 1
            return _status_error(rule.status, self._retry_after)
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return _status_error(429, self._retry_after)
        if self._failing > 0:
            self._failing -= 1
            return _status_error(self._fail_status)
        if self._denied == 404:
            return self._denied_not_found(method, path, body)
        if self._denied is not None:
            return _status_error(self._denied)
        return None

    def _denied_not_found(self, method: str, path: str, body: Any) -> NotionError:
        """404 as Notion answers once the integration lost access: naming the database for
        database and data source requests (and page creations in one), else the page."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        object_id = parts[2] if len(parts) > 2 else ""
        if parts[1:2] == ["databases"]:
            return _not_found("database", object_id)
        if parts[1:2] == ["data_sources"]:
            ds = self._sources.get(_uuid(object_id) or "")
            return _not_found("database", ds.database_id if ds else object_id)
        if parts[1:2] == ["pages"] and method == "POST" and len(parts) == 2:
            parent = body.get("parent") if isinstance(body, dict) else None
            parent = parent if isinstance(parent, dict) else {}
            ds = self._sources.get(_uuid(str(parent.get("data_source_id"))) or "")
            db_id = ds.database_id if ds else str(parent.get("database_id") or "")
            return _not_found("database", db_id)
        if parts[1:2] == ["pages"]:
            return _not_found("page", object_id)
        return _status_error(404)

    def _route(self, method: str, path: str, body: Any, now: datetime) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] != ["v1"] or len(parts) < 2:
            raise NotionError(400, "invalid_request_url", "Invalid request URL.")
        resource, rest = parts[1], parts[2:]
        if method in ("POST", "PATCH") and not isinstance(body, dict):
            if body is None:
                body = {}
            else:
                raise _body_invalid("body", "an object", body)
        if resource == "databases" and method == "GET" and len(rest) == 1:
            return self._get_database(_path_id(rest[0], "database_id"))
        if resource == "data_sources" and method == "GET" and len(rest) == 1:
            return self._get_data_source(_path_id(rest[0], "data_source_id"))
        if resource == "data_sources" and method == "POST" and rest[1:] == ["query"]:
            return self._query(_path_id(rest[0], "data_source_id"), body, now)
        if resource == "pages" and method == "GET" and len(rest) == 1:
            page = self._page(_path_id(rest[0], "page_id"))
            return self._page_json(page, page.visible(now) or page.versions[0])
        if resource == "pages" and method == "PATCH" and len(rest) == 1:
            return self._update_page(_path_id(rest[0], "page_id"), body, now)
        if resource == "pages" and method == "POST" and not rest:
            return self._create_page(body, now)
        if resource == "users" and method == "GET" and rest == ["me"]:
            return {
                "object": "user",
                "id": _BOT_ID,
                "type": "bot",
                "name": "EchoPilot",
                "avatar_url": None,
                "bot": {"owner": {"type": "workspace", "workspace": True}},
                "request_id": str(uuid.uuid4()),
            }
        raise NotionError(400, "invalid_request_url", "Invalid request URL.")

    def _page(self, page_id: str) -> _Page:
        page = self._pages.get(page_id)
        if page is None:
            raise _not_found("page", page_id)
        return page

    def _source(self, ds_id: str) -> _DataSource:
        ds = self._sources.get(ds_id)
        if ds is None:
            raise _not_found("data source", ds_id)
        return ds

    def _get_database(self, db_id: str) -> dict[str, Any]:
        db = self._databases.get(db_id)
        if db is None:
            raise _not_found("database", db_id)
        return {
            "object": "database",
            "id": db.id,
            "title": [_rich_text(db.title)],
            "description": [],
            "icon": None,
            "cover": None,
            "parent": {"type": "workspace", "workspace": True},
            "is_inline": False,
            "is_locked": False,
            "archived": False,
            "in_trash": False,
            "created_time": notion_time(db.created),
            "last_edited_time": notion_time(db.created),
            "data_sources": [
                {"id": ds_id, "name": self._sources[ds_id].name} for ds_id in db.data_source_ids
            ],
            "url": f"https://www.notion.so/{uuid.UUID(db.id).hex}",
            "public_url": None,
            "request_id": str(uuid.uuid4()),
        }

    def _get_data_source(self, ds_id: str) -> dict[str, Any]:
        ds = self._source(ds_id)
        return {
            "object": "data_source",
            "id": ds.id,
            "created_time": notion_time(ds.created),
            "last_edited_time": notion_time(ds.created),
            "created_by": {"object": "user", "id": _USER_ID},
            "last_edited_by": {"object": "user", "id": _USER_ID},
            "title": [_rich_text(ds.name)],
            "description": [],
            "icon": None,
            "cover": None,
            "parent": {"type": "database_id", "database_id": ds.database_id},
            "database_parent": {"type": "workspace", "workspace": True},
            "is_inline": False,
            "archived": False,
            "in_trash": False,
            "properties": {
                name: {"id": p.id, "name": name, "type": p.type, p.type: p.config()}
                for name, p in ds.properties.items()
            },
            "url": f"https://www.notion.so/{uuid.UUID(ds.id).hex}",
            "public_url": None,
            "request_id": str(uuid.uuid4()),
        }

    def _page_json(self, page: _Page, version: _Version) -> dict[str, Any]:
        ds = self._sources[page.data_source_id]
        properties = {
            name: {
                "id": prop.id,
                "type": prop.type,
                prop.type: copy.deepcopy(version.values.get(name, _empty(prop.type))),
            }
            for name, prop in ds.properties.items()
        }
        return {
            "object": "page",
            "id": page.id,
            "created_time": notion_time(page.created),
            "last_edited_time": notion_time(version.edited),
            "created_by": {"object": "user", "id": _USER_ID},
            "last_edited_by": {"object": "user", "id": _USER_ID},
            "cover": None,
            "icon": None,
            "parent": {
                "type": "data_source_id",
                "data_source_id": page.data_source_id,
                "database_id": page.database_id,
            },
            "archived": version.in_trash,
            "in_trash": version.in_trash,
            "is_locked": False,
            "properties": properties,
            "url": f"https://www.notion.so/{uuid.UUID(page.id).hex}",
            "public_url": None,
        }

    # ---- writes ----------------------------------------------------------------------

    def _create_page(self, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise _body_invalid("body.parent", "an object", parent)
        if "data_source_id" in parent:
            ds = self._source(_body_id(parent["data_source_id"], "body.parent.data_source_id"))
        elif "database_id" in parent:
            db_id = _body_id(parent["database_id"], "body.parent.database_id")
            db = self._databases.get(db_id)
            if db is None:
                raise _not_found("database", db_id)
            if len(db.data_source_ids) != 1:
                raise _invalid(
                    f"Database with ID {db_id} has multiple data sources. Provide a "
                    "data_source_id parent instead."
                )
            ds = self._sources[db.data_source_ids[0]]
        else:
            raise _body_invalid(
                "body.parent.data_source_id", "defined", parent.get("data_source_id")
            )
        values = self._request_values(ds, body.get("properties", {}))
        page = _Page(
            str(uuid.uuid4()),
            ds.id,
            ds.database_id,
            now,
            [_Version(values, now, now + self._lag)],
        )
        self._pages[page.id] = page
        return self._page_json(page, page.true)

    def _update_page(self, page_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        page = self._page(page_id)
        ds = self._sources[page.data_source_id]
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise _body_invalid("body.in_trash", "a boolean", trash)
        in_trash = page.true.in_trash if trash is None else trash
        if page.true.in_trash and in_trash and body.get("properties"):
            raise _invalid(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        changes = self._request_values(ds, body.get("properties", {}))
        if not changes and trash is None:
            return self._page_json(page, page.true)
        values = {**copy.deepcopy(page.true.values), **changes}
        page.versions.append(_Version(values, now, now + self._lag, in_trash))
        return self._page_json(page, page.true)

    def _request_values(self, ds: _DataSource, given: Any) -> dict[str, Any]:
        """Property values from a request, checked as Notion checks them (all first: a
        request with one bad value changes nothing), as Notion will return them."""
        if not isinstance(given, dict):
            raise _body_invalid("body.properties", "an object", given)
        values: dict[str, Any] = {}
        new_options: list[tuple[_Property, dict[str, str]]] = []
        for key, raw in given.items():
            prop = ds.find(key)
            if prop is None:
                raise _invalid(f"{key} is not a property that exists.")
            values[prop.name] = self._request_value(prop, raw, new_options)
        for prop, option in new_options:
            if prop.option(option["name"]) is None:
                prop.options.append(option)
        return values

    @staticmethod
    def _request_value(
        prop: _Property, raw: Any, new_options: list[tuple[_Property, dict[str, str]]]
    ) -> Any:
        name, kind = prop.name, prop.type
        where = f"body.properties.{name}"
        if not isinstance(raw, dict):
            raise _body_invalid(where, "an object", raw)
        keys = [k for k in raw if k not in ("type", "id")]
        given_type = raw.get("type", keys[0] if len(keys) == 1 else None)
        if given_type not in TYPES or given_type not in raw:
            raise _body_invalid(f"{where}.{kind}", "defined", None)
        if given_type != kind:
            raise _invalid(f"{name} is expected to be {kind}.")
        value = raw[kind]
        where = f"{where}.{kind}"
        if kind in TEXT_TYPES:
            return _request_rich_text(value, where)
        if kind == "checkbox":
            if not isinstance(value, bool):
                raise _body_invalid(where, "a boolean", value)
            return value
        if kind == "number":
            if value is not None and not _is_number(value):
                raise _body_invalid(where, "a number or `null`", value)
            return value
        if kind in STRING_TYPES:
            if value is not None and not isinstance(value, str):
                raise _body_invalid(where, "a string or `null`", value)
            if kind == "url" and value is not None and _js_length(value) > URL_MAX:
                raise _body_invalid(f"{where}.length", f"≤ `{URL_MAX}`", _js_length(value))
            return value
        if kind == "date":
            return _request_date(value, where)
        return _request_option(prop, value, where, new_options)

    # ---- queries ---------------------------------------------------------------------

    def _query(self, ds_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        ds = self._source(ds_id)
        size = body.get("page_size", PAGE_SIZE_MAX)
        if not isinstance(size, int) or isinstance(size, bool):
            raise _body_invalid("body.page_size", "a number", size)
        if size > PAGE_SIZE_MAX:
            raise _body_invalid("body.page_size", f"≤ `{PAGE_SIZE_MAX}`", size)
        if size < 1:
            raise _body_invalid("body.page_size", "≥ `1`", size)
        flt = body.get("filter")
        predicate = _compile_filter(ds, flt, "body.filter") if flt is not None else None
        sorts = body.get("sorts") or []
        keyer = _compile_sorts(ds, sorts)
        rows: list[tuple[list[Any], Row]] = []
        for page in self._pages.values():
            version = page.visible(now)
            if page.data_source_id != ds.id or version is None or version.in_trash:
                continue
            if predicate is None or predicate(page, version):
                rows.append((keyer(page, version), (page, version)))
        rows.sort(key=cmp_to_key(_compare_rows))
        start = 0
        cursor = body.get("start_cursor")
        if cursor is not None:
            known = self._cursors.get(cursor) if isinstance(cursor, str) else None
            if known is None or known[:2] != (ds.id, json.dumps(sorts, sort_keys=True)):
                raise _invalid(f"The start_cursor provided is invalid: {cursor}")
            start = next(
                (i for i, r in enumerate(rows) if _compare(r[0], known[2]) >= 0), len(rows)
            )
        chosen = rows[start : start + size]
        more = len(rows) > start + size
        next_cursor = None
        if more:
            next_cursor = str(uuid.uuid4())
            key = rows[start + size][0]
            self._cursors[next_cursor] = (ds.id, json.dumps(sorts, sort_keys=True), key)
        return {
            "object": "list",
            "results": [self._page_json(page, version) for _, (page, version) in chosen],
            "next_cursor": next_cursor,
            "has_more": more,
            "type": "page_or_data_source",
            "page_or_data_source": {},
            "request_id": str(uuid.uuid4()),
        }


def _short_id(used: set[str]) -> str:
    while True:
        candidate = uuid.uuid4().hex[:4]
        if candidate not in used:
            return candidate


def _uuid(text: str) -> str | None:
    """A Notion id (with or without dashes) in its dashed form; None if it is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _path_id(text: str, name: str) -> str:
    found = _uuid(text)
    if found is None:
        raise _invalid(
            f"path failed validation: path.{name} should be a valid uuid, instead was "
            f"{_shown(text)}."
        )
    return found


def _body_id(value: Any, where: str) -> str:
    found = _uuid(value) if isinstance(value, str) else None
    if found is None:
        raise _body_invalid(where, "a valid uuid", value)
    return found


def _request_rich_text(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _body_invalid(where, "an array", value)
    if len(value) > RICH_TEXT_ITEMS_MAX:
        raise _body_invalid(f"{where}.length", f"≤ `{RICH_TEXT_ITEMS_MAX}`", len(value))
    items = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type", "text") != "text":
            raise _body_invalid(f"{at}.text", "defined", None)  # only text items, here
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            content = text.get("content") if isinstance(text, dict) else text
            raise _body_invalid(f"{at}.text.content", "a string", content)
        content = text["content"]
        if _js_length(content) > TEXT_MAX:
            raise _body_invalid(f"{at}.text.content.length", f"≤ `{TEXT_MAX}`", _js_length(content))
        link = text.get("link")
        url = link.get("url") if isinstance(link, dict) else None
        if link is not None and not isinstance(url, str):
            raise _body_invalid(f"{at}.text.link.url", "a string", url)
        if url is not None and _js_length(url) > URL_MAX:
            raise _body_invalid(f"{at}.text.link.url.length", f"≤ `{URL_MAX}`", _js_length(url))
        items.append(_rich_text(content, url, item.get("annotations")))
    return items


def _request_date(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _body_invalid(where, "an object or `null`", value)
    start, end = value.get("start"), value.get("end")
    if _parse_when(start) is None:
        raise _body_invalid(f"{where}.start", "a valid ISO 8601 date string", start)
    if end is not None and _parse_when(end) is None:
        raise _body_invalid(f"{where}.end", "a valid ISO 8601 date string or `null`", end)
    return {
        "start": _date_text(str(start)),
        "end": _date_text(end) if end is not None else None,
        "time_zone": value.get("time_zone"),
    }


def _request_option(
    prop: _Property,
    value: Any,
    where: str,
    new_options: list[tuple[_Property, dict[str, str]]],
) -> dict[str, str] | None:
    """A select or status value: an existing option by name or id, or (select only) a new
    option Notion creates."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _body_invalid(where, "an object or `null`", value)
    name, option_id = value.get("name"), value.get("id")
    if name is None and option_id is not None:
        found = next((o for o in prop.options if o["id"] == option_id), None)
        if found is None:
            raise _invalid(f"Invalid {prop.type} option id for {prop.name}: {option_id}")
        return dict(found)
    if not isinstance(name, str):
        raise _body_invalid(f"{where}.name", "a string", name)
    if _js_length(name) > OPTION_NAME_MAX:
        raise _body_invalid(f"{where}.name.length", f"≤ `{OPTION_NAME_MAX}`", _js_length(name))
    if "," in name:
        raise _invalid(f"Invalid select option for {prop.name}, commas not allowed: {name}")
    found = prop.option(name)
    if found is not None:
        return dict(found)
    if prop.type == "status":
        raise _invalid(f'Invalid status option. Status option "{name}" does not exist.')
    pending = next((o for p, o in new_options if p is prop and o["name"] == name), None)
    if pending is None:
        color = value.get("color")
        pending = {
            "id": str(uuid.uuid4()),
            "name": name,
            "color": color if color in COLORS else COLORS[len(prop.options) % 10],
        }
        new_options.append((prop, pending))
    return dict(pending)


# ---- filters and sorts -------------------------------------------------------------

_TEXT_OPS = frozenset(
    {
        "equals",
        "does_not_equal",
        "contains",
        "does_not_contain",
        "starts_with",
        "ends_with",
        "is_empty",
        "is_not_empty",
    }
)
_NUMBER_OPS = frozenset(
    {
        "equals",
        "does_not_equal",
        "greater_than",
        "less_than",
        "greater_than_or_equal_to",
        "less_than_or_equal_to",
        "is_empty",
        "is_not_empty",
    }
)
_DATE_OPS = frozenset(
    {"equals", "before", "after", "on_or_before", "on_or_after", "is_empty", "is_not_empty"}
)
_OPS: dict[str, frozenset[str]] = {
    "title": _TEXT_OPS,
    "rich_text": _TEXT_OPS,
    "email": _TEXT_OPS,
    "url": _TEXT_OPS,
    "phone_number": _TEXT_OPS,
    "number": _NUMBER_OPS,
    "checkbox": frozenset({"equals", "does_not_equal"}),
    "select": frozenset({"equals", "does_not_equal", "is_empty", "is_not_empty"}),
    "status": frozenset({"equals", "does_not_equal", "is_empty", "is_not_empty"}),
    "date": _DATE_OPS,
}


def _compile_filter(ds: _DataSource, flt: Any, where: str) -> Predicate:
    """A filter as a test of a page version; its mistakes raise at once, as Notion does
    even when nothing would match."""
    if not isinstance(flt, dict):
        raise _body_invalid(where, "an object", flt)
    for joint in ("and", "or"):
        if joint in flt:
            parts = flt[joint]
            if not isinstance(parts, list):
                raise _body_invalid(f"{where}.{joint}", "an array", parts)
            tests = [_compile_filter(ds, p, f"{where}.{joint}[{i}]") for i, p in enumerate(parts)]
            if joint == "and":
                return lambda page, v: all(t(page, v) for t in tests)
            return lambda page, v: any(t(page, v) for t in tests)
    if "timestamp" in flt:
        stamp = flt["timestamp"]
        if stamp not in ("created_time", "last_edited_time"):
            raise _body_invalid(f"{where}.timestamp", '"created_time" or "last_edited_time"', stamp)
        test = _condition("date", flt.get(stamp), f"{where}.{stamp}")

        def timestamp(page: _Page, version: _Version) -> bool:
            moment = page.created if stamp == "created_time" else version.edited
            return test(_minute(moment))

        return timestamp
    key = flt.get("property")
    if not isinstance(key, str):
        raise _body_invalid(f"{where}.property", "a string", key)
    prop = ds.find(key)
    if prop is None:
        raise _invalid(f"Could not find property with name or id: {key}")
    kinds = [k for k in flt if k in _OPS]
    if len(kinds) != 1:
        raise _body_invalid(f"{where}.{prop.type}", "defined", None)
    kind = kinds[0]
    compatible = kind == prop.type or {kind, prop.type} <= TEXT_TYPES
    if not compatible:
        raise _invalid(
            f"body failed validation: {where}.{kind} is not a filter for property "
            f'"{prop.name}" of type {prop.type}.'
        )
    test = _condition(prop.type, flt[kind], f"{where}.{kind}")
    name = prop.name

    def on_property(page: _Page, version: _Version) -> bool:
        value = version.values.get(name, _empty(prop.type))
        if prop.type == "date":
            when = _parse_when(value["start"]) if value else None
            return test(when[0] if when else None)
        return test(_simple(prop.type, value))

    return on_property


def _condition(kind: str, cond: Any, where: str) -> Callable[[Any], bool]:
    """One condition ({"equals": x}) on a plain value of a property of type `kind`."""
    if not isinstance(cond, dict) or len(cond) != 1:
        raise _body_invalid(where, "an object with one condition", cond)
    ((op, operand),) = cond.items()
    if op not in _OPS[kind]:
        raise _invalid(f"body failed validation: {where}.{op} is not a condition for {kind}.")
    at = f"{where}.{op}"
    if op in ("is_empty", "is_not_empty"):
        if operand is not True:
            raise _body_invalid(at, "`true`", operand)
        empty = op == "is_empty"
        return lambda v: (v is None or v == "") == empty
    if kind == "checkbox":
        if not isinstance(operand, bool):
            raise _body_invalid(at, "a boolean", operand)
        return lambda v: (v == operand) == (op == "equals")
    if kind == "number":
        if not _is_number(operand):
            raise _body_invalid(at, "a number", operand)
        compare: dict[str, Callable[[Any], bool]] = {
            "equals": lambda v: v is not None and v == operand,
            "does_not_equal": lambda v: v is None or v != operand,
            "greater_than": lambda v: v is not None and v > operand,
            "less_than": lambda v: v is not None and v < operand,
            "greater_than_or_equal_to": lambda v: v is not None and v >= operand,
            "less_than_or_equal_to": lambda v: v is not None and v <= operand,
        }
        return compare[op]
    if kind == "date":
        parsed = _parse_when(operand)
        if parsed is None:
            raise _body_invalid(at, "a valid ISO 8601 date string", operand)
        bound, day_only = parsed

        def on_date(v: Any) -> bool:
            if v is None:
                return False
            a, b = (v.date(), bound.date()) if day_only else (v, bound)
            outcome: bool = {
                "equals": a == b,
                "before": a < b,
                "after": a > b,
                "on_or_before": a <= b,
                "on_or_after": a >= b,
            }[op]
            return outcome

        return on_date
    if not isinstance(operand, str):
        raise _body_invalid(at, "a string", operand)
    if kind in ("select", "status"):
        return lambda v: (v == operand) == (op == "equals")
    needle = operand.lower()
    text_tests: dict[str, Callable[[Any], bool]] = {
        "equals": lambda v: (v or "") == operand,
        "does_not_equal": lambda v: (v or "") != operand,
        "contains": lambda v: needle in (v or "").lower(),
        "does_not_contain": lambda v: needle not in (v or "").lower(),
        "starts_with": lambda v: (v or "").lower().startswith(needle),
        "ends_with": lambda v: (v or "").lower().endswith(needle),
    }
    return text_tests[op]


def _compile_sorts(ds: _DataSource, sorts: Any) -> Callable[[_Page, _Version], list[Any]]:
    """The order of query results as a key per row: the sorts asked for, then created_time
    (as reported, to the minute) and id, ascending. A key is a list of (value, descending)."""
    if not isinstance(sorts, list):
        raise _body_invalid("body.sorts", "an array", sorts)
    parts: list[tuple[str, str, bool]] = []  # (timestamp | "property", name, descending)
    for i, sort in enumerate(sorts):
        where = f"body.sorts[{i}]"
        if not isinstance(sort, dict):
            raise _body_invalid(where, "an object", sort)
        direction = sort.get("direction", "ascending")
        if direction not in ("ascending", "descending"):
            raise _body_invalid(f"{where}.direction", '"ascending" or "descending"', direction)
        if "timestamp" in sort:
            stamp = sort["timestamp"]
            if stamp not in ("created_time", "last_edited_time"):
                raise _body_invalid(
                    f"{where}.timestamp", '"created_time" or "last_edited_time"', stamp
                )
            parts.append((stamp, "", direction == "descending"))
            continue
        named = sort.get("property")
        prop = ds.find(named) if isinstance(named, str) else None
        if prop is None:
            raise _invalid(f"Could not find sort property with name or id: {named}")
        parts.append(("property", prop.name, direction == "descending"))

    def key(page: _Page, version: _Version) -> list[Any]:
        out: list[Any] = []
        for what, name, descending in parts:
            if what == "created_time":
                value: Any = notion_time(page.created)
            elif what == "last_edited_time":
                value = notion_time(version.edited)
            else:
                prop = ds.properties[name]
                stored = version.values.get(name, _empty(prop.type))
                value = _simple(prop.type, stored)
                if prop.type in ("select", "status") and value is not None:
                    value = [o["name"] for o in prop.options].index(value)
                if value == "":
                    value = None
            out.append([value, descending])
        out.append([notion_time(page.created), False])
        out.append([page.id, False])
        return out

    return key


def _compare_rows(a: tuple[list[Any], Row], b: tuple[list[Any], Row]) -> int:
    return _compare(a[0], b[0])


def _compare(a: list[Any], b: list[Any]) -> int:
    """Order two sort keys; empty values go last whatever the direction, as in Notion."""
    for (x, descending), (y, _) in zip(a, b, strict=False):
        if x == y:
            continue
        if x is None:
            return 1
        if y is None:
            return -1
        result = -1 if x < y else 1
        return -result if descending else result
    return 0
