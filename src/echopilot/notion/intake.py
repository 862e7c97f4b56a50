"""Ticked queue pages become jobs, each exactly once.

A page version is known by its id and the edit time Notion reports for it. Notion can
serve a stale copy of a page for a while after EchoPilot wrote to it (the original saw
over 90 s), still ticked; that copy carries the old edit time, which is already recorded,
so it makes no second job. A person ticking the page again later changes the edit time,
and that is a new request. Notion reports edit times to the minute: a page ticked again
within the same minute as EchoPilot's own write looks like the version already taken, and
is taken once it is edited in a later minute.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, NotionPage, NotionState
from echopilot.errors import InputError
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.notion import schema as sc
from echopilot.notion import state
from echopilot.notion.check import QUEUE
from echopilot.notion.gateway import Gateway
from echopilot.notion.pages import Task, read_task
from echopilot.notion.schema import Layout
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

TICKED = {"property": sc.TRIGGER, "checkbox": {"equals": True}}


@dataclass
class Taken:
    seen: int = 0  # ticked pages read
    jobs: list[int] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    already: int = 0  # taken before (a stale read, or not yet unticked)


def _known(session: Session, task: Task) -> bool:
    newest = session.scalar(
        select(NotionPage.edited_at)
        .where(NotionPage.page_id == task.page_id)
        .order_by(NotionPage.edited_at.desc())
        .limit(1)
    )
    return newest is not None and newest >= task.edited_at


def _request(task: Task) -> JobRequest:
    qa = task.qa_target
    if qa is not None and qa != int(qa):
        raise InputError("QA Target", f"must be a whole number from 0 to 100 (got {qa})")
    return JobRequest(
        name=task.title or f"Notion page {task.page_id[:8]}",
        task_type=task.task_type or "",
        input=task.description,
        client_email=task.client_email,
        qa_target=None if qa is None else int(qa),
        source="notion",
        external_id=task.page_id,
    )


def _named(error: InputError) -> str:
    """An input error in the words of the Notion page's properties."""
    names = {
        "name": "the title",
        "task_type": sc.TASK_TYPE,
        "input": sc.DESCRIPTION,
        "client": sc.CLIENT_EMAIL,
        "qa_target": sc.QA_TARGET,
    }
    return f"{names.get(error.field, error.field)} {error.reason}"


def take(
    runtime: Runtime, gateway: Gateway, source_id: str, layout: Layout, now: datetime
) -> Taken:
    taken = Taken()
    for page in gateway.query(source_id, TICKED, what=QUEUE):
        task = read_task(page, layout)
        taken.seen += 1
        if not task.trigger:
            continue  # a filter answer older than the page (lag): nothing asked
        with read_session(runtime.sessions) as session:
            if _known(session, task):
                taken.already += 1
                continue
        row = NotionPage(
            page_id=task.page_id,
            edited_at=task.edited_at,
            taken_at=now,
            title=(task.title or task.page_id)[:200],
            updated_at=now,
        )
        try:
            job = intake.submit(
                runtime,
                _request(task),
                actor="notion",
                now=now,
                also=functools.partial(_link, row=row),
            )
            taken.jobs.append(job.id)
        except InputError as exc:
            row.refused = f"Not run: {_named(exc)}."
            if _record(runtime, row):
                taken.refused.append({"page_id": task.page_id, "why": row.refused})
        except IntegrityError:
            taken.already += 1  # another poll took this version a moment ago
    return taken


def _link(session: Session, job: Job, *, row: NotionPage) -> None:
    row.job_id = job.id
    session.add(row)
    session.flush()  # the unique page version is checked here, with the job at stake
    _count(session)


def _record(runtime: Runtime, row: NotionPage) -> bool:
    try:
        with write_session(runtime.sessions) as session:
            session.add(row)
            session.flush()
            _count(session)
        return True
    except IntegrityError:
        return False


def _count(session: Session) -> None:
    """One more page taken, counted with the page's own record (nothing counted twice)."""
    session.execute(
        update(NotionState)
        .where(NotionState.id == state.ROW)
        .values(pages_taken=NotionState.pages_taken + 1)
    )
