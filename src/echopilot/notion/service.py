"""What the scheduler, the CLI and the API ask of the Notion connector.

- `poll`: the `notion_poll` task (every SCHED_NOTION_POLL_SECONDS): check the databases,
  take ticked pages, write jobs back, read the writes back.
- `sync`: the same without the intake, sending pending writes again (self-heal and
  `echopilot notion sync`).
- `check`: the schema check alone; the way back on after Notion refused the token.
- `status`: the line the dashboard and `echopilot notion status` show.

Notion refusing the token or a database (401, 403, 404) stops the connector and raises an
alert naming the database; it stays stopped, calling Notion no more, until a check passes.
A database missing a property keeps it off (nothing taken) with the property named.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from echopilot import audit, ndjson
from echopilot.clock import iso
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import NotionPage
from echopilot.errors import ConflictError, OperationFailed
from echopilot.notion import check as checking
from echopilot.notion import state as st
from echopilot.notion.gateway import Denied, Gateway, Timer, Unreachable
from echopilot.notion.intake import take
from echopilot.notion.writeback import Target
from echopilot.notion.writeback import sync as write_back
from echopilot.runtime import Runtime
from echopilot.scheduler import store

log = logging.getLogger(__name__)

ALERT_RULES = ["notion_stopped", "notion_writes_pending"]
OFF_REASON = "set NOTION_TOKEN and NOTION_QUEUE_DB_ID to turn the Notion connector on"


def _logfile(runtime: Runtime) -> Any:
    return ndjson.log_path(runtime.settings.home, "notion")


def _budget(runtime: Runtime) -> float:
    """How long a scheduled run waits for read-backs: most of the interval, never more
    than the confirm limit."""
    settings = runtime.settings
    return float(min(settings.notion_poll_seconds * 0.75, settings.notion_confirm_seconds))


def check(runtime: Runtime, *, actor: str = "system", timer: Timer | None = None) -> dict[str, Any]:
    """Check the databases now and set the connector on, off or stopped by what is found
    (audited: it can turn a stopped connector back on)."""
    timer = timer or Timer()
    now = timer.now()
    answer = _check(runtime, timer, now)
    with write_session(runtime.sessions) as session:
        audit.record(
            session,
            actor=actor,
            action="notion.check",
            details={"ok": answer["ok"], "status": answer["status"]},
        )
    return answer


def _check(runtime: Runtime, timer: Timer, now: datetime) -> dict[str, Any]:
    if not runtime.settings.notion_enabled:
        _set(runtime, st.OFF, OFF_REASON, now)
        return {"ok": False, "status": st.OFF, "problems": [OFF_REASON]}
    gateway = Gateway(runtime.settings, timer=timer)
    try:
        found = checking.run(runtime.settings, gateway)
    except Denied as exc:
        _stop(runtime, str(exc), now)
        return {"ok": False, "status": st.STOPPED, "problems": [str(exc)]}
    except Unreachable as exc:
        return {"ok": False, "status": _current(runtime), "problems": [str(exc)]}
    finally:
        gateway.close()
    _save_check(runtime, found, now)
    answer = checking.describe(found, now)
    answer["status"] = st.ON if found.ok else st.OFF
    return answer


def poll(runtime: Runtime, *, timer: Timer | None = None) -> dict[str, Any]:
    """One run of the notion_poll task. Raises OperationFailed when Notion could not be
    read or refused, so the run shows as failed with the reason."""
    return _run(runtime, timer or Timer(), intake=True, retry_pending=False)


def sync(
    runtime: Runtime, *, timer: Timer | None = None, budget: float | None = None
) -> dict[str, Any]:
    """Write back what is due, sending pending writes again, without taking new pages."""
    return _run(runtime, timer or Timer(), intake=False, retry_pending=True, budget=budget)


def sync_by(
    runtime: Runtime, *, actor: str, budget: float | None = None, timer: Timer | None = None
) -> dict[str, Any]:
    """A poll asked for by a person (CLI, API): pending writes are sent again too, and the
    read-backs wait up to `budget` seconds (default the whole confirm limit). Recorded as a
    manual run of notion_poll and audited. Raises ConflictError when the connector is off
    or stopped, OperationFailed when Notion could not be read."""
    timer = timer or Timer()
    started = timer.now()
    wait = float(runtime.settings.notion_confirm_seconds) if budget is None else budget
    summary = _run(runtime, timer, intake=True, retry_pending=True, budget=wait)
    if summary.get("skipped"):
        raise ConflictError(f"Notion connector {summary['skipped']}")
    with write_session(runtime.sessions) as session:
        store.record_manual(session, "notion_poll", started=started, summary=summary, actor=actor)
        audit.record(
            session,
            actor=actor,
            action="notion.sync",
            details={k: summary[k] for k in ("taken", "written", "confirmed", "went_pending")},
        )
    return summary


def _run(
    runtime: Runtime,
    timer: Timer,
    *,
    intake: bool,
    retry_pending: bool,
    budget: float | None = None,
) -> dict[str, Any]:
    settings = runtime.settings
    now = timer.now()
    if not settings.notion_enabled:
        _set(runtime, st.OFF, OFF_REASON, now)
        return {"ok": True, "skipped": "off: " + OFF_REASON}
    with read_session(runtime.sessions) as session:
        current = st.peek(session)
        if current is not None and current.status == st.STOPPED:
            why = f"stopped: {current.reason}; run `echopilot notion check` once it is fixed"
            return {"ok": True, "skipped": why}
    gateway = Gateway(settings, timer=timer)
    answer: dict[str, Any] = {"ok": True}
    failure: str | None = None
    try:
        found = checking.run(settings, gateway)
        _save_check(runtime, found, now)
        if found.ok:
            _work(runtime, gateway, found, answer, intake, retry_pending, budget)
        else:
            failure = "Notion connector off: " + "; ".join(found.problems)
    except Denied as exc:
        _stop(runtime, str(exc), timer.now())
        failure = f"Notion connector stopped: {exc}"
    except Unreachable as exc:
        failure = str(exc)
    finally:
        gateway.close()
        answer["requests"] = gateway.requests
    _polled(runtime, timer.now(), failure, intake)
    ndjson.append(
        _logfile(runtime),
        "notion_poll" if intake else "notion_sync",
        now=timer.now(),
        **{k: v for k, v in answer.items() if not isinstance(v, list)},
        **({"error": failure} if failure else {}),
    )
    if failure is not None:
        raise OperationFailed(failure)
    return answer


def _work(
    runtime: Runtime,
    gateway: Gateway,
    found: checking.Found,
    answer: dict[str, Any],
    intake: bool,
    retry_pending: bool,
    budget: float | None,
) -> None:
    """Take the ticked pages (when `intake`), then write back and read back."""
    assert found.queue is not None and found.queue_source is not None
    if intake:
        taken = take(runtime, gateway, found.queue_source, found.queue, gateway.timer.now())
        answer.update(
            seen=taken.seen,
            taken=len(taken.jobs),
            jobs=taken.jobs[:50],
            refused=taken.refused[:20],
            already_taken=taken.already,
        )
    target = Target(found.queue, found.joblog, found.joblog_source)
    synced = write_back(
        runtime,
        gateway,
        target,
        budget=_budget(runtime) if budget is None else budget,
        retry_pending=retry_pending,
    )
    answer.update(synced.as_dict())


def _current(runtime: Runtime) -> str:
    with read_session(runtime.sessions) as session:
        found = st.peek(session)
        return found.status if found else st.OFF


def _set(runtime: Runtime, status: str, reason: str | None, now: datetime) -> None:
    with write_session(runtime.sessions) as session:
        st.change(st.load(session, now), status, reason, now)


def _save_check(runtime: Runtime, found: checking.Found, now: datetime) -> None:
    with write_session(runtime.sessions) as session:
        row = st.load(session, now)
        row.checked_at = now
        if found.ok:
            st.change(row, st.ON, None, now)
            row.queue_source_id, row.joblog_source_id = found.queue_source, found.joblog_source
            assert found.queue is not None
            row.title_property = found.queue.title
            row.properties = {
                "queue": found.queue.as_dict(),
                "joblog": found.joblog.as_dict() if found.joblog else None,
            }
        else:
            st.change(row, st.OFF, "; ".join(found.problems), now)


def _stop(runtime: Runtime, reason: str, now: datetime) -> None:
    _set(runtime, st.STOPPED, reason, now)
    log.error("notion: connector stopped: %s", reason)
    ndjson.append(_logfile(runtime), "notion_stopped", now=now, reason=reason)
    _alert_now(runtime, now)


def _alert_now(runtime: Runtime, now: datetime) -> None:
    from echopilot.alerts import engine  # the alert engine imports this package's rules

    try:
        engine.check(runtime, now=now, only=ALERT_RULES, actor="notion")
    except Exception:  # the scheduled alert check raises it at its next run
        log.exception("notion: could not raise the alert now")


def _polled(runtime: Runtime, now: datetime, error: str | None, intake: bool) -> None:
    with write_session(runtime.sessions) as session:
        row = st.load(session, now)
        if intake:
            row.polled_at = now
        row.poll_error = error


def status(runtime: Runtime, *, now: datetime) -> dict[str, Any]:
    """The connector at a glance: state, last poll, pages taken, pending write-backs and
    the worst read-after-write lag of the last 24 hours."""
    settings = runtime.settings
    day = now - timedelta(hours=24)
    with read_session(runtime.sessions) as session:
        row = st.peek(session)
        taken_24h = session.scalar(
            select(func.count()).select_from(NotionPage).where(NotionPage.taken_at >= day)
        )
        pending = session.scalar(
            select(func.count())
            .select_from(NotionPage)
            .where(NotionPage.pending_since.is_not(None), NotionPage.settled.is_(False))
        )
        verifying = session.scalar(
            select(func.count())
            .select_from(NotionPage)
            .where(
                NotionPage.settled.is_(False),
                NotionPage.written_at.is_not(None),
                NotionPage.confirmed_at.is_(None),
                NotionPage.pending_since.is_(None),
            )
        )
        worst = session.scalar(
            select(func.max(NotionPage.worst_lag_ms)).where(NotionPage.updated_at >= day)
        )
        unseen = session.scalar(select(func.coalesce(func.sum(NotionPage.unseen_writes), 0)))
    enabled = settings.notion_enabled
    state = row.status if row and enabled else st.OFF
    return {
        "enabled": enabled,
        "status": state,
        "reason": (row.reason if row else "not checked yet") if enabled else OFF_REASON,
        "checked_at": iso(row.checked_at) if row else None,
        "polled_at": iso(row.polled_at) if row else None,
        "poll_error": row.poll_error if row else None,
        "pages_taken": int(row.pages_taken) if row else 0,
        "pages_taken_24h": int(taken_24h or 0),
        "pending_writes": int(pending or 0),
        "verifying_writes": int(verifying or 0),
        "unseen_writes_total": int(unseen or 0),
        "worst_lag_seconds_24h": round(worst / 1000, 1) if worst is not None else None,
        "joblog": settings.notion_joblog_db_id is not None,
        "poll_every_seconds": settings.notion_poll_seconds,
        "confirm_seconds": settings.notion_confirm_seconds,
    }
