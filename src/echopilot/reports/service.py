"""Make the daily report of one UTC day: read its figures in one snapshot, write its three
files (replacing the day's earlier ones), send its summary line, and record the run.

`make` is the task itself (the scheduler calls it through `scheduled`); `run_by` is a
person's run from the CLI or the API, recorded as a manual run of the task and audited.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from echopilot import audit, ndjson
from echopilot.clock import iso, utcnow
from echopilot.db.engine import write_session
from echopilot.errors import NotFoundError
from echopilot.reports import daily, files, notify, render_csv, render_html
from echopilot.runtime import Runtime
from echopilot.scheduler import store

TASK = "daily_report"
LOG_NAME = "reports"
LISTED_AT_MOST = 90


class NoReportYet(NotFoundError):
    """No day has a report yet."""

    def __init__(self) -> None:
        Exception.__init__(
            self,
            "no daily report yet: make one with `echopilot report daily` or "
            "POST /api/reports/daily",
        )
        self.kind, self.ident = "daily report", None


def make(runtime: Runtime, day: date, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Make `day`'s report as of `now` (the cut-off) and return what was done: the day,
    its summary line, the files written, and where the summary was sent."""
    settings = runtime.settings
    written = files.paths(settings.home, day)
    # One report at a time per home, from reading to writing: a run that read the data
    # earlier can never write over a later one's files.
    with files.writing(settings.home) as folder:
        with daily.snapshot(runtime.engine) as conn:
            cutoff = now or utcnow()
            report = daily.gather(conn, settings, day, cutoff)
        generated = now or utcnow()
        report = _with_generated_at(report, generated)
        texts = {
            "html": render_html.render(report),
            "csv": render_csv.render(report),
            "json": json.dumps(report, indent=2, ensure_ascii=False) + "\n",
        }
        replaced = written["json"].exists()
        for kind in files.KINDS:  # JSON last: see files
            files.write_atomically(written[kind], texts[kind])
        files.sync_folder(folder)
    target, sent = notify.send_summary(runtime, report)
    logfile = ndjson.log_path(settings.home, LOG_NAME)
    ndjson.append(
        logfile,
        "daily_report_written",
        now=generated,
        date=report["date"],
        actor=actor,
        replaced=replaced,
        summary_line=report["summary_line"],
        late_sources=[item["source"] for item in report["late_sources"]],
        cutoff=report["cutoff"],
    )
    for channel, outcome in sent.items():
        failed = outcome != "ok"
        ndjson.append(
            logfile,
            "summary_send_failed" if failed else "summary_sent",
            now=generated,
            date=report["date"],
            channel=channel,
            error=outcome if failed else None,
        )
    return {
        "date": report["date"],
        "summary_line": report["summary_line"],
        "cutoff": report["cutoff"],
        "generated_at": report["generated_at"],
        "day_complete": report["day_complete"],
        "late_sources": report["late_sources"],
        "paths": {kind: str(written[kind]) for kind in ("json", "html", "csv")},
        "replaced": replaced,
        "target": target,
        "sent": sent,
    }


def _with_generated_at(report: dict[str, Any], generated: datetime) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for key, value in report.items():
        ordered[key] = value
        if key == "cutoff":
            ordered["generated_at"] = iso(generated)
    return ordered


def scheduled_day(slot: datetime) -> date:
    """The day a scheduled run reports on: the UTC day before its slot's (a run caught up
    after midnight still reports on the day its slot was for)."""
    return slot.date() - timedelta(days=1)


def run_by(runtime: Runtime, *, actor: str, day: date) -> dict[str, Any]:
    """A report asked for by a person (CLI or API): make it, record it as a manual run of
    the task (its summary shows in the automations' status) and audit it."""
    started = utcnow()
    result = make(runtime, day, actor=actor)
    with write_session(runtime.sessions) as session:
        store.record_manual(session, TASK, started=started, summary=result, actor=actor)
        audit.record(
            session,
            actor=actor,
            action="report.daily",
            target=f"day:{result['date']}",
            details={
                "summary_line": result["summary_line"],
                "replaced": result["replaced"],
                "target": result["target"],
            },
        )
    return result


def latest(runtime: Runtime) -> dict[str, Any]:
    """The newest day's report (the JSON document); NoReportYet when there is none."""
    for day in files.days_with_reports(runtime.settings.home):
        report = files.read(runtime.settings.home, day)
        if report is not None:
            return report
    raise NoReportYet()


def listing(runtime: Runtime, *, limit: int) -> dict[str, Any]:
    """The newest `limit` reports, newest day first: day, summary line, cut-off, late
    sources (an empty list when there is none yet)."""
    home = runtime.settings.home
    found = []
    for day in files.days_with_reports(home)[: min(limit, LISTED_AT_MOST)]:
        report = files.read(home, day)
        if report is None:
            continue
        found.append(
            {
                "date": report.get("date"),
                "summary_line": report.get("summary_line"),
                "cutoff": report.get("cutoff"),
                "generated_at": report.get("generated_at"),
                "day_complete": report.get("day_complete"),
                "late_sources": report.get("late_sources", []),
            }
        )
    return {"reports": found}
