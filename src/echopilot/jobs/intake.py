"""Jobs in and out of the queue by hand: submit, retry, cancel.

Each function validates first and writes nothing when input is bad (InputError names the
field). The row is committed before its id is enqueued, so a crash between the two leaves
a queued job that the recovery sweep enqueues later: nothing is lost.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from echopilot import audit
from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Client, Job, NotionPage, TaskType
from echopilot.db.outage import first_line, outage_of
from echopilot.errors import ConflictError, InputError, NotFoundError
from echopilot.jobs.pricing import billing_status
from echopilot.jobs.status import RETRYABLE, Status, change, record_created
from echopilot.payments import links
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

SOURCES = ("api", "cli", "notion", "demo")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SEPARATORS = re.compile(r"[\s_-]+")
MAX_NAME = 200
MAX_REASON = 500
MAX_TASK_TYPE = 64
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


def check_text(field: str, value: str, *, max_chars: int, controls: bool = False) -> None:
    """Raise InputError unless `value` is storable text for `field`: not empty, at most
    `max_chars` long, no NUL (PostgreSQL cannot store it), no unpaired surrogate (not
    encodable), and, unless `controls`, no control character but tab and newline."""
    if not value or not value.strip():
        raise InputError(field, "must not be empty")
    if len(value) > max_chars:
        raise InputError(field, f"is {len(value):,} characters; the limit is {max_chars:,}")
    for position, char in enumerate(value):
        if char == "\0":
            raise InputError(field, f"must not contain NUL characters (at position {position})")
        category = unicodedata.category(char)
        if category == "Cs":
            raise InputError(
                field, f"holds an unpaired surrogate U+{ord(char):04X} at position {position}"
            )
        if category == "Cc" and not controls and char not in "\t\n":
            raise InputError(
                field,
                f"must not contain control characters (U+{ord(char):04X} at position "
                f"{position}); tab and newline are allowed",
            )


def normalize_task_type(value: str) -> str:
    """`Data-transform`, `data transform` and `DATA_TRANSFORM` all name data_transform."""
    return _SEPARATORS.sub("_", value.strip().lower())


def validate(request: JobRequest, *, max_input_chars: int) -> None:
    """Raise InputError naming the first bad field."""
    check_text("name", request.name, max_chars=MAX_NAME)
    check_text("task_type", request.task_type, max_chars=MAX_TASK_TYPE)
    # Inputs are documents: form feeds and the like are kept, but NUL cannot be stored.
    check_text("input", request.input, max_chars=max_input_chars, controls=True)
    if request.qa_target is not None and not 0 <= request.qa_target <= 100:
        raise InputError("qa_target", f"must be between 0 and 100 (got {request.qa_target})")
    low, high = PRIORITY_RANGE
    if not low <= request.priority <= high:
        raise InputError("priority", f"must be between {low} and {high}")
    if request.client_email is not None:
        check_text("client", request.client_email, max_chars=320)
        if not EMAIL.match(request.client_email):
            raise InputError("client", f"{request.client_email!r} is not an email address")
    if request.external_id is not None:
        check_text("external_id", request.external_id, max_chars=200)
    if request.source not in SOURCES:
        raise InputError("source", f"must be one of {', '.join(SOURCES)}")


def task_type_names(session: Session) -> list[str]:
    return list(
        session.scalars(select(TaskType.name).where(TaskType.active).order_by(TaskType.name))
    )


def submit(
    runtime: Runtime,
    request: JobRequest,
    *,
    actor: str,
    now: datetime | None = None,
    also: Callable[[Session, Job], None] | None = None,
) -> Job:
    """Create a queued job and enqueue it; return the job. `also` writes what must be
    committed with the job or not at all (such as the record of where it came from)."""
    now = now or utcnow()
    settings = runtime.settings
    validate(request, max_input_chars=settings.max_input_chars)
    type_name = normalize_task_type(request.task_type)
    with write_session(runtime.sessions) as session:
        task_type = session.get(TaskType, type_name)
        if task_type is None or not task_type.active:
            known = ", ".join(task_type_names(session))
            raise InputError("task_type", f"unknown type {request.task_type!r}; known: {known}")
        client = _client_for(session, request.client_email, now) if request.client_email else None
        job = Job(
            name=request.name.strip(),
            task_type=type_name,
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
        if also is not None:
            also(session, job)
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
            lost_leases=0,  # a fresh allowance of lost workers too
            retry_at=None,
            error=None,
            error_kind=None,
            finished_at=None,
            enqueued_at=now,
        )
        if job is None:  # the status moved under us
            raise ConflictError(f"job {job_id} changed while retrying; try again")
        if current.source == "notion":  # its Notion page follows the job again
            session.execute(
                update(NotionPage).where(NotionPage.job_id == job_id).values(settled=False)
            )
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


def approve(runtime: Runtime, job_id: int, *, actor: str, now: datetime | None = None) -> Job:
    """Accept a needs-review job's answer: it becomes done and is billed like one (unless
    the offline provider made it: that is never billed)."""
    now = now or utcnow()
    with write_session(runtime.sessions) as session:
        current = _needs_review(session, job_id, "approved")
        job = change(
            session,
            job_id,
            Status.DONE,
            reason=f"approved by {actor}",
            now=now,
            payment_status=billing_status(
                current.provider,
                billed=True,
                price_cents=current.price_cents,
                stripe_on=runtime.settings.payments_enabled,
            ),
        )
        if job is None:
            raise ConflictError(f"job {job_id} changed while approving; try again")
        audit.record(session, actor=actor, action="job.approve", target=f"job:{job_id}", now=now)
    if runtime.settings.payments_enabled:
        links.after_billing(runtime, job_id)
        with read_session(runtime.sessions) as session:
            job = session.get(Job, job_id) or job
    return job


def reject(
    runtime: Runtime,
    job_id: int,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Job:
    """Refuse a needs-review job's answer: it ends cancelled and unbilled; `reason` is kept
    as its error. A rejected job can still be retried."""
    now = now or utcnow()
    reason = (reason or "").strip() or None
    if reason is not None:
        check_text("reason", reason, max_chars=MAX_REASON)
    with write_session(runtime.sessions) as session:
        _needs_review(session, job_id, "rejected")
        message = f"rejected by {actor}" + (f": {reason}" if reason else "")
        job = change(
            session,
            job_id,
            Status.CANCELLED,
            reason=message,
            now=now,
            payment_status="na",
            error=message,
            error_kind=None,
        )
        if job is None:
            raise ConflictError(f"job {job_id} changed while rejecting; try again")
        audit.record(
            session,
            actor=actor,
            action="job.reject",
            target=f"job:{job_id}",
            now=now,
            details={"reason": reason} if reason else {},
        )
    return job


def _needs_review(session: Session, job_id: int, verb: str) -> Job:
    current = session.get(Job, job_id)
    if current is None:
        raise NotFoundError("job", job_id)
    if current.status != Status.NEEDS_REVIEW:
        raise ConflictError(
            f"job {job_id} is {current.status}; only needs_review jobs can be {verb}"
        )
    return current


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
    except Exception as exc:
        # The job is safely queued in the database; the recovery sweep will enqueue it.
        found = outage_of(exc)
        log.warning(
            "enqueue of job %s failed%s; the recovery sweep will retry",
            job_id,
            f" ({type(exc).__name__}: {first_line(exc)})" if found else "",
            exc_info=found is None,  # an outage is one line; anything else is worth its trace
        )
