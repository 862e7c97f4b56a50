"""The CEO brief's pipeline: ingest (one snapshot of the signals), analyze (rules,
statistics, actions, confidence), brief (the document, its HTML, Markdown and JSON files
and its database row) and email (once per brief; again only when asked to resend).

Every step saves its document under `<home>/reports/briefs/` and logs to
`<home>/logs/exec.log`. A person's run (CLI, API) is recorded as a manual run of the
`brief` task and audited; the scheduler's run is tied to its slot, so a slot run again
after a crash sends the brief it already made instead of a second one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError

from echopilot import audit, ndjson
from echopilot.alerts import channels
from echopilot.alerts.engine import dashboard_link
from echopilot.briefs import analyze as analysis_step
from echopilot.briefs import compose, figures, files, ingest, mailer, narrative, render
from echopilot.clock import iso, utcnow
from echopilot.config import SECRET_FIELDS, Settings
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Brief
from echopilot.errors import ConflictError, NotFoundError, OperationFailed
from echopilot.reports import daily, notify
from echopilot.reports import files as report_files
from echopilot.runtime import Runtime
from echopilot.scheduler import store

TASK = "brief"
LOG_NAME = "exec"
CLAIM_HELD = timedelta(minutes=15)  # a send that crashed frees the brief after this
SENDABLE = ("not_sent", "not_configured")  # and "failed" when it reached no one


class NoBriefYet(NotFoundError):
    def __init__(self, stamp: str | None = None) -> None:
        Exception.__init__(
            self,
            f"no brief {stamp}"
            if stamp
            else "no brief yet: make one with `echopilot brief` or POST /api/exec/brief",
        )
        self.kind, self.ident = "brief", stamp


def _log(runtime: Runtime, event: str, now: datetime, **fields: Any) -> None:
    ndjson.append(ndjson.log_path(runtime.settings.home, LOG_NAME), event, now=now, **fields)


def _secret_free(text: str | None, settings: Settings) -> str | None:
    """`text` with the value of every secret setting masked."""
    if not text:
        return text
    for name in SECRET_FIELDS:
        secret = getattr(settings, name, None)
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            text = text.replace(value, "****")
    return text


def _taken(runtime: Runtime) -> set[str]:
    with read_session(runtime.sessions) as session:
        return set(session.scalars(select(Brief.stamp)))


def _signals(runtime: Runtime, now: datetime) -> dict[str, Any]:
    with daily.snapshot(runtime.engine) as conn:
        return ingest.gather(conn, runtime.settings, now)


def _save(runtime: Runtime, step: str, stamp: str, document: dict[str, Any]) -> str:
    target = files.path(runtime.settings.home, step, stamp)
    report_files.write_atomically(target, files.dumps(document))
    return str(target)


def run_ingest(runtime: Runtime, *, now: datetime | None = None) -> dict[str, Any]:
    """Step 1 alone: the snapshot, saved as ingest_<stamp>.json."""
    now = now or utcnow()
    home = runtime.settings.home
    with report_files.locked(files.folder(home)):
        stamp = files.new_stamp(home, now, _taken(runtime))
        signals = {"stamp": stamp, **_signals(runtime, now)}
        saved = _save(runtime, "ingest", stamp, signals)
    _log(runtime, "brief_ingest", now, stamp=stamp, path=saved)
    return {"stamp": stamp, "path": saved, "signals": signals}


def run_analyze(
    runtime: Runtime, *, now: datetime | None = None, stamp: str | None = None
) -> dict[str, Any]:
    """Step 2: analyze the saved snapshot `stamp`, or a new one; saved as analysis_<stamp>.json."""
    now = now or utcnow()
    home = runtime.settings.home
    if stamp is None:
        stamp = run_ingest(runtime, now=now)["stamp"]
    with report_files.locked(files.folder(home)):
        signals = files.read(home, "ingest", stamp)
        if signals is None:
            raise NotFoundError("ingest snapshot", stamp, "make one with POST /api/exec/ingest")
        if files.path(home, "brief", stamp).exists():
            # Its email draws the charts again from this analysis: it stays as it was.
            raise ConflictError(f"brief {stamp} was made from this snapshot; its analysis is kept")
        found = {"stamp": stamp, **analysis_step.analyze(signals, runtime.settings)}
        saved = _save(runtime, "analysis", stamp, found)
    _log(runtime, "brief_analysis", now, stamp=stamp, path=saved, counts=found["counts"])
    return {"stamp": stamp, "path": saved, "analysis": found}


def make(
    runtime: Runtime,
    *,
    actor: str,
    now: datetime | None = None,
    slot: datetime | None = None,
) -> dict[str, Any]:
    """Steps 1 to 3: a new brief, its files and its row. For a scheduled slot that already
    has its brief, that brief."""
    if slot is not None:
        existing = _by_slot(runtime, slot)
        if existing is not None:
            return existing
    now = now or utcnow()
    settings = runtime.settings
    home = settings.home
    with report_files.locked(files.folder(home)) as folder:
        stamp = files.new_stamp(home, now, _taken(runtime))
        signals = {"stamp": stamp, **_signals(runtime, now)}
        _save(runtime, "ingest", stamp, signals)
        found = {"stamp": stamp, **analysis_step.analyze(signals, settings)}
        _save(runtime, "analysis", stamp, found)
        deterministic = compose.deterministic_summary(found)
        prose = narrative.write(found, settings, deterministic)
        # Why the model's text was not used quotes the model server, which may repeat the
        # key it was given: the brief is mailed, served and logged, so no secret goes in.
        prose.reason = _secret_free(prose.reason, settings)
        document = compose.compose(found, prose, stamp=stamp, generated_at=iso(now) or "")
        charts = figures.make(signals, found, settings.brief_qa_target)
        paths = files.brief_paths(home, stamp)
        document["paths"] = {kind: str(p) for kind, p in paths.items()}
        texts = {
            "html": render.html(document, charts),
            "md": render.markdown(document, charts),
            "json": files.dumps(document),
        }
        for kind in files.BRIEF_KINDS:
            report_files.write_atomically(paths[kind], texts[kind])
        report_files.sync_folder(folder)
    row = Brief(
        stamp=stamp,
        created_at=now,
        cutoff=now,
        slot=slot,
        actor=actor,
        headline=document["headline"],
        high=document["counts"]["high"],
        anomalies=document["counts"]["total"],
        narrative=prose.source,
        document=document,
        paths=document["paths"],
        email_status="not_sent",
        email_sends=0,
    )
    try:
        with write_session(runtime.sessions) as session:
            session.add(row)
    except IntegrityError:
        # Another run made this slot's brief first: that one is the slot's.
        existing = _by_slot(runtime, slot) if slot is not None else None
        if existing is None:
            raise
        return existing
    _log(
        runtime,
        "brief_written",
        now,
        stamp=stamp,
        actor=actor,
        headline=document["headline"],
        counts=document["counts"],
        narrative=prose.as_dict(),
        late_sources=[item["source"] for item in document["freshness"]["late"]],
        paths=document["paths"],
    )
    return _answer(document, "not_sent", None, None, None)


def _answer(
    document: dict[str, Any],
    status: str,
    emailed_at: datetime | None,
    email_to: str | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        **document,
        "email": {
            "status": status,
            "sent_at": iso(emailed_at),
            "to": [r for r in (email_to or "").split(",") if r],
            "error": error,
        },
    }


def _row_answer(row: Brief) -> dict[str, Any]:
    return _answer(row.document, row.email_status, row.emailed_at, row.email_to, row.email_error)


def _by_slot(runtime: Runtime, slot: datetime) -> dict[str, Any] | None:
    with read_session(runtime.sessions) as session:
        row = session.scalars(select(Brief).where(Brief.slot == slot)).first()
        return None if row is None else _row_answer(row)


def latest(runtime: Runtime) -> dict[str, Any]:
    """The newest brief with its email state; NoBriefYet when there is none."""
    with read_session(runtime.sessions) as session:
        row = session.scalars(
            select(Brief).order_by(Brief.created_at.desc(), Brief.id.desc())
        ).first()
        if row is None:
            raise NoBriefYet()
        return _row_answer(row)


LISTED_AT_MOST = 90


def listing(runtime: Runtime, *, limit: int) -> dict[str, Any]:
    """The newest `limit` briefs, newest first, in a line each (an empty list before the
    first: what the dashboard polls, so a fresh install is never an error)."""
    query = (
        select(
            Brief.stamp,
            Brief.created_at,
            Brief.cutoff,
            Brief.headline,
            Brief.high,
            Brief.anomalies,
            Brief.narrative,
            Brief.email_status,
            Brief.emailed_at,
        )
        .order_by(Brief.created_at.desc(), Brief.id.desc())
        .limit(min(limit, LISTED_AT_MOST))
    )
    with read_session(runtime.sessions) as session:
        rows = session.execute(query).all()
    return {
        "briefs": [
            {
                "stamp": r.stamp,
                "created_at": iso(r.created_at),
                "cutoff": iso(r.cutoff),
                "headline": r.headline,
                "high": r.high,
                "anomalies": r.anomalies,
                "narrative": r.narrative,
                "email_status": r.email_status,
                "emailed_at": iso(r.emailed_at),
            }
            for r in rows
        ]
    }


def get(runtime: Runtime, stamp: str) -> dict[str, Any]:
    with read_session(runtime.sessions) as session:
        row = session.scalars(select(Brief).where(Brief.stamp == stamp)).first()
        if row is None:
            raise NoBriefYet(stamp)
        return _row_answer(row)


def email(
    runtime: Runtime,
    *,
    actor: str,
    stamp: str | None = None,
    resend: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Step 5: email the brief `stamp` (default: the newest) to ALERT_TO and a short version
    to the other alert channels. Once: a brief already sent (or being sent) is a conflict
    unless `resend`. Mail problems are answered and recorded, never raised."""
    now = now or utcnow()
    settings = runtime.settings
    brief = get(runtime, stamp) if stamp else latest(runtime)
    stamp = brief["stamp"]
    state = brief["email"]
    if not resend and (state["status"] == "sent" or (state["status"] == "failed" and state["to"])):
        _refuse(runtime, stamp)
    problem = mailer.problem(settings)
    if problem is not None:
        _finish(runtime, stamp, "not_configured", now, None, problem, counted=False)
        _log(runtime, "brief_email_not_sent", now, stamp=stamp, actor=actor, reason=problem)
        short = _short_version(runtime, brief, skip_email=False)
        return {
            "stamp": stamp,
            "sent": False,
            "status": "not_configured",
            "reason": problem,
            "sent_at": None,
            "to": [],
            "channels": short,
        }
    _claim(runtime, stamp, now, resend)
    recipients = channels.recipients(settings.alert_to or "")
    outgoing = _outgoing(runtime, brief)
    sent = mailer.send(settings, outgoing)
    status = "sent" if sent.ok else "failed"
    _finish(runtime, stamp, status, now, ",".join(sent.recipients), sent.error)
    _log(
        runtime,
        "brief_emailed" if sent.ok else "brief_email_failed",
        now,
        stamp=stamp,
        actor=actor,
        to=sent.recipients,
        intended=recipients,
        resend=resend,
        error=sent.error,
    )
    short = _short_version(runtime, brief, skip_email=True)
    return {
        "stamp": stamp,
        "sent": sent.ok,
        "status": status,
        "reason": sent.error,
        "sent_at": iso(now) if sent.ok else None,
        "to": sent.recipients,
        "channels": short,
    }


