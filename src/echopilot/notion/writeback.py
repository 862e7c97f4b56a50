"""Jobs written back to their Notion pages, each write read back until Notion shows it.

Every page EchoPilot took is followed until nothing is left to write: its Status as the
job moves (Processing, Done, Waiting Human, Failed), Trigger unticked, and at the end the
result summary, QA score and cost; then one Job Log row per finished job. After each write
the page is read back with backoff (1, 2, 4 ... s after the write) until it shows the
write or ECHOPILOT_NOTION_CONFIRM_SECONDS pass. The lag recorded is how long after the
write Notion was still seen showing the old page (a lower bound, known to within 15 s); a
write not seen in time is kept as pending and counted, and self-heal (or `echopilot
notion sync`) sends it again. A run waits for read-backs only within its budget; the next
run carries on where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from echopilot.clock import as_utc
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, NotionPage
from echopilot.notion import pages as pg
from echopilot.notion import schema as sc
from echopilot.notion.check import JOBLOG, QUEUE
from echopilot.notion.gateway import Gateway, Gone, Invalid, Unreachable
from echopilot.notion.schema import Layout
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 200  # open pages looked at per run
FAST_CHECKS = 5  # read-backs on the doubling schedule (1 to 32 s) before the 15 s steps
MAX_ERROR = 500


@dataclass(frozen=True)
class Target:
    """Where the connector writes: the queue (always) and the Job Log (when configured)."""

    queue: Layout
    joblog: Layout | None
    joblog_source: str | None


@dataclass
class Synced:
    written: int = 0
    confirmed: int = 0
    went_pending: int = 0
    logged: int = 0
    errors: list[str] = field(default_factory=list)
    lags_ms: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "confirmed": self.confirmed,
            "went_pending": self.went_pending,
            "joblog_rows": self.logged,
            "worst_lag_seconds": round(max(self.lags_ms) / 1000, 1) if self.lags_ms else None,
            "errors": self.errors[:10],
        }


def _outcome(row: NotionPage, job: Job | None) -> pg.Outcome | None:
    if job is None:
        if row.refused is None:
            return None  # the job was deleted (demo reset): nothing to show any more
        return pg.Outcome(status=pg.FAILED, final=True, note=row.refused)
    final = pg.is_final(job.status)
    note = None
    if job.status in ("dead", "cancelled"):
        note = f"Job {job.id} {job.status}: {job.error or 'no reason recorded'}"
    return pg.Outcome(
        status=pg.shown_status(job.status),
        final=final,
        job_id=job.id,
        result=job.result,
        note=note,
        qa_score=job.qa_score,
        cost_micros=job.cost_micros,
    )


def _wants_write(row: NotionPage, outcome: pg.Outcome, retry_pending: bool) -> bool:
    changed = row.written_status != outcome.status or (outcome.final and not row.written_final)
    if changed:
        return True
    return retry_pending and row.pending_since is not None


def _needs_log(row: NotionPage, job: Job | None, target: Target) -> bool:
    return (
        target.joblog is not None
        and job is not None
        and pg.is_final(job.status)
        and row.joblog_page_id is None
    )


def sync(
    runtime: Runtime,
    gateway: Gateway,
    target: Target,
    *,
    budget: float,
    retry_pending: bool = False,
) -> Synced:
    """Write what is due, make the Job Log rows, read back within `budget` seconds."""
    timer = gateway.timer
    deadline = timer.seconds() + budget
    done = Synced()
    with read_session(runtime.sessions) as session:
        open_rows = session.execute(
            select(NotionPage, Job)
            .outerjoin(Job, Job.id == NotionPage.job_id)
            .where(NotionPage.settled.is_(False))
            .order_by(NotionPage.id)
            .limit(BATCH)
        ).all()
    for row, job in open_rows:
        outcome = _outcome(row, job)
        if outcome is None:
            _settle(runtime, row.id, timer.now(), error="its job no longer exists")
            continue
        if _wants_write(row, outcome, retry_pending):
            _write(runtime, gateway, target, row.id, row.page_id, outcome, done)
        if _needs_log(row, job, target):
            assert job is not None
            _log(runtime, gateway, target, row.id, job, row.page_id, done)
    _verify(runtime, gateway, deadline, done)
    _settle_finished(runtime, target, timer.now())
    return done


def _write(
    runtime: Runtime,
    gateway: Gateway,
    target: Target,
    row_id: int,
    page_id: str,
    outcome: pg.Outcome,
    done: Synced,
) -> None:
    props = pg.queue_properties(outcome, target.queue)
    error: str | None = None
    gone = False
    down: Unreachable | None = None
    try:
        gateway.update(page_id, props, what=QUEUE)
    except Gone as exc:
        error, gone = str(exc), True
    except Invalid as exc:
        error = str(exc)
    except Unreachable as exc:
        error, down = str(exc), exc
    now = gateway.timer.now()
    with write_session(runtime.sessions) as session:
        row = session.get(NotionPage, row_id, with_for_update=True)
        if row is None:
            return
        row.updated_at = now
        if error is None:
            row.written_status = outcome.status
            row.written_final = outcome.final
            row.written_at = now
            row.checks = 0
            row.confirmed_status = None
            row.confirmed_at = None
            row.lag_ms = None
            row.pending_since = None
            row.writes += 1
            row.error = None
            done.written += 1
        else:
            row.error = error[:MAX_ERROR]
            row.settled = gone  # a page that is gone has nothing left to receive
            done.errors.append(f"page {page_id}: {error}")
            log.warning("notion: write to page %s failed: %s", page_id, error)
    if down is not None:
        raise down  # Notion is down: the run ends here and the next one carries on


def _log(
    runtime: Runtime,
    gateway: Gateway,
    target: Target,
    row_id: int,
    job: Job,
    page_id: str,
    done: Synced,
) -> None:
    """The job's Job Log row, once: a creation whose answer was lost is looked for (and
    given the confirm limit to show up in Notion's query) before another is asked for."""
    assert target.joblog is not None and target.joblog_source is not None
    now = gateway.timer.now()
    with read_session(runtime.sessions) as session:
        row = session.get(NotionPage, row_id)
        requested = as_utc(row.joblog_requested_at) if row else None
    try:
        if requested is not None:
            flt = {"property": sc.JOB_ID, "number": {"equals": job.id}}
            existing = next(gateway.query(target.joblog_source, flt, what=JOBLOG), None)
            if existing is not None:
                _logged(runtime, row_id, str(existing["id"]), now)
                done.logged += 1
                return
            if now - requested < timedelta(seconds=runtime.settings.notion_confirm_seconds):
                return  # asked for a moment ago: it may not show in queries yet
        with write_session(runtime.sessions) as session:
            saved = session.get(NotionPage, row_id, with_for_update=True)
            if saved is None or saved.joblog_page_id is not None:
                return
            saved.joblog_requested_at = now
        entry = pg.LogEntry(
            job_id=job.id,
            title=job.name,
            status=pg.shown_status(job.status),
            task_type=job.task_type,
            qa_score=job.qa_score,
            cost_micros=job.cost_micros,
            price_cents=job.price_cents,
            finished_at=as_utc(job.finished_at),
            page_url=f"https://www.notion.so/{page_id.replace('-', '')}",
        )
        made = gateway.create(
            target.joblog_source, pg.joblog_properties(entry, target.joblog), what=JOBLOG
        )
    except (Invalid, Unreachable, Gone) as exc:
        done.errors.append(f"Job Log row of job {job.id}: {exc}")
        log.warning("notion: Job Log row of job %s not made: %s", job.id, exc)
        if isinstance(exc, Unreachable):
            raise
        return
    _logged(runtime, row_id, str(made["id"]), gateway.timer.now())
    done.logged += 1


