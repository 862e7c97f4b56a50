"""Jobs in and out of the queue by hand: submit, retry, cancel.

Each function validates first and writes nothing when input is bad (InputError names the
field). The row is committed before its id is enqueued, so a crash between the two leaves
a queued job that the recovery sweep enqueues later: nothing is lost.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from echopilot import audit
from echopilot.clock import utcnow
from echopilot.db.engine import write_session
from echopilot.db.models import Client, Job, TaskType
from echopilot.errors import ConflictError, InputError, NotFoundError
from echopilot.jobs.status import RETRYABLE, Status, change, record_created
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

SOURCES = ("api", "cli", "notion", "demo")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME = 200
PRIORITY_RANGE = (-100, 100)


@dataclass(frozen=True)
class JobRequest:
    name: str
    task_type: str
    input: str
    client_email: str | None = None
    qa_target: int | None = None
    priority: int = 0
    source: str = "cli"
    external_id: str | None = None


def validate(request: JobRequest, *, max_input_chars: int) -> None:
    """Raise InputError naming the first bad field."""
    if not request.name or not request.name.strip():
        raise InputError("name", "must not be empty")
    if len(request.name) > MAX_NAME:
        raise InputError("name", f"must be at most {MAX_NAME} characters")
    if not request.input or not request.input.strip():
        raise InputError("input", "must not be empty")
    if len(request.input) > max_input_chars:
        raise InputError(
            "input", f"is {len(request.input):,} characters; the limit is {max_input_chars:,}"
        )
    if request.qa_target is not None and not 0 <= request.qa_target <= 100:
        raise InputError("qa_target", f"must be between 0 and 100 (got {request.qa_target})")
    low, high = PRIORITY_RANGE
    if not low <= request.priority <= high:
        raise InputError("priority", f"must be between {low} and {high}")
    if request.client_email is not None and not _EMAIL.match(request.client_email):
        raise InputError("client", f"{request.client_email!r} is not an email address")
    if request.source not in SOURCES:
        raise InputError("source", f"must be one of {', '.join(SOURCES)}")


def task_type_names(session: Session) -> list[str]:
    return list(
        session.scalars(select(TaskType.name).where(TaskType.active).order_by(TaskType.name))
    )


def submit(
    runtime: Runtime, request: JobRequest, *, actor: str, now: datetime | None = None
) -> Job:
    """Create a queued job and enqueue it; return the job."""
    now = now or utcnow()
    settings = runtime.settings
    validate(request, max_input_chars=settings.max_input_chars)
    with write_session(runtime.sessions) as session:
        task_type = session.get(TaskType, request.task_type)
        if task_type is None or not task_type.active:
            known = ", ".join(task_type_names(session))
            raise InputError("task_type", f"unknown type {request.task_type!r}; known: {known}")
        client = _client_for(session, request.client_email, now) if request.client_email else None
        job = Job(
            name=request.name.strip(),
            task_type=request.task_type,
            input=request.input,
            status=Status.QUEUED.value,
            priority=request.priority,
            qa_target=request.qa_target,
            client_id=client.id if client else None,
            source=request.source,
            external_id=request.external_id,
            max_attempts=settings.max_attempts,
            created_at=now,
            updated_at=now,
            enqueued_at=now,
        )
        session.add(job)
        session.flush()
        record_created(session, job, f"submitted via {request.source}")
        audit.record(
            session,
            actor=actor,
            action="job.submit",
            target=f"job:{job.id}",
            now=now,
            details={"task_type": job.task_type, "source": job.source},
        )
    _enqueue(runtime, job.id, job.priority)
    return job


def retry(runtime: Runtime, job_id: int, *, actor: str, now: datetime | None = None) -> Job:
    """Put a failed, dead, cancelled or needs-review job back on the queue with a fresh
    allowance of attempts."""
    now = now or utcnow()
    with write_session(runtime.sessions) as session:
        current = session.get(Job, job_id)
        if current is None:
            raise NotFoundError("job", job_id)
        if current.status not in RETRYABLE:
            allowed = ", ".join(sorted(RETRYABLE))
            raise ConflictError(
                f"job {job_id} is {current.status}; only {allowed} jobs can be retried"
            )
        job = change(
            session,
            job_id,
            Status.QUEUED,
            reason=f"manual retry by {actor}",
            now=now,
            max_attempts=current.attempts + runtime.settings.max_attempts,
            retry_at=None,
            error=None,
            error_kind=None,
            finished_at=None,
            enqueued_at=now,
        )
        if job is None:  # the status moved under us
            raise ConflictError(f"job {job_id} changed while retrying; try again")
        audit.record(session, actor=actor, action="job.retry", target=f"job:{job_id}", now=now)
    _enqueue(runtime, job.id, job.priority)
    return job


def cancel(runtime: Runtime, job_id: int, *, actor: str, now: datetime | None = None) -> Job:
    """Cancel a job that has not finished. A running attempt's result is then discarded."""
    now = now or utcnow()
    with write_session(runtime.sessions) as session:
        current = session.get(Job, job_id)
        if current is None:
            raise NotFoundError("job", job_id)
        job = change(
            session,
            job_id,
            Status.CANCELLED,
            reason=f"cancelled by {actor}",
            now=now,
            finished_at=now,
            lease_token=None,
            lease_until=None,
            retry_at=None,
        )
        if job is None:
            raise ConflictError(f"job {job_id} is {current.status} and can no longer be cancelled")
        audit.record(session, actor=actor, action="job.cancel", target=f"job:{job_id}", now=now)
    return job


def _client_for(session: Session, email: str, now: datetime) -> Client:
    email = email.strip().lower()
    client = session.scalars(select(Client).where(Client.email == email)).one_or_none()
    if client is not None:
        return client
    try:
        with session.begin_nested():  # a concurrent submit may create the same client
            client = Client(name=email.split("@", 1)[0], email=email, created_at=now)
            session.add(client)
    except IntegrityError:
        client = session.scalars(select(Client).where(Client.email == email)).one()
    return client


def _enqueue(runtime: Runtime, job_id: int, priority: int) -> None:
    try:
        runtime.queue.enqueue(job_id, priority=priority)
    except Exception:
        # The job is safely queued in the database; the recovery sweep will enqueue it.
        log.warning(
            "enqueue of job %s failed; the recovery sweep will retry", job_id, exc_info=True
        )