def email_by(
    runtime: Runtime, *, actor: str, stamp: str | None = None, resend: bool = False
) -> dict[str, Any]:
    """An email asked for by a person (CLI, API): sent (or refused) and audited."""
    result = email(runtime, actor=actor, stamp=stamp, resend=resend)
    with write_session(runtime.sessions) as session:
        audit.record(
            session,
            actor=actor,
            action="brief.email",
            target=f"brief:{result['stamp']}",
            details={k: result[k] for k in ("status", "reason", "to")} | {"resend": resend},
        )
    return result


def _claim(runtime: Runtime, stamp: str, now: datetime, resend: bool) -> None:
    """Mark the brief as being sent, unless it is sent (and this is no resend) or another
    send holds it."""
    free = or_(
        _unsent(),
        (Brief.email_status == "sending") & (Brief.email_claimed_at < now - CLAIM_HELD),
    )
    if resend:
        # Again to everyone: sent, or failed after reaching some of them.
        free = or_(free, Brief.email_status.in_(("sent", "failed")))
    with write_session(runtime.sessions) as session:
        claimed = (
            session.connection()
            .execute(
                update(Brief)
                .where(Brief.stamp == stamp, free)
                .values(email_status="sending", email_claimed_at=now)
            )
            .rowcount
        )
    if not claimed:
        _refuse(runtime, stamp)