def _logged(runtime: Runtime, row_id: int, joblog_page: str, now: datetime) -> None:
    with write_session(runtime.sessions) as session:
        row = session.get(NotionPage, row_id, with_for_update=True)
        if row is not None and row.joblog_page_id is None:
            row.joblog_page_id = joblog_page
            row.updated_at = now


def _next_check(row: NotionPage, limit: float) -> datetime:
    """When to read a write back: 1, 2, 4 ... 32 s after it, then every 15 s (a lag is
    known to within 15 s) until the limit."""
    written = as_utc(row.written_at)
    assert written is not None
    step = 2.0**row.checks if row.checks <= FAST_CHECKS else 32.0 + 15.0 * (row.checks - 5)
    return written + timedelta(seconds=min(step, limit))


def _verify(runtime: Runtime, gateway: Gateway, deadline: float, done: Synced) -> None:
    """Read written pages back on their backoff schedule until each shows its write, goes
    pending, or the run's budget ends (the next run carries on)."""
    timer = gateway.timer
    limit = float(runtime.settings.notion_confirm_seconds)
    while True:
        with read_session(runtime.sessions) as session:
            rows = list(
                session.scalars(
                    select(NotionPage)
                    .where(
                        NotionPage.written_at.is_not(None),
                        NotionPage.confirmed_at.is_(None),
                        NotionPage.pending_since.is_(None),
                        NotionPage.settled.is_(False),
                    )
                    .order_by(NotionPage.written_at)
                    .limit(BATCH)
                )
            )
        if not rows:
            return
        now = timer.now()
        due = [r for r in rows if _next_check(r, limit) <= now]
        for row in due:
            _read_back(runtime, gateway, row, limit, done)
            if timer.seconds() >= deadline:
                return
        if due:
            continue
        wake = min(_next_check(r, limit) for r in rows).timestamp()
        if wake > deadline:
            return
        timer.sleep(max(wake - timer.seconds(), 0.0))


