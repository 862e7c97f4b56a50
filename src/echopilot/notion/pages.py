"""Notion pages as EchoPilot reads them, and the properties it writes back.

Notion's limits shape what is written: one text item holds at most 2,000 characters, so a
result summary is cut there with a note that the whole result is in EchoPilot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from echopilot.jobs.status import Status
from echopilot.notion import schema as sc
from echopilot.notion.schema import Layout

TEXT_LIMIT = 2000  # characters in one Notion rich text item

# How a job's status shows in the queue's Status select ("Waiting Human" is the original's
# name for a job below its QA target, waiting for a person).
PROCESSING, DONE, WAITING, FAILED = "Processing", "Done", "Waiting Human", "Failed"
_SHOWN = {
    Status.QUEUED: PROCESSING,
    Status.PROCESSING: PROCESSING,
    Status.FAILED: PROCESSING,  # failed here means "will retry"
    Status.DONE: DONE,
    Status.NEEDS_REVIEW: WAITING,
    Status.DEAD: FAILED,
    Status.CANCELLED: FAILED,
}
FINAL = frozenset({Status.DONE, Status.DEAD, Status.CANCELLED})


def shown_status(status: str) -> str:
    return _SHOWN[Status(status)]


def is_final(status: str) -> bool:
    return Status(status) in FINAL


@dataclass(frozen=True)
class Task:
    """A ticked queue page, read."""

    page_id: str
    edited_at: datetime
    title: str
    trigger: bool
    status: str | None
    task_type: str | None
    description: str
    qa_target: float | None
    client_email: str | None


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def plain(value: dict[str, Any]) -> Any:
    """A property value (as Notion returns it) as a plain Python value."""
    kind = value.get("type")
    data = value.get(kind) if isinstance(kind, str) else None
    if kind in ("title", "rich_text"):
        return "".join(str(item.get("plain_text") or "") for item in data or [])
    if kind == "select":
        return data.get("name") if isinstance(data, dict) else None
    if kind == "date":
        return data.get("start") if isinstance(data, dict) else None
    return data


def read_task(page: dict[str, Any], layout: Layout) -> Task:
    props = page.get("properties") or {}

    def value(name: str) -> Any:
        found = props.get(name)
        return plain(found) if isinstance(found, dict) else None

    qa = value(sc.QA_TARGET) if layout.has(sc.QA_TARGET) else None
    email = value(sc.CLIENT_EMAIL) if layout.has(sc.CLIENT_EMAIL) else None
    return Task(
        page_id=str(page["id"]),
        edited_at=parse_time(str(page["last_edited_time"])),
        title=str(value(layout.title) or "").strip(),
        trigger=bool(value(sc.TRIGGER)),
        status=value(sc.STATUS),
        task_type=value(sc.TASK_TYPE),
        description=str(value(sc.DESCRIPTION) or ""),
        qa_target=qa if isinstance(qa, int | float) else None,
        client_email=str(email).strip() or None if email else None,
    )


def text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": content}}] if content else []


def summary(result: str | None, job_id: int, *, note: str | None = None) -> str:
    """What the Result Summary shows: the result, cut to Notion's limit with a pointer to
    the whole of it."""
    body = (note + "\n\n" if note else "") + (result or "").strip()
    if len(body) <= TEXT_LIMIT:
        return body
    tail = f"\n\n[cut at {TEXT_LIMIT:,} characters; the full result is job {job_id} in EchoPilot]"
    return body[: TEXT_LIMIT - len(tail)].rstrip() + tail


def _usd(micros: int) -> float:
    return float(Decimal(micros) / Decimal(1_000_000))


@dataclass(frozen=True)
class Outcome:
    """What the queue page should show for a job (or for a page refused before any job)."""

    status: str  # the Notion Status
    final: bool
    job_id: int | None = None
    result: str | None = None
    note: str | None = None
    qa_score: float | None = None
    cost_micros: int | None = None


def queue_properties(outcome: Outcome, layout: Layout) -> dict[str, Any]:
    props: dict[str, Any] = {
        sc.STATUS: {"select": {"name": outcome.status}},
        sc.TRIGGER: {"checkbox": False},
    }
    if outcome.job_id is not None and layout.has(sc.JOB_ID):
        props[sc.JOB_ID] = {"number": outcome.job_id}
    if not outcome.final:
        return props
    if layout.has(sc.RESULT_SUMMARY):
        body = summary(outcome.result, outcome.job_id or 0, note=outcome.note)
        props[sc.RESULT_SUMMARY] = {"rich_text": text(body)}
    if layout.has(sc.QA_SCORE):
        props[sc.QA_SCORE] = {"number": outcome.qa_score}
    if layout.has(sc.COST) and outcome.cost_micros is not None:
        props[sc.COST] = {"number": _usd(outcome.cost_micros)}
    return props


def shows(page: dict[str, Any], status: str, written_at: datetime) -> bool:
    """Whether a page read back shows a write of `status` (with Trigger unticked); a page
    ticked again by a person after the write counts as showing it."""
    props = page.get("properties") or {}
    found = props.get(sc.STATUS)
    if not isinstance(found, dict) or plain(found) != status:
        return False
    trigger = props.get(sc.TRIGGER)
    if isinstance(trigger, dict) and plain(trigger):
        edited = parse_time(str(page.get("last_edited_time")))
        return edited > written_at.replace(second=0, microsecond=0)
    return True


@dataclass(frozen=True)
class LogEntry:
    job_id: int
    title: str
    status: str
    task_type: str
    qa_score: float | None
    cost_micros: int
    price_cents: int | None
    finished_at: datetime | None
    page_url: str | None


def joblog_properties(entry: LogEntry, layout: Layout) -> dict[str, Any]:
    props: dict[str, Any] = {
        layout.title: {"title": text(f"Job {entry.job_id}: {entry.title}"[:TEXT_LIMIT])},
        sc.JOB_ID: {"number": entry.job_id},
    }
    optional: dict[str, Any] = {
        sc.STATUS: {"select": {"name": entry.status}},
        sc.TASK_TYPE: {"select": {"name": entry.task_type.replace(",", " ")}},
        sc.QA_SCORE: {"number": entry.qa_score},
        sc.COST: {"number": _usd(entry.cost_micros)},
        "Price": {
            "number": None if entry.price_cents is None else float(Decimal(entry.price_cents) / 100)
        },
        "Finished": {
            "date": {"start": entry.finished_at.isoformat()} if entry.finished_at else None
        },
        "Queue Page": {"url": entry.page_url},
    }
    props.update({name: value for name, value in optional.items() if layout.has(name)})
    return props