def _unsent() -> ColumnElement[bool]:
    """Briefs no address has received: never sent, mail not set up, or failed before any."""
    return or_(
        Brief.email_status.in_(SENDABLE),
        (Brief.email_status == "failed") & or_(Brief.email_to.is_(None), Brief.email_to == ""),
    )


def _refuse(runtime: Runtime, stamp: str) -> None:
    """Raise the conflict that stops a second send: sent already, or being sent."""
    with read_session(runtime.sessions) as session:
        row = session.scalars(select(Brief).where(Brief.stamp == stamp)).one()
        if row.email_status == "sent":
            raise ConflictError(
                f"brief {stamp} was already emailed at {iso(row.emailed_at)}; "
                "ask for a resend to send it again (--resend, resend=true)"
            )
        if row.email_status == "failed":
            raise ConflictError(
                f"brief {stamp} reached {row.email_to} before its email failed; ask for a "
                "resend to send it to every address again (--resend, resend=true)"
            )
    raise ConflictError(f"brief {stamp} is being emailed now; try again in a few minutes")


def _finish(
    runtime: Runtime,
    stamp: str,
    status: str,
    now: datetime,
    to: str | None,
    error: str | None,
    *,
    counted: bool = True,
) -> None:
    values: dict[str, Any] = {
        "email_status": status,
        "email_error": error,
        "email_claimed_at": None,
    }
    if counted:
        values["email_to"] = to
        values["email_sends"] = Brief.email_sends + 1
    if status == "sent":
        values["emailed_at"] = now
    query = update(Brief).where(Brief.stamp == stamp)
    if status == "not_configured":  # no send happened: what was sent or is being sent stays
        query = query.where(_unsent())
    with write_session(runtime.sessions) as session:
        session.execute(query.values(**values))


