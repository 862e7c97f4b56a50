"""Self-heal: put the platform's own failures right, and list what needs a person.

1. Stuck and orphaned jobs: the recovery sweep (the same code the workers run).
2. Failed jobs: a transient failure whose backoff is over goes back on the queue with its
   own task type, input and client; a permanent error or a job out of attempts is made
   dead and listed, never retried again. A failure still inside its backoff waits.
3. Workers: none beating while jobs wait suggests a restart (and raises the alert);
   nothing is killed. Heartbeat rows silent for a day are pruned by the sweep.
4. Follow-ups: unpaid high-QA jobs finished 48 h ago, needs-review jobs waiting 24 h.

A dry run changes nothing and reports what it would do. Every change is a guarded state
change, so two self-heals at once never retry one job twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from echopilot import audit, ndjson
from echopilot.clock import as_utc, iso, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Client, Job
from echopilot.errors import OperationFailed
from echopilot.jobs.status import Status, change, lock_job
from echopilot.money import cents_text
from echopilot.notion import service as notion
from echopilot.payments import status as payment_status
from echopilot.queue.recovery import live_workers, sweep, waiting
from echopilot.runtime import Runtime
from echopilot.scheduler import store

log = logging.getLogger(__name__)

BATCH = 500
LISTED = 100  # longest list in an answer; the counts are exact
UNPAID_AFTER = timedelta(hours=48)
UNPAID_MIN_QA = 95.0
REVIEW_AFTER = timedelta(hours=24)
DEAD_WINDOW = timedelta(hours=24)


@dataclass
class HealResult:
    dry_run: bool
    retried: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    enqueued_orphans: list[int] = field(default_factory=list)
    made_dead: list[dict[str, Any]] = field(default_factory=list)
    dead_recent: list[dict[str, Any]] = field(default_factory=list)
    waiting_backoff: int = 0
    eligible_unpaid: list[dict[str, Any]] = field(default_factory=list)
    needs_review_waiting: list[dict[str, Any]] = field(default_factory=list)
    worker_restart_suggested: bool = False
    live_workers: int = 0
    jobs_waiting: int = 0
    pruned_heartbeats: int = 0
    notion: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "retried_count": len(self.retried),
            "retried": self.retried[:LISTED],
            "recovered_stuck": len(self.recovered),
            "recovered": self.recovered[:LISTED],
            "enqueued_orphans": len(self.enqueued_orphans),
            "dead": len(self.made_dead),
            "dead_jobs": self.made_dead[:LISTED],
            "dead_last_24h": self.dead_recent[:LISTED],
            "waiting_backoff": self.waiting_backoff,
            "eligible_unpaid": self.eligible_unpaid[:LISTED],
            "needs_review_waiting": self.needs_review_waiting[:LISTED],
            "worker_restart_suggested": self.worker_restart_suggested,
            "live_workers": self.live_workers,
            "jobs_waiting": self.jobs_waiting,
            "pruned_heartbeats": self.pruned_heartbeats,
            "notion": self.notion,
            "notes": self.notes,
        }


def run(runtime: Runtime, *, dry_run: bool = False, now: datetime | None = None) -> HealResult:
    now = now or utcnow()
    logfile = ndjson.log_path(runtime.settings.home, "self_heal")
    result = HealResult(dry_run=dry_run)
    swept = sweep(runtime, now=now, dry_run=dry_run)
    result.recovered = swept.requeued_stuck
    result.enqueued_orphans = swept.enqueued_orphans
    result.pruned_heartbeats = swept.pruned_heartbeats
    for job_id in swept.dead_stuck:
        result.made_dead.append({"id": job_id, "why": "lost its worker too many times"})
    _heal_failed(runtime, now, dry_run, result)
    _look_around(runtime, now, result)
    if runtime.settings.notion_enabled and not dry_run:
        _notion_writes(runtime, result)
    _write_notes(result)
    verb = "would_" if dry_run else ""
    for job_id in result.recovered:
        ndjson.append(logfile, f"{verb}recover_stuck", now=now, job=job_id)
    for job_id in result.retried:
        ndjson.append(logfile, f"{verb}retry", now=now, job=job_id)
    for dead in result.made_dead:
        ndjson.append(logfile, f"{verb}make_dead", now=now, job=dead["id"], why=dead["why"])
    summary = result.as_dict()
    ndjson.append(
        logfile,
        "self_heal_finished",
        now=now,
        **{k: v for k, v in summary.items() if not isinstance(v, list) or k == "notes"},
    )
    if result.worker_restart_suggested and not dry_run:
        _raise_worker_alert(runtime, now)
    return result


def run_by(runtime: Runtime, *, actor: str, dry_run: bool) -> dict[str, Any]:
    """Self-heal asked for by a person (CLI or API): run it, record it as a manual run of
    the task (its summary shows in the automations' status) and audit what it changed."""
    started = utcnow()
    summary = run(runtime, dry_run=dry_run, now=started).as_dict()
    if not dry_run:
        with write_session(runtime.sessions) as session:
            store.record_manual(session, "self_heal", started=started, summary=summary, actor=actor)
            audit.record(
                session,
                actor=actor,
                action="self_heal.run",
                details={
                    k: summary[k]
                    for k in ("retried_count", "recovered_stuck", "dead", "enqueued_orphans")
                },
            )
    return summary


def _heal_failed(runtime: Runtime, now: datetime, dry_run: bool, result: HealResult) -> None:
    after = 0
    while True:
        with read_session(runtime.sessions) as session:
            rows = session.execute(
                select(
                    Job.id,
                    Job.name,
                    Job.task_type,
                    Job.attempts,
                    Job.max_attempts,
                    Job.error_kind,
                    Job.error,
                    Job.retry_at,
                )
                .where(Job.status == Status.FAILED, Job.id > after)
                .order_by(Job.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        after = rows[-1][0]
        for job_id, name, task_type, attempts, max_attempts, kind, error, retry_at in rows:
            if kind == "permanent" or attempts >= max_attempts:
                why = "permanent error" if kind == "permanent" else "no attempts left"
                if dry_run or _make_dead(runtime, job_id, attempts, why, now):
                    result.made_dead.append(
                        {
                            "id": job_id,
                            "name": name,
                            "task_type": task_type,
                            "why": why,
                            "error": (error or "")[:200],
                        }
                    )
                continue
            due = as_utc(retry_at) or now  # no retry time: due, as the workers see it
            if due > now:
                result.waiting_backoff += 1
                continue
            if dry_run or _retry(runtime, job_id, attempts, now):
                result.retried.append(job_id)


def _make_dead(runtime: Runtime, job_id: int, attempts: int, why: str, now: datetime) -> bool:
    with write_session(runtime.sessions) as session:
        job = lock_job(session, job_id)
        if job is None or job.status != Status.FAILED or job.attempts != attempts:
            return False
        return (
            change(
                session,
                job,
                Status.DEAD,
                reason=f"self-heal: {why}; not retried",
                now=now,
                finished_at=now,
                retry_at=None,
            )
            is not None
        )


def _retry(runtime: Runtime, job_id: int, attempts: int, now: datetime) -> bool:
    """failed -> queued, guarded on the attempt count seen: a job another self-heal (or a
    worker) moved on since is left alone."""
    with write_session(runtime.sessions) as session:
        job = lock_job(session, job_id)
        if job is None or job.status != Status.FAILED or job.attempts != attempts:
            return False
        moved = change(
            session,
            job,
            Status.QUEUED,
            reason=f"self-heal: retry after attempt {attempts} of {job.max_attempts}",
            now=now,
            retry_at=None,
            enqueued_at=now,
        )
        if moved is None:
            return False
        priority = job.priority
    try:
        runtime.queue.enqueue(job_id, priority=priority)
    except Exception:
        log.warning("job %s: could not enqueue its retry; the sweep will", job_id, exc_info=True)
    return True


def _look_around(runtime: Runtime, now: datetime, result: HealResult) -> None:
    with read_session(runtime.sessions) as session:
        result.jobs_waiting, _ = waiting(session, runtime.settings, now)
        fresh = timedelta(minutes=runtime.settings.alert_worker_stale_minutes)
        result.live_workers = live_workers(session, now, fresh)
        result.worker_restart_suggested = result.jobs_waiting > 0 and result.live_workers == 0
        unpaid = session.execute(
            select(
                Job.id,
                Job.name,
                Job.qa_score,
                Job.price_cents,
                Job.finished_at,
                Job.payment_link,
                Client.email,
            )
            .outerjoin(Client, Client.id == Job.client_id)
            .where(
                Job.status == Status.DONE,
                Job.payment_status.in_(payment_status.OWED),
                Job.qa_score >= UNPAID_MIN_QA,
                Job.finished_at < now - UNPAID_AFTER,
            )
            .order_by(Job.finished_at)
            .limit(LISTED)
        ).all()
        result.eligible_unpaid = [
            {
                "id": job_id,
                "name": name,
                "qa_score": qa,
                "price_usd": None if price is None else cents_text(price),
                "finished_at": iso(finished),
                "payment_link": link,
                "client": email,
            }
            for job_id, name, qa, price, finished, link, email in unpaid
        ]
        review = session.execute(
            select(Job.id, Job.name, Job.qa_score, Job.qa_threshold, Job.updated_at)
            .where(Job.status == Status.NEEDS_REVIEW, Job.updated_at < now - REVIEW_AFTER)
            .order_by(Job.updated_at)
            .limit(LISTED)
        ).all()
        result.needs_review_waiting = [
            {
                "id": job_id,
                "name": name,
                "qa_score": qa,
                "qa_threshold": threshold,
                "waiting_since": iso(since),
            }
            for job_id, name, qa, threshold, since in review
        ]
        dead = session.execute(
            select(Job.id, Job.name, Job.task_type, Job.error, Job.finished_at)
            .where(Job.status == Status.DEAD, Job.finished_at >= now - DEAD_WINDOW)
            .order_by(Job.finished_at.desc())
            .limit(LISTED)
        ).all()
        result.dead_recent = [
            {"id": i, "name": n, "task_type": t, "error": (e or "")[:200], "at": iso(f)}
            for i, n, t, e, f in dead
        ]


def _notion_writes(runtime: Runtime, result: HealResult) -> None:
    """Writes Notion did not show in time are sent again (and read back)."""
    try:
        result.notion = notion.sync(runtime)
    except OperationFailed as exc:
        result.notion = {"ok": False, "error": str(exc)}
        result.notes.append(f"Notion write-backs not retried: {exc}")
        return
    if result.notion.get("written"):
        result.notes.append(f"{result.notion['written']} Notion write-backs sent")


def _write_notes(result: HealResult) -> None:
    would = "would be " if result.dry_run else ""
    notes = result.notes
    if result.recovered:
        notes.append(f"{len(result.recovered)} stuck jobs {would}put back on the queue")
    if result.retried:
        notes.append(f"{len(result.retried)} failed jobs {would}retried")
    if result.waiting_backoff:
        notes.append(f"{result.waiting_backoff} failed jobs wait for their backoff")
    if result.made_dead:
        notes.append(
            f"{len(result.made_dead)} jobs {would}made dead (permanent error or out of "
            "attempts); fix their input or settings, then `echopilot jobs retry ID`"
        )
    if result.worker_restart_suggested:
        notes.append(
            f"no worker has beaten its heartbeat lately while {result.jobs_waiting} jobs "
            "wait: restart the worker (`echopilot worker` or `make run`)"
        )
    if result.eligible_unpaid:
        notes.append(f"{len(result.eligible_unpaid)} unpaid high-QA jobs to follow up")
    if result.needs_review_waiting:
        notes.append(f"{len(result.needs_review_waiting)} jobs have waited over 24 h for review")
    if not notes:
        notes.append("nothing to heal")


def _raise_worker_alert(runtime: Runtime, now: datetime) -> None:
    from echopilot.alerts.engine import check

    try:
        check(runtime, now=now, only=["no_live_worker"], actor="self_heal")
    except Exception:
        log.warning("self-heal could not raise the worker alert", exc_info=True)