def _read_back(
    runtime: Runtime, gateway: Gateway, row: NotionPage, limit: float, done: Synced
) -> None:
    status = row.written_status
    written = as_utc(row.written_at)
    assert status is not None and written is not None
    down: Unreachable | None = None
    try:
        page = gateway.page(row.page_id, what=QUEUE)
        error = None
    except (Gone, Invalid) as exc:
        page, error = None, str(exc)
    except Unreachable as exc:
        page, error, down = None, str(exc), exc
    now = gateway.timer.now()
    if down is not None:
        with write_session(runtime.sessions) as session:
            saved = session.get(NotionPage, row.id, with_for_update=True)
            if saved is not None:
                saved.error, saved.updated_at = str(down)[:MAX_ERROR], now
        raise down
    seen = page is not None and pg.shows(page, status, written)
    with write_session(runtime.sessions) as session:
        saved = session.get(NotionPage, row.id, with_for_update=True)
        if saved is None or as_utc(saved.written_at) != written:
            return  # written again meanwhile: that write has its own read-back
        saved.updated_at = now
        saved.checks += 1
        if error is not None:
            saved.error = error[:MAX_ERROR]
        elapsed_ms = int((now - written).total_seconds() * 1000)
        if seen:
            # The lag is what was seen: how long after the write Notion still showed the old
            # page (0 when the first read showed the write). Reads that came late because
            # this run was busy cannot make it look longer than it was.
            lag = saved.lag_ms or 0
            saved.confirmed_status, saved.confirmed_at = status, now
            saved.lag_ms = lag
            saved.worst_lag_ms = max(lag, saved.worst_lag_ms or 0)
            done.confirmed += 1
            done.lags_ms.append(lag)
            return
        if page is not None:  # seen showing the old page this long after the write
            saved.lag_ms = elapsed_ms
        if elapsed_ms >= limit * 1000:
            saved.pending_since = now
            saved.unseen_writes += 1
            saved.worst_lag_ms = max(saved.lag_ms or 0, saved.worst_lag_ms or 0)
            done.went_pending += 1
            log.warning(
                "notion: page %s does not show %r %.0f s after the write; kept as pending",
                row.page_id,
                status,
                (now - written).total_seconds(),
            )


def _settle(runtime: Runtime, row_id: int, now: datetime, *, error: str | None = None) -> None:
    with write_session(runtime.sessions) as session:
        row = session.get(NotionPage, row_id, with_for_update=True)
        if row is not None:
            row.settled = True
            row.updated_at = now
            if error:
                row.error = error


def _settle_finished(runtime: Runtime, target: Target, now: datetime) -> None:
    """Pages whose final write Notion has shown and whose Job Log row exists (or is not
    wanted) need nothing more."""
    with write_session(runtime.sessions) as session:
        rows = session.execute(
            select(NotionPage, Job.status)
            .outerjoin(Job, Job.id == NotionPage.job_id)
            .where(
                NotionPage.settled.is_(False),
                NotionPage.written_final.is_(True),
                NotionPage.confirmed_at.is_not(None),
            )
            .limit(BATCH)
        ).all()
        for row, status in rows:
            logged = target.joblog is None or row.job_id is None or row.joblog_page_id is not None
            if logged and (status is None or pg.is_final(status)):
                row.settled = True
                row.updated_at = now
