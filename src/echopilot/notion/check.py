"""The connector's start-up check: the token works, the databases are shared with the
integration, and their properties are the ones EchoPilot reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from echopilot.config import Settings
from echopilot.notion import schema
from echopilot.notion.gateway import Gateway
from echopilot.notion.schema import Layout

QUEUE = "the queue database (NOTION_QUEUE_DB_ID)"
JOBLOG = "the Job Log database (NOTION_JOBLOG_DB_ID)"


@dataclass
class Found:
    """What a check found: the data sources and layouts, or the problems."""

    queue_source: str | None = None
    joblog_source: str | None = None
    queue: Layout | None = None
    joblog: Layout | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.queue is not None


def _source(gateway: Gateway, database_id: str, label: str, what: str, found: Found) -> str | None:
    database = gateway.database(database_id, what=what)
    sources = database.get("data_sources") or []
    if len(sources) != 1:
        names = ", ".join(repr(s.get("name") or s.get("id")) for s in sources) or "none"
        found.problems.append(
            f"the {label} database has {len(sources)} data sources ({names}); EchoPilot "
            "reads a database with exactly one"
        )
        return None
    return str(sources[0]["id"])


def run(settings: Settings, gateway: Gateway) -> Found:
    """Check both databases; raises the gateway's Denied or Unreachable as they come."""
    found = Found()
    assert settings.notion_queue_db_id is not None
    found.queue_source = _source(gateway, settings.notion_queue_db_id, "queue", QUEUE, found)
    if found.queue_source is not None:
        props: dict[str, Any] = gateway.source(found.queue_source, what=QUEUE)["properties"]
        found.queue, problems = schema.check(
            "queue", props, schema.QUEUE_REQUIRED, schema.QUEUE_OPTIONAL
        )
        found.problems += problems
    if settings.notion_joblog_db_id is not None:
        found.joblog_source = _source(
            gateway, settings.notion_joblog_db_id, "Job Log", JOBLOG, found
        )
        if found.joblog_source is not None:
            props = gateway.source(found.joblog_source, what=JOBLOG)["properties"]
            found.joblog, problems = schema.check(
                "Job Log", props, schema.JOBLOG_REQUIRED, schema.JOBLOG_OPTIONAL
            )
            found.problems += problems
    return found


def describe(found: Found, checked_at: datetime) -> dict[str, Any]:
    return {
        "ok": found.ok,
        "checked_at": checked_at.isoformat(),
        "problems": found.problems,
        "queue": found.queue.as_dict() if found.queue else None,
        "joblog": found.joblog.as_dict() if found.joblog else None,
    }
