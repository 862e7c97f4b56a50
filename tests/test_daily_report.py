"""The daily report (issue 10): the figures of one UTC day exact to the cent, written as
JSON, HTML and CSV under `reports/daily/`, replaced (never doubled) when the day is made
again, with its cut-off and late sources stated, its summary line sent to the alert
channels, and its HTML drawing its charts in headless Chromium without the network.

Jobs, attempts, events, alerts and scheduled runs are written straight into the
database for a fixed past day (as any process could); the expected figures are worked out
here from those rows. The CLI runs as a child process in a clean environment, the API
through the app with the key.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from echopilot.clock import utcnow
from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.models import (
    Alert,
    AuditLog,
    Client,
    Job,
    JobAttempt,
    JobEvent,
    ScheduleRun,
)
from echopilot.errors import InputError
from echopilot.reports import daily, day, files, render_csv, service
from echopilot.runtime import Runtime
from tests import job_rows
from tests.api_support import api_client, assert_error, assert_ok, free_port
from tests.browser_support import chromium, require_browser, save_screenshot
from tests.conftest import run_cli
from tests.test_alert_channels import read_mail, smtp_server

BOTH = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
DAY = date(2025, 3, 14)
DAY_TEXT = "2025-03-14"
INPUT = "Confidential input: the board's salary figures for March."
EVIL_CLIENT = "<script>alert(1)</script> Ltd"
FORMULA_NAME = '=HYPERLINK("http://evil.example","open")'
DEAD_ERROR = "@SUM(1+1) model server answered 400: context length exceeded"
SUMMARY = re.compile(r"^Jobs \d+ \| QA (\d+\.\d|n/a) % \| ROI (-?\d+\.\d\d|n/a) \| Retries \d+$")
SMTP_SECRET = "smtp-pass-Report-91x"
OWNER = "owner@example.com"


def at(hour: int, minute: int = 0, second: int = 0, micro: int = 0, days: int = 0) -> datetime:
    """A moment of DAY (or of a day `days` after it), UTC."""
    return datetime(2025, 3, 14, hour, minute, second, micro, tzinfo=UTC) + timedelta(days=days)


# ------------------------------------------------------------------ the day's rows


def job_row(**values: Any) -> dict[str, Any]:
    return job_rows.job_row(**{"input": INPUT, "created_at": at(7), "updated_at": at(23), **values})


def add(rt: Runtime, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    return job_rows.insert_rows(rt.engine, table, rows)


def seed_day(rt: Runtime) -> dict[str, int]:
    """The day's world; the comments give each row's share of the figures."""
    acme, evil = add(
        rt,
        Client,
        [
            {"name": "Acme Research", "email": "research@acme.example", "rate_overrides": {}},
            {"name": EVIL_CLIENT, "email": "evil@example.com", "rate_overrides": {}},
        ],
    )
    jobs = dict(
        zip(
            ("j1", "j2", "j3", "j4", "j5", "before", "after", "running", "waiting", "old"),
            add(
                rt,
                Job,
                [
                    # billed 25.00, cost 0.120345, QA 96 (mark 95), hour 08
                    job_row(
                        name="board summary",
                        client_id=acme,
                        price_cents=2500,
                        payment_status="unpaid",
                        cost_micros=120_345,
                        qa_score=96.0,
                        qa_threshold=95,
                        duration_ms=30_000,
                        finished_at=at(8, 15),
                    ),
                    # billed 15.00, cost 0.080000, QA 91.5 (mark 90), hour 13
                    job_row(
                        name="press release",
                        task_type="drafting",
                        client_id=evil,
                        price_cents=1500,
                        payment_status="unpaid",
                        cost_micros=80_000,
                        qa_score=91.5,
                        qa_threshold=90,
                        duration_ms=12_000,
                        finished_at=at(13, 40),
                    ),
                    # awaiting review: priced, not billed; QA 70 below its mark 80, hour 16
                    job_row(
                        name="weekly digest",
                        task_type="summary",
                        status="needs_review",
                        price_cents=800,
                        payment_status="na",
                        cost_micros=30_000,
                        qa_score=70.0,
                        qa_threshold=80,
                        finished_at=at(16, 5),
                    ),
                    # dead: cost 0.050000, no QA, hour 18; its name and error are formulas
                    job_row(
                        name=FORMULA_NAME,
                        status="dead",
                        cost_micros=50_000,
                        error=DEAD_ERROR,
                        error_kind="permanent",
                        finished_at=at(18, 30),
                    ),
                    # offline: never billed; QA 88 against the default mark 80; the first
                    # instant of the day counts (hour 00)
                    job_row(
                        name="offline summary",
                        task_type="summary",
                        provider="offline",
                        price_cents=800,
                        qa_score=88.0,
                        finished_at=at(0),
                        created_at=at(0) - timedelta(minutes=5),
                    ),
                    # the day before's last millisecond: not in the day, but owed 10.00
                    # (SQLite's roll-up hour is exact to the millisecond only)
                    job_row(
                        name="yesterday's job",
                        price_cents=1000,
                        payment_status="unpaid",
                        cost_micros=10_000,
                        created_at=at(10, days=-1),
                        finished_at=at(0) - timedelta(milliseconds=1),
                    ),
                    # the next day's first instant: not in the day, but owed 7.00; submitted
                    # on the day
                    job_row(
                        name="tomorrow's job",
                        price_cents=700,
                        payment_status="unpaid",
                        cost_micros=5_000,
                        created_at=at(23, 30),
                        finished_at=at(0, days=1),
                    ),
                    # submitted on the day and not finished: late sources
                    job_row(name="still running", status="processing", created_at=at(21)),
                    job_row(name="still waiting", status="queued", created_at=at(22)),
                    # waiting since the day before: not this day's
                    job_row(name="old waiting", status="queued", created_at=at(9, days=-1)),
                ],
            ),
            strict=True,
        )
    )
    add(
        rt,
        JobAttempt,
        [
            {"job_id": jobs["j1"], "n": 1, "status": "ok", "started_at": at(8)},
            {"job_id": jobs["j2"], "n": 1, "status": "failed", "started_at": at(13)},
            {"job_id": jobs["j2"], "n": 2, "status": "ok", "started_at": at(13, 30)},
            {"job_id": jobs["j4"], "n": 1, "status": "failed", "started_at": at(18)},
            {"job_id": jobs["j4"], "n": 2, "status": "failed", "started_at": at(18, 20)},
            # the day before: not counted
            {"job_id": jobs["before"], "n": 2, "status": "failed", "started_at": at(9, days=-1)},
        ],
    )
    add(
        rt,
        JobEvent,
        [
            {
                "job_id": jobs["j2"],
                "from_status": "failed",
                "to_status": "queued",
                "reason": "self-heal: retry after attempt 1 of 3",
                "at": at(13, 20),
            },
            {
                "job_id": jobs["j4"],
                "from_status": "dead",
                "to_status": "queued",
                "reason": "manual retry by cli",
                "at": at(18, 10),
            },
            # a creation, not a re-queue
            {"job_id": jobs["waiting"], "to_status": "queued", "reason": "submitted", "at": at(22)},
        ],
    )
    add(
        rt,
        Alert,
        [
            alert_row("retries", "<b>self-heal</b> retried 5 jobs", at(10), None),
            alert_row("queue_age", "oldest job waited 12 min", at(10, days=-2), at(11)),
            alert_row("profit_7d", "7-day profit is -$3.00", at(1, days=-3), at(2, days=-1)),
        ],
    )
    add(
        rt,
        ScheduleRun,
        [
            run_row("self_heal", "failed", at(6), "RuntimeError: boom"),
            run_row("retention", "ok", at(3), None),
            run_row("alert_check", "abandoned", at(6, days=-1), "scheduler died"),
        ],
    )
    return jobs


def alert_row(rule: str, title: str, first: datetime, resolved: datetime | None) -> dict[str, Any]:
    return {
        "key": rule,
        "rule": rule,
        "severity": "warning",
        "title": title,
        "detail": "",
        "status": "open" if resolved is None else "resolved",
        "since": first,
        "first_seen_at": first,
        "last_seen_at": resolved or first,
        "count": 1,
        "channels": {},
        "resolved_at": resolved,
    }


def run_row(task: str, status: str, started: datetime, error: str | None) -> dict[str, Any]:
    return {
        "task": task,
        "slot": started,
        "trigger": "scheduled",
        "status": status,
        "started_at": started,
        "finished_at": started + timedelta(seconds=3),
        "error": error,
        "host": "ops-box",
        "pid": 4242,
    }


# The figures of DAY, worked out from the rows above.
REVENUE = Decimal("25.00") + Decimal("15.00")
COST = Decimal("0.120345") + Decimal("0.080000") + Decimal("0.030000") + Decimal("0.050000")
PROFIT = REVENUE - COST
EXPECTED_ROI = str((PROFIT / COST).quantize(Decimal("0.01")))
EXPECTED_MARGIN = str((PROFIT * 100 / REVENUE).quantize(Decimal("0.1")))
# QA of the scored jobs, in tenths as finance rounds them: 96.0, 91.5, 70.0, 88.0.
EXPECTED_QA = round((960 + 915 + 700 + 880) / 4 / 10, 1)
EXPECTED_SUMMARY = f"Jobs 5 | QA {EXPECTED_QA:.1f} % | ROI {EXPECTED_ROI} | Retries 2"


def report_files(home: Path) -> list[str]:
    folder = home / "reports" / "daily"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def cli_report(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Any:
    result = run_cli(settings, "report", "daily", *args, "--json", extra_env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


# ------------------------------------------------------------------ figures


@BOTH
def test_a_days_report_has_its_figures_to_the_cent(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)

    result = cli_report(rt.settings, "--date", DAY_TEXT)

    assert result["date"] == DAY_TEXT
    assert result["summary_line"] == EXPECTED_SUMMARY
    assert SUMMARY.match(result["summary_line"])
    assert result["day_complete"] is True and result["replaced"] is False
    assert result["target"] == "log" and result["sent"] == {"log": "ok"}
    folder = rt.settings.home / "reports" / "daily"
    assert result["paths"] == {
        kind: str(folder / f"daily_report_20250314.{kind}") for kind in ("json", "html", "csv")
    }
    report = json.loads(Path(result["paths"]["json"]).read_text())
    assert list(report)[:7] == [
        "date",
        "period",
        "day_complete",
        "cutoff",
        "generated_at",
        "late_sources",
        "summary_line",
    ]
    assert report["period"] == {
        "from": "2025-03-14T00:00:00+00:00",
        "to": "2025-03-14T23:59:59.999999+00:00",
    }
    assert report["cutoff"] == result["cutoff"]
    assert datetime.fromisoformat(report["cutoff"]) <= datetime.fromisoformat(
        report["generated_at"]
    )

    finance = report["finance"]
    assert (finance["jobs"], finance["submitted"]) == (5, 7)  # the offline job came the day before
    assert (finance["done"], finance["needs_review"], finance["dead"]) == (2 + 1, 1, 1)
    assert finance["billed_jobs"] == 2
    assert finance["revenue"] == "40.00" and Decimal(finance["revenue"]) == REVENUE
    assert finance["cost"] == "0.280345" and Decimal(finance["cost"]) == COST
    assert finance["profit"] == "39.719655" and Decimal(finance["profit"]) == PROFIT
    assert finance["margin_pct"] == EXPECTED_MARGIN == "99.3"
    assert finance["roi"] == EXPECTED_ROI == "141.68"
    assert finance["revenue_paid"] == "0.00"
    by_type = {
        r["key"]: (r["jobs"], r["revenue"], r["cost"]) for r in finance["breakdown"]["task_type"]
    }
    assert by_type == {
        "research": (2, "25.00", "0.170345"),
        "drafting": (1, "15.00", "0.080000"),
        "summary": (2, "0.00", "0.030000"),
    }
    clients = {r["name"]: r["revenue"] for r in finance["breakdown"]["client"]}
    assert clients == {
        "Acme Research <research@acme.example>": "25.00",
        f"{EVIL_CLIENT} <evil@example.com>": "15.00",
        "(no client)": "0.00",
    }
    assert finance["owed"]["amount"] == "57.00" and finance["owed"]["jobs"] == 4

    quality = report["quality"]
    assert quality["avg_qa"] == EXPECTED_QA == 86.4
    assert (quality["scored_jobs"], quality["below_threshold"], quality["needs_review"]) == (
        4,
        1,
        1,
    )
    assert {b["band"]: b["jobs"] for b in quality["distribution"]} == {
        "under 60": 0,
        "60-69": 0,
        "70-79": 1,
        "80-89": 1,
        "90-100": 2,
    }

    ops = report["operations"]
    assert ops["retries"] == {
        "retries": 2,
        "failed_attempts": 3,
        "lost_attempts": 0,
        "requeued": 2,
        "requeued_by_self_heal": 1,
        "retried_by_people": 1,
    }
    assert ops["dead"]["count"] == 1
    assert [(j["name"], j["error"]) for j in ops["dead"]["jobs"]] == [(FORMULA_NAME, DEAD_ERROR)]
    assert ops["dead"]["top_errors"] == [{"error": DEAD_ERROR, "jobs": 1}]
    assert (ops["alerts"]["opened"], ops["alerts"]["open_at_end"]) == (1, 1)
    assert [a["key"] for a in ops["alerts"]["listed"]] == ["retries", "queue_age"]
    assert [(r["task"], r["status"], r["error"]) for r in ops["failed_runs"]] == [
        ("self_heal", "failed", "RuntimeError: boom")
    ]
    finished_by_hour = {h["hour"]: h["finished"] for h in ops["hourly"] if h["finished"]}
    assert finished_by_hour == {"00": 1, "08": 1, "13": 1, "16": 1, "18": 1}
    assert len(ops["hourly"]) == 24
    assert {h["hour"]: h["revenue"] for h in ops["hourly"] if h["revenue"] != "0.00"} == {
        "08": "25.00",
        "13": "15.00",
    }

    assert report["payments"]["billed"] == "40.00"
    assert report["payments"]["paid"] == "0.00"
    assert report["payments"]["owed"] == "57.00"
    assert report["payments"]["reconciled"] is False

    late = {s["source"]: s for s in report["late_sources"]}
    assert set(late) == {"jobs", "payments"}
    assert late["jobs"]["count"] == 2
    assert "1 queued, 1 processing" in late["jobs"]["detail"]
    assert (
        late["payments"]["detail"]
        == "payments not reconciled: Stripe is not configured (STRIPE_SECRET_KEY)"
    )

    html = Path(result["paths"]["html"]).read_text()
    text = Path(result["paths"]["csv"]).read_text()
    for rendered in (html, text):
        assert EXPECTED_SUMMARY in rendered
        assert INPUT not in rendered  # names, never inputs
    assert INPUT not in json.dumps(report)


def test_running_a_day_again_replaces_its_three_files_and_never_adds_a_report(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    first = cli_report(rt.settings, "--date", DAY_TEXT)
    names = [
        "daily_report_20250314.csv",
        "daily_report_20250314.html",
        "daily_report_20250314.json",
    ]
    assert [n for n in report_files(rt.settings.home) if not n.startswith(".")] == names
    add(
        rt,
        Job,
        [
            job_row(
                name="late finisher", price_cents=500, payment_status="unpaid", finished_at=at(23)
            )
        ],
    )

    second = cli_report(rt.settings, "--date", DAY_TEXT)

    assert second["replaced"] is True and first["replaced"] is False
    assert second["paths"] == first["paths"]
    # Exactly the day's three files (and the writers' lock): no second report, no leftovers.
    assert report_files(rt.settings.home) == [".write.lock", *names]
    report = json.loads(Path(second["paths"]["json"]).read_text())
    assert report["finance"]["jobs"] == 6 and report["finance"]["revenue"] == "45.00"
    assert report["summary_line"].startswith("Jobs 6 | ")
    assert "Jobs 6 | " in Path(second["paths"]["html"]).read_text()
    assert "Jobs 5 | " not in Path(second["paths"]["csv"]).read_text()
    with api_client(rt) as client:
        listed = assert_ok(client.get("/api/reports/daily"))["reports"]
    assert [r["date"] for r in listed] == [DAY_TEXT]
    lines = [
        json.loads(line)
        for line in (rt.settings.home / "logs" / "reports.log").read_text().splitlines()
    ]
    written = [line for line in lines if line["event"] == "daily_report_written"]
    assert [(w["date"], w["replaced"], w["actor"]) for w in written] == [
        (DAY_TEXT, False, "cli"),
        (DAY_TEXT, True, "cli"),
    ]
    assert all({"ts", "event"} <= set(line) for line in lines)
    assert INPUT not in json.dumps(lines)
    with read_session(rt.sessions) as session:
        audits = session.scalars(select(AuditLog).where(AuditLog.action == "report.daily")).all()
        runs = session.scalars(select(ScheduleRun).where(ScheduleRun.task == "daily_report")).all()
    assert [(a.actor, a.target) for a in audits] == [("cli", "day:2025-03-14")] * 2
    assert [(r.trigger, r.status, r.summary["date"]) for r in runs] == [
        ("manual", "ok", DAY_TEXT)
    ] * 2


def test_runs_of_one_day_at_once_never_mix_their_files(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    cutoffs = [at(9, second=n, days=1) for n in range(4)]

    with ThreadPoolExecutor(len(cutoffs)) as pool:
        results = list(pool.map(lambda c: service.make(rt, DAY, actor="test", now=c), cutoffs))

    assert sorted(r["replaced"] for r in results) == [False, True, True, True]
    assert report_files(rt.settings.home) == [
        ".write.lock",
        *(f"daily_report_20250314.{kind}" for kind in ("csv", "html", "json")),
    ]
    paths = results[0]["paths"]
    report = json.loads(Path(paths["json"]).read_text())
    shown = datetime.fromisoformat(report["cutoff"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"Data cut-off <strong>{shown}</strong>" in Path(paths["html"]).read_text()
    assert f"report,,cutoff,{report['cutoff']}" in Path(paths["csv"]).read_text()


def test_the_default_day_is_yesterday_in_utc(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    before = (utcnow() - timedelta(days=1)).date()
    noon = datetime.combine(before, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    add(
        rt,
        Job,
        [job_row(price_cents=1200, payment_status="unpaid", finished_at=noon, created_at=noon)],
    )

    result = cli_report(rt.settings)

    after = (utcnow() - timedelta(days=1)).date()
    assert result["date"] in {before.isoformat(), after.isoformat()}
    if result["date"] == before.isoformat():
        assert result["summary_line"].startswith("Jobs 1 | ")
    assert (
        Path(result["paths"]["json"]).name == f"daily_report_{result['date'].replace('-', '')}.json"
    )


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2999-01-01", "is in the future"),
        ("2025-02-30", "is not a date"),
        ("yesterday", "is not a date"),
        ("20250314", "is not a date"),
        ("1969-12-31", "before 1970-01-01"),
    ],
)
def test_a_future_or_malformed_date_is_refused_and_nothing_is_written(
    make_runtime: Callable[..., Runtime], given: str, says: str
) -> None:
    rt = make_runtime(ai_provider="offline")

    result = run_cli(rt.settings, "report", "daily", "--date", given)

    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --date: ") and says in lines[0], lines[0]
    with api_client(rt) as client:
        error = assert_error(client.post("/api/reports/daily", params={"date": given}), 422)
    assert error["code"] == "invalid_input" and error["fields"] == ["date"]
    assert says in error["message"] and error["message"].startswith("date: ")
    assert report_files(rt.settings.home) == []
    with read_session(rt.sessions) as session:
        assert session.scalars(select(ScheduleRun)).all() == []


def test_tomorrow_is_refused_and_today_is_a_partial_day_that_says_so() -> None:
    now = at(15, 30)
    with pytest.raises(InputError, match="date: 2025-03-15 is in the future"):
        day.choose("2025-03-15", now)
    assert day.choose("2025-03-14", now) == DAY
    assert day.choose(None, now) == DAY - timedelta(days=1)
    assert day.choose(None, at(0)) == DAY - timedelta(days=1)  # midnight: the day before
    assert day.last_moment(DAY, now) == now
    assert day.last_moment(DAY, at(9, days=1)) == at(0, days=1) - timedelta(microseconds=1)


def test_a_partial_day_stops_at_its_cut_off_and_names_what_is_late(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    cutoff = at(15, 30)  # before the 16:05 and 18:30 jobs finished

    result = service.make(rt, DAY, actor="test", now=cutoff)

    report = json.loads(Path(result["paths"]["json"]).read_text())
    assert report["day_complete"] is False
    assert report["cutoff"] == cutoff.isoformat()
    assert report["period"]["to"] == cutoff.isoformat()
    assert report["finance"]["jobs"] == 3
    sources = [s["source"] for s in report["late_sources"]]
    assert sources == ["day", "payments"]  # the running jobs were submitted after 15:30
    assert "not over" in report["late_sources"][0]["detail"]
    assert "the day is not over" in Path(result["paths"]["html"]).read_text()


def test_the_summary_line_keeps_its_shape_when_nothing_happened() -> None:
    finance = {"jobs": 0, "avg_qa": None, "roi": None}
    assert daily.summary_line(finance, 0) == "Jobs 0 | QA n/a % | ROI n/a | Retries 0"
    busy = {"jobs": 1234, "avg_qa": 90.0, "roi": "-0.25"}
    assert daily.summary_line(busy, 7) == "Jobs 1234 | QA 90.0 % | ROI -0.25 | Retries 7"
    for line in (daily.summary_line(finance, 0), daily.summary_line(busy, 7)):
        assert SUMMARY.match(line), line


# ------------------------------------------------------------------ the summary's notice


def mail_env(port: int) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "reports@example.com",
        "SMTP_PASS": SMTP_SECRET,
        "ALERT_TO": OWNER,
    }


def test_the_summary_line_is_mailed_through_the_alert_channels(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    with smtp_server() as (mailbox, port):
        result = cli_report(rt.settings, "--date", DAY_TEXT, env=mail_env(port))

    assert result["target"] == "channels"
    assert result["sent"] == {f"mailto://127.0.0.1:{port}": "ok"}
    assert len(mailbox.messages) == 1
    _, recipients, raw = mailbox.messages[0]
    assert recipients == [OWNER]
    subject, body = read_mail(raw)
    assert EXPECTED_SUMMARY in subject and "2025-03-14" in subject
    assert body.startswith(EXPECTED_SUMMARY)  # the summary line comes first
    assert "payments not reconciled" in body and "cut-off" in body
    for secret in (SMTP_SECRET, INPUT):
        assert secret not in body and secret.encode() not in raw
    log = (rt.settings.home / "logs" / "reports.log").read_text()
    assert '"event": "summary_sent"' in log and SMTP_SECRET not in log
    assert SMTP_SECRET not in json.dumps(result)


def test_a_failing_channel_never_fails_the_report(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    refused = free_port()  # nothing listens there
    with smtp_server() as (mailbox, port):
        env = {**mail_env(port), "ECHOPILOT_ALERT_URLS": f"json://127.0.0.1:{refused}/hook"}
        result = cli_report(rt.settings, "--date", DAY_TEXT, env=env)

    assert result["sent"][f"mailto://127.0.0.1:{port}"] == "ok"
    failed = result["sent"][f"json://127.0.0.1:{refused}"]
    assert failed != "ok" and failed
    assert len(mailbox.messages) == 1
    assert all(Path(p).is_file() for p in result["paths"].values())
    log = (rt.settings.home / "logs" / "reports.log").read_text()
    assert '"event": "summary_send_failed"' in log


# ------------------------------------------------------------------ HTML and CSV


def test_user_text_is_escaped_in_the_html(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    result = service.make(rt, DAY, actor="test", now=at(9, days=1))
    html = Path(result["paths"]["html"]).read_text()

    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Ltd &lt;evil@example.com&gt;" in html
    assert "&lt;b&gt;self-heal&lt;/b&gt; retried 5 jobs" in html
    assert "<b>" not in html
    assert "=HYPERLINK(&quot;http://evil.example&quot;" in html
    # Nothing may be fetched: no URL to load from, and the policy forbids it anyway.
    assert "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html


def test_the_csv_has_one_figure_a_row_and_no_formula(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    result = service.make(rt, DAY, actor="test", now=at(9, days=1))

    rows = list(csv.reader(io.StringIO(Path(result["paths"]["csv"]).read_text(), newline="")))

    assert rows[0] == ["section", "key", "metric", "value"]
    assert all(len(row) == 4 for row in rows)
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    figures = {(s, k, m): v for s, k, m, v in rows[1:]}
    assert figures[("report", "", "summary_line")] == EXPECTED_SUMMARY
    assert figures[("finance", "", "revenue")] == "40.00"
    assert figures[("finance", "", "cost")] == "0.280345"
    assert figures[("finance.breakdown.task_type", "research", "revenue")] == "25.00"
    assert figures[("quality.distribution", "90-100", "jobs")] == "2"
    dead_id = str(seed_ids(rt)["j4"])
    assert figures[("operations.dead.jobs", dead_id, "name")] == "'" + FORMULA_NAME
    assert figures[("operations.dead.jobs", dead_id, "error")] == "'" + DEAD_ERROR
    assert figures[("late_sources", "jobs", "count")] == "2"
    assert render_csv.safe_cell("-3.50") == "'-3.50"
    assert render_csv.safe_cell("+1") == "'+1" and render_csv.safe_cell(None) == ""


def seed_ids(rt: Runtime) -> dict[str, int]:
    with rt.engine.connect() as conn:
        found = dict(conn.execute(select(Job.name, Job.id)).all())
    return {"j4": found[FORMULA_NAME]}


def test_the_html_report_draws_its_charts_offline_in_headless_chromium(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    require_browser()
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    result = service.make(rt, DAY, actor="test", now=at(9, days=1))
    url = Path(result["paths"]["html"]).resolve().as_uri()

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        requested: list[str] = []
        problems: list[str] = []
        try:
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            assert page.title() == "EchoPilot daily report 2025-03-14"
            assert page.locator("#summary-line").inner_text() == EXPECTED_SUMMARY
            charts = page.eval_on_selector_all(
                "svg.chart",
                """svgs => svgs.map(svg => {
                    const box = svg.getBoundingClientRect();
                    const bars = [...svg.querySelectorAll('rect.bar')].map(r => r.getBBox())
                        .filter(b => b.width > 0 && b.height > 0).length;
                    return {title: svg.querySelector('title').textContent,
                            width: box.width, height: box.height, bars: bars,
                            labels: svg.querySelectorAll('text.axis-label').length};
                })""",
            )
            late = page.locator("#late-sources").inner_text()
            save_screenshot(page, tmp_path, "daily-report.png")
        finally:
            context.close()

    assert [c["title"] for c in charts] == [
        "Jobs finished per hour",
        "Revenue and model cost by task type",
        "Margin by task type",
        "QA score distribution",
    ]
    for chart in charts:
        assert chart["width"] > 200 and chart["height"] > 100, chart
        assert chart["labels"] == 2, chart  # both axes are labelled
    bars = {c["title"]: c["bars"] for c in charts}
    assert bars["Jobs finished per hour"] == 5  # one bar per hour and status with a job
    assert bars["Revenue and model cost by task type"] == 5  # summary earned nothing
    assert bars["Margin by task type"] == 2  # only types with revenue have a margin
    assert bars["QA score distribution"] == 3
    assert "2 jobs submitted that day have not finished" in late
    assert requested == [url]  # the page itself, and nothing from anywhere
    assert problems == []


# ------------------------------------------------------------------ API and retention


def test_the_api_makes_a_report_and_serves_the_newest(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    seed_day(rt)
    with api_client(rt) as client:
        assert_error(client.get("/api/reports/daily/latest"), 404, "not_found")
        assert assert_ok(client.get("/api/reports/daily")) == {"reports": []}

        made = assert_ok(client.post("/api/reports/daily", params={"date": DAY_TEXT}))
        earlier = assert_ok(client.post("/api/reports/daily", params={"date": "2025-03-10"}))
        latest = assert_ok(client.get("/api/reports/daily/latest"))
        listed = assert_ok(client.get("/api/reports/daily", params={"limit": 5}))["reports"]
        again = assert_ok(client.post("/api/reports/daily", params={"date": DAY_TEXT}))
        assert_error(client.get("/api/reports/daily", params={"limit": 0}), 422)
        unkeyed = client.get("/api/reports/daily/latest", headers={"X-Dash-Key": "wrong-key"})

    assert made["summary_line"] == EXPECTED_SUMMARY and made["replaced"] is False
    assert earlier["summary_line"] == "Jobs 0 | QA n/a % | ROI n/a | Retries 0"
    assert again["replaced"] is True
    assert latest["date"] == DAY_TEXT  # the newest day, not the last one made
    assert latest["finance"]["revenue"] == "40.00"
    assert [r["date"] for r in listed] == [DAY_TEXT, "2025-03-10"]
    assert listed[0]["summary_line"] == EXPECTED_SUMMARY
    assert unkeyed.status_code == 401
    with read_session(rt.sessions) as session:
        actors = session.scalars(
            select(AuditLog.actor).where(AuditLog.action == "report.daily")
        ).all()
    assert actors == ["api"] * 3


def test_retention_keeps_the_newest_reports_of_each_kind(
    make_runtime: Callable[..., Runtime],
) -> None:
    from echopilot import retention

    rt = make_runtime(ai_provider="offline", retention_keep=2)
    now = at(9, days=1)
    for back in range(3):
        service.make(rt, DAY - timedelta(days=back), actor="test", now=now)

    outcome = retention.run(rt, dry_run=False, now=now).as_dict()

    daily_patterns = [p for p in outcome["patterns"] if p["pattern"].startswith("daily/")]
    assert [(p["kept"], p["deleted"]) for p in daily_patterns] == [(2, 1)] * 3
    assert report_files(rt.settings.home) == [
        ".write.lock",
        *(
            f"daily_report_{d}.{k}"
            for d in ("20250313", "20250314")
            for k in ("csv", "html", "json")
        ),
    ]
    assert files.days_with_reports(rt.settings.home) == [DAY, DAY - timedelta(days=1)]


# ------------------------------------------------------------------ the scheduled task


def test_the_daily_report_is_a_scheduled_task_at_sched_report_utc(
    make_settings: Callable[..., Settings],
) -> None:
    from echopilot.scheduler.table import build

    assert build(make_settings())["daily_report"].schedule.text == "daily 09:00"
    table = build(make_settings(sched_report_utc="7:30"))
    assert table["daily_report"].schedule.text == "daily 07:30"
    assert table["daily_report"].task.timeout >= timedelta(minutes=30)
    overridden = build(make_settings(sched_report_utc="07:30", schedules={"daily_report": "off"}))
    assert overridden["daily_report"].schedule.off
    assert service.scheduled_day(at(7, 30, days=1)) == DAY


@pytest.fixture
def scheduled(make_runtime: Callable[..., Runtime]) -> Iterator[Runtime]:
    quiet = ("recovery_sweep", "retention", "self_heal", "alert_check", "optimizer")
    yield make_runtime(
        ai_provider="offline",
        sched_report_utc="07:30",
        schedules=dict.fromkeys(quiet, "off"),
    )


def test_the_scheduler_reports_on_the_day_before_its_slot(scheduled: Runtime) -> None:
    from echopilot.scheduler.daemon import Scheduler
    from echopilot.scheduler.executor import InlineRunner
    from echopilot.scheduler.table import build

    seed_day(scheduled)
    clock = {"now": at(7, 29, 50, days=1)}  # the scheduler is up before the slot
    sched = Scheduler(
        scheduled, build(scheduled.settings), InlineRunner(scheduled), clock=lambda: clock["now"]
    )
    try:
        sched.start(clock["now"])
        clock["now"] = now = at(7, 30, 5, days=1)
        assert sched.tick(now) == ["daily_report"]
        sched.wait_idle()
    finally:
        sched.shutdown(0)

    with read_session(scheduled.sessions) as session:
        runs = session.scalars(select(ScheduleRun).where(ScheduleRun.task == "daily_report")).all()
    assert [(r.slot, r.status) for r in runs] == [(at(7, 30, days=1), "ok")], [
        (r.slot, r.status, r.error) for r in runs
    ]
    summary = runs[0].summary
    assert summary["date"] == DAY_TEXT and summary["summary_line"] == EXPECTED_SUMMARY
    assert summary["cutoff"] == now.isoformat()
    assert set(summary["paths"]) == {"json", "html", "csv"}
    assert all(Path(p).is_file() for p in summary["paths"].values())


def test_a_bad_sched_report_utc_stops_start_up_naming_it(offline: Runtime) -> None:
    for bad in ("25:00", "9am", "09:60"):
        for command in (("scheduler", "status"), ("report", "daily")):
            result = run_cli(offline.settings, *command, extra_env={"SCHED_REPORT_UTC": bad})
            assert result.returncode == 2, (bad, command, result.stderr)
            assert result.stderr.startswith("error: SCHED_REPORT_UTC: "), result.stderr
            assert bad in result.stderr
    assert report_files(offline.settings.home) == []