def _outgoing(runtime: Runtime, brief: dict[str, Any]) -> mailer.Outgoing:
    """The email: the brief's page with its charts as inline images (drawn again from the
    saved snapshot and analysis; without them when retention removed those files)."""
    home = runtime.settings.home
    stamp = brief["stamp"]
    signals = files.read(home, "ingest", stamp)
    found = files.read(home, "analysis", stamp)
    charts = (
        figures.make(signals, found, runtime.settings.brief_qa_target)
        if signals is not None and found is not None
        else []
    )
    return mailer.Outgoing(
        subject=f"[EchoPilot] CEO brief {brief['cutoff'][:10]}: {brief['headline']}",
        text=render.plain_text(brief) + f"\nDashboard: {dashboard_link(runtime)}\n",
        html=render.html(brief, charts, lambda f: f"cid:{f.name}"),
        images={f.name: f.png for f in charts},
    )


def _short_version(runtime: Runtime, brief: dict[str, Any], *, skip_email: bool) -> dict[str, str]:
    title = f"[EchoPilot] CEO brief {brief['cutoff'][:10]}: {brief['headline']}"
    lines = [brief["headline"]]
    lines += [f"- {r['severity'].upper()}: {r['title']}" for r in brief["top_risks"][:3]]
    lines.append(brief["freshness"]["line"])
    lines.append(f"Dashboard: {dashboard_link(runtime)}")
    # The full brief went by email: the SMTP alert channel would only repeat it.
    skip = frozenset({"SMTP_HOST"}) if skip_email else frozenset()
    _, outcome = notify.deliver(runtime, title, "\n".join(lines), what="the brief", skip=skip)
    return outcome


def run_by(
    runtime: Runtime, *, actor: str, send: bool = False, resend: bool = False
) -> dict[str, Any]:
    """A brief asked for by a person: made (and emailed when asked), recorded as a manual
    run of the task and audited."""
    started = utcnow()
    result = make(runtime, actor=actor)
    if send:
        result["email"] = email_by(runtime, actor=actor, stamp=result["stamp"], resend=resend)
    summary = _summary(result)
    with write_session(runtime.sessions) as session:
        store.record_manual(session, TASK, started=started, summary=summary, actor=actor)
        audit.record(
            session,
            actor=actor,
            action="brief.make",
            target=f"brief:{result['stamp']}",
            details=summary,
        )
    return result


def scheduled(runtime: Runtime, *, slot: datetime, now: datetime) -> dict[str, Any]:
    """The scheduled task: the slot's brief (made once) and its email (sent once)."""
    result = make(runtime, actor="scheduler", now=now, slot=slot)
    if result["email"]["status"] == "sent":
        return _summary(result)
    try:  # a claim left by a crashed send is taken over once it is stale
        result["email"] = email(runtime, actor="scheduler", stamp=result["stamp"], now=now)
    except ConflictError as exc:
        result["email"] = {"sent": False, "status": "conflict", "reason": str(exc)}
    summary = _summary(result)
    if result["email"]["status"] == "failed":
        # The brief is written, but the owner did not get it: the run fails, so the
        # automations panel and the scheduled-failures checks show it.
        raise OperationFailed(
            f"brief {result['stamp']} written, email failed: {result['email']['reason']}"
        )
    return summary


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the automations panel and the audit log show of a run."""
    email_state = result.get("email") or {}
    return {
        "stamp": result["stamp"],
        "headline": result["headline"],
        "anomalies": result["counts"]["total"],
        "high": result["counts"]["high"],
        "narrative": result["narrative"]["source"],
        "email": email_state.get("status"),
        "email_reason": email_state.get("reason") or email_state.get("error"),
        "late_sources": [item["source"] for item in result["freshness"]["late"]],
        "paths": result["paths"],
    }
