"""Regressions of the CEO brief's review fixes: each test fails on the code before its fix.

1. a day with no job at all is no data for the statistics (a business resting at weekends);
2. ECHOPILOT_BRIEF_QA_RUN above the ten newest scored jobs still finds its run;
3. the narrative guard is signed: a loss stated as a gain is refused;
4. a brief is emailed once, also after a failure that reached some of its addresses;
5. the scheduled run takes over a stale claim, and fails when the mail server refuses;
6. a brief's analysis is not rewritten by a later analyze of its snapshot;
7. `echopilot brief --email` exits 1 when the mail server failed;
8. the headlines keep the original's exact words whatever N;
9. a brief made on a simulated clock carries that clock's time.

Businesses are seeded with the helpers of test_brief_scenarios (cut-off Monday 2026-06-15
08:00 UTC); mail goes to aiosmtpd on 127.0.0.1 as in test_brief_mailer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from echopilot.briefs import compose, files, narrative, service
from echopilot.briefs.narrative import numbers_in, unsupported
from echopilot.db.engine import write_session
from echopilot.db.models import Brief, SchedulerInstance
from echopilot.errors import ConflictError, OperationFailed
from echopilot.runtime import Runtime
from tests import job_rows
from tests.api_support import free_port
from tests.conftest import run_cli
from tests.fakes.model_server import FakeModelServer
from tests.test_brief_delivery import (
    SLOT,
    TO,
    USER,
    brief_rows,
    closed_port,
    folder,
    mail_env,
    mail_values,
)
from tests.test_brief_mailer import Login, Mailbox, smtp_server
from tests.test_brief_narrative import analysis_of, answer
from tests.test_brief_scenarios import (
    HOURS,
    NOW,
    TYPES,
    at,
    job,
    make,
    rules_of,
    seed,
    steady_days,
)

WRONG_PASSWORD = "smtp-pass-Wrong-41xQ"


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(ai_provider="offline")


@pytest.fixture
def mail_rt(make_runtime: Callable[..., Runtime]) -> Callable[..., Runtime]:
    def make_one(port: int, **overrides: Any) -> Runtime:
        return make_runtime(ai_provider="offline", **mail_values(port, **overrides))

    return make_one


def stats_rules(analysis: dict[str, Any]) -> set[str]:
    return {rule for rule in rules_of(analysis) if rule.startswith("stats.")}


# ------------------------------------------------------------------ 1. weekends are no data


def weekdays_only(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["finished_at"].weekday() < 5]


def test_a_weekday_business_briefed_on_monday_about_sunday_is_nominal(rt: Runtime) -> None:
    assert NOW.strftime("%A") == "Monday"
    seed(rt, weekdays_only(steady_days()))
    brief, analysis = make(rt)

    assert stats_rules(analysis) == set(), analysis["anomalies"]
    assert analysis["anomalies"] == []
    assert brief["headline"] == "All systems nominal"
    # Sunday had no job: it is not judged, rather than judged a day of zero revenue.
    revenue = next(s for s in analysis["statistics"] if s["series"] == "revenue")
    assert revenue["day"] == "2026-06-14" and revenue["z"] is None


def test_a_weekday_business_with_a_revenue_collapse_on_a_weekday_is_still_flagged(
    rt: Runtime,
) -> None:
    tuesday = NOW + timedelta(days=1)
    rows = weekdays_only(steady_days())
    # Monday's jobs all ran, at 10 cents each.
    rows += [
        job(task_type, at(NOW.date(), hour), price_cents=10)
        for hour in HOURS
        for task_type in TYPES
    ]
    seed(rt, rows, scheduler=False)
    job_rows.insert_rows(
        rt.engine,
        SchedulerInstance,
        [
            {
                "id": "scheduler-test",
                "host": "test",
                "pid": 1,
                "started_at": tuesday - timedelta(days=2),
                "heartbeat_at": tuesday - timedelta(seconds=15),
                "stopped_at": None,
            }
        ],
    )
    brief = service.make(rt, actor="test", now=tuesday)
    analysis = files.read(rt.settings.home, "analysis", brief["stamp"])
    assert analysis is not None

    assert "stats.revenue" in rules_of(analysis), analysis["anomalies"]
    [collapse] = [a for a in analysis["anomalies"] if a["rule"] == "stats.revenue"]
    assert collapse["evidence"]["day"] == "2026-06-15"
    assert collapse["evidence"]["value"] == pytest.approx(0.6)
    assert collapse["evidence"]["median"] == pytest.approx(54.0)
    assert brief["headline"] != "All systems nominal"


# ------------------------------------------------------------------ 2. a long QA run


@pytest.mark.parametrize(("low", "fires"), [(12, True), (11, False)])
def test_a_qa_run_setting_of_12_needs_12_low_scores(
    make_runtime: Callable[..., Runtime], low: int, fires: bool
) -> None:
    rt = make_runtime(ai_provider="offline", brief_qa_run=12)
    assert rt.settings.brief_qa_run == 12
    # This morning's newest `low` drafting jobs scored 70, after a month of 90s.
    runs = [
        job("drafting", NOW - timedelta(minutes=4 * n), qa_score=70.0) for n in range(low, 0, -1)
    ]
    seed(rt, steady_days() + runs)
    _, analysis = make(rt)

    rule = "quality.low_qa_run:drafting"
    if fires:
        assert rule in rules_of(analysis), analysis["anomalies"]
        [risk] = [a for a in analysis["anomalies"] if a["rule"] == rule]
        assert risk["severity"] == "high"
        assert risk["evidence"]["consecutive_low"] == 12
        assert risk["evidence"]["scores"] == [70.0] * 12
    else:
        assert rule not in rules_of(analysis)


# ------------------------------------------------------------------ 3. a signed number check


def test_a_loss_is_refused_when_stated_as_a_gain_and_used_with_its_minus(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    rows = steady_days()
    for row in rows:  # model cost at 110 % of the price: every job loses money
        row["cost_micros"] = row["price_cents"] * 10_000 * 110 // 100
    seed(rt, rows)
    week = analysis_of(rt)["kpis"]["7d"]
    profit = week["profit"]
    assert profit.startswith("-") and Decimal(profit) < 0, week
    gain = profit.lstrip("-")
    shown = narrative._for_model(analysis_of(rt))
    assert Decimal(gain) not in numbers_in(shown)  # only the minus makes it wrong

    stated_as_gain = f"Over the last 7 days the business made a profit of {gain} USD."
    stated_as_loss = f"Over the last 7 days the profit was {profit} USD."
    model_server.on("task", answer(stated_as_gain), answer(stated_as_loss))

    refused = service.make(rt, actor="test", now=NOW)
    assert refused["narrative"]["source"] == "deterministic"
    assert refused["narrative"]["reason"] == (
        f"the model stated {gain}, which is not in the analysis"
    )
    assert gain not in refused["summary"].replace(profit, "")
    assert f"profit {profit} USD" in refused["summary"]
    assert stated_as_gain not in Path(refused["paths"]["md"]).read_text(encoding="utf-8")

    used = service.make(rt, actor="test", now=NOW)
    assert used["narrative"]["source"] == "model", used["narrative"]
    assert used["summary"] == stated_as_loss
    assert model_server.count() == 2


def test_the_number_check_keeps_the_sign_but_not_a_dates_dashes() -> None:
    loss = numbers_in({"profit": "-12.50"})
    assert loss == {Decimal("-12.5")}
    assert unsupported("Profit was 12.50", loss) == ["12.50"]
    assert unsupported("Profit was -12.50 USD (-12.5).", loss) == []
    assert unsupported("Profit was (-12.50)", loss) == []
    gain = numbers_in({"profit": "12.50"})
    assert unsupported("Profit was -12.50", gain) == ["-12.50"]

    # A minus inside a date is no sign: 2026-06-15 is 2026, 06 and 15.
    dated = numbers_in({"cutoff": "2026-06-15T08:00:00+00:00"})
    assert {Decimal(2026), Decimal(6), Decimal(15)} <= dated
    assert not any(n < 0 for n in dated)
    assert unsupported("On 2026-06-15, day 15 of month 06.", dated) == []
    assert unsupported("On 2026-06-16.", dated) == ["16"]


# ------------------------------------------------------------------ 4. email once, partial failure


def test_a_partial_failure_is_not_sent_again_without_a_resend(
    mail_rt: Callable[..., Runtime],
) -> None:
    mailbox = Mailbox(refuse=frozenset({TO[1]}))
    with smtp_server(mailbox) as (_, port):
        rt = mail_rt(port)
        stamp = service.make(rt, actor="test")["stamp"]

        first = service.email(rt, actor="test", stamp=stamp)
        assert first["status"] == "failed" and first["sent"] is False
        assert first["to"] == [TO[0]]
        assert TO[1] in first["reason"]
        assert [rcpts for _, rcpts, _ in mailbox.messages] == [[TO[0]]]
        assert service.get(rt, stamp)["email"]["to"] == [TO[0]]

        with pytest.raises(ConflictError) as refused:
            service.email(rt, actor="test", stamp=stamp)
        assert "resend" in str(refused.value) and TO[0] in str(refused.value)
        assert len(mailbox.messages) == 1  # the CEO did not get it twice

        mailbox.refuse = frozenset()  # the CFO's mailbox is back
        again = service.email(rt, actor="test", stamp=stamp, resend=True)
    assert (again["status"], again["to"]) == ("sent", TO)
    assert [rcpts for _, rcpts, _ in mailbox.messages] == [[TO[0]], TO]
    [row] = brief_rows(rt)
    assert (row.email_status, row.email_sends) == ("sent", 2)


def test_a_partial_failure_stays_on_record_when_mail_is_then_unset(
    mail_rt: Callable[..., Runtime], make_runtime: Callable[..., Runtime]
) -> None:
    mailbox = Mailbox(refuse=frozenset({TO[1]}))
    with smtp_server(mailbox) as (_, port):
        rt = mail_rt(port)
        stamp = service.make(rt, actor="test")["stamp"]
        service.email(rt, actor="test", stamp=stamp)
    unset = make_runtime(ai_provider="offline")  # the same home, SMTP removed
    with pytest.raises(ConflictError):
        service.email(unset, actor="test", stamp=stamp)
    answer = service.email(unset, actor="test", stamp=stamp, resend=True)
    assert answer["status"] == "not_configured" and "SMTP_HOST" in answer["reason"]
    kept = service.get(unset, stamp)["email"]
    assert (kept["status"], kept["to"]) == ("failed", [TO[0]])  # who got it is not forgotten


def test_a_failure_that_reached_no_one_can_be_retried_without_a_resend(
    mail_rt: Callable[..., Runtime],
) -> None:
    port = free_port()
    rt = mail_rt(port)
    stamp = service.make(rt, actor="test")["stamp"]
    first = service.email(rt, actor="test", stamp=stamp)
    assert first["status"] == "failed" and first["to"] == []
    assert "refused" in first["reason"]

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()  # the mail server is up again, where it was
    try:
        retried = service.email(rt, actor="test", stamp=stamp)
    finally:
        controller.stop()
    assert (retried["status"], retried["to"]) == ("sent", TO)
    assert [rcpts for _, rcpts, _ in mailbox.messages] == [TO]


# ------------------------------------------------------------------ 5. the scheduled run


def claimed(rt: Runtime, stamp: str, at_: datetime) -> None:
    """The brief as a send that crashed at `at_` left it."""
    with write_session(rt.sessions) as session:
        session.execute(
            update(Brief)
            .where(Brief.stamp == stamp)
            .values(email_status="sending", email_claimed_at=at_)
        )


@pytest.mark.parametrize(
    ("claim_age", "sends"), [(timedelta(minutes=16), True), (timedelta(minutes=1), False)]
)
def test_a_scheduled_run_takes_over_a_stale_claim_only(
    mail_rt: Callable[..., Runtime], claim_age: timedelta, sends: bool
) -> None:
    now = SLOT + timedelta(minutes=30)
    with smtp_server() as (mailbox, port):
        rt = mail_rt(port)
        made = service.make(rt, actor="scheduler", now=SLOT, slot=SLOT)
        claimed(rt, made["stamp"], now - claim_age)
        summary = service.scheduled(rt, slot=SLOT, now=now)

    assert summary["stamp"] == made["stamp"]
    [row] = brief_rows(rt)
    if sends:
        assert summary["email"] == "sent", summary
        assert [rcpts for _, rcpts, _ in mailbox.messages] == [TO]
        assert (row.email_status, row.email_sends) == ("sent", 1)
    else:
        assert summary["email"] == "conflict", summary
        assert "being emailed" in summary["email_reason"]
        assert mailbox.messages == []
        assert row.email_status == "sending"


def test_a_scheduled_run_whose_login_is_refused_fails_naming_the_brief(
    mail_rt: Callable[..., Runtime],
) -> None:
    login = Login(USER, "the-right-password")
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        rt = mail_rt(port, smtp_user=USER, smtp_pass=WRONG_PASSWORD)
        with pytest.raises(OperationFailed) as failed:
            service.scheduled(rt, slot=SLOT, now=SLOT + timedelta(seconds=2))

    assert login.tried and mailbox.messages == []
    [row] = brief_rows(rt)
    assert row.stamp in str(failed.value)
    assert "login" in str(failed.value).lower()
    assert WRONG_PASSWORD not in str(failed.value)
    assert row.email_status == "failed"
    for path in row.paths.values():
        assert Path(path).is_file(), path


# ------------------------------------------------------------------ 6. a brief's analysis is kept


def test_analyze_of_a_briefs_stamp_is_a_conflict_and_keeps_its_analysis(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed(rt, steady_days())
    stamp = service.make(rt, actor="test", now=NOW)["stamp"]
    path = folder(rt) / f"analysis_{stamp}.json"
    before = path.read_bytes()

    # Stricter settings would find a margin problem the brief did not report.
    strict = make_runtime(ai_provider="offline", brief_min_margin_pct=80)
    with pytest.raises(ConflictError) as refused:
        service.run_analyze(strict, stamp=stamp, now=NOW)
    assert stamp in str(refused.value)
    assert path.read_bytes() == before

    bare = service.run_ingest(strict, now=NOW)["stamp"]
    analyzed = service.run_analyze(strict, stamp=bare, now=NOW)
    assert analyzed["stamp"] == bare
    assert Path(analyzed["path"]) == folder(rt) / f"analysis_{bare}.json"
    assert "finance.margin_low" in rules_of(analyzed["analysis"])
    assert path.read_bytes() == before


# ------------------------------------------------------------------ 7. the CLI's exit code


def test_brief_email_exits_1_when_the_login_is_refused(offline: Runtime) -> None:
    login = Login(USER, "the-right-password")
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        env = mail_env(port, SMTP_USER=USER, SMTP_PASS=WRONG_PASSWORD)
        result = run_cli(offline.settings, "brief", "--email", extra_env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Not emailed" in result.stdout and "SMTP_USER" in result.stdout
    assert WRONG_PASSWORD not in result.stdout + result.stderr
    assert login.tried and mailbox.messages == []
    [row] = brief_rows(offline)
    assert row.email_status == "failed"
    assert all(Path(p).is_file() for p in row.paths.values())


def test_brief_email_exits_0_when_smtp_is_not_configured(offline: Runtime) -> None:
    result = run_cli(offline.settings, "brief", "--email")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Not emailed" in result.stdout and "SMTP_HOST" in result.stdout


def test_brief_email_to_an_unreachable_server_exits_1(offline: Runtime) -> None:
    result = run_cli(offline.settings, "brief", "--email", extra_env=mail_env(closed_port()))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Not emailed" in result.stdout


# ------------------------------------------------------------------ 8. the original's headlines


@pytest.mark.parametrize(
    ("high", "total", "words"),
    [
        (1, 1, "1 HIGH SEVERITY ALERTS"),
        (1, 4, "1 HIGH SEVERITY ALERTS"),
        (2, 2, "2 HIGH SEVERITY ALERTS"),
        (0, 1, "1 anomalies detected"),
        (0, 3, "3 anomalies detected"),
    ],
)
def test_headlines_keep_the_originals_words_whatever_n(high: int, total: int, words: str) -> None:
    analysis = {"counts": {"high": high, "total": total}, "empty": False}
    assert compose.headline(analysis) == words


def test_one_high_finding_is_1_high_severity_alerts(rt: Runtime) -> None:
    low = [job("drafting", NOW - timedelta(hours=h), qa_score=70.0) for h in (5, 4, 3)]
    seed(rt, steady_days() + low)
    brief, analysis = make(rt)
    assert brief["counts"] == {"high": 1, "medium": 0, "low": 0, "total": 1}, analysis
    assert brief["headline"] == "1 HIGH SEVERITY ALERTS"
    assert "1 HIGH SEVERITY ALERTS" in Path(brief["paths"]["md"]).read_text(encoding="utf-8")


def test_one_medium_finding_is_1_anomalies_detected(rt: Runtime) -> None:
    rows = steady_days()
    for row in rows:  # the newest day's jobs took 60 s: slow for the day, not for the week
        if row["finished_at"].date() == NOW.date() - timedelta(days=1):
            row["duration_ms"] = 60_000
            row["created_at"] = row["finished_at"] - timedelta(seconds=60)
    seed(rt, rows)
    brief, analysis = make(rt)
    assert rules_of(analysis) == {"stats.latency_p95_ms"}
    assert brief["counts"] == {"high": 0, "medium": 1, "low": 0, "total": 1}
    assert brief["headline"] == "1 anomalies detected"


# ------------------------------------------------------------------ 9. a simulated clock


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_a_brief_made_on_a_simulated_clock_carries_its_time(rt: Runtime) -> None:
    today = service.make(rt, actor="test", now=NOW)
    # Made after it in wall time, but for the day before on the simulated clock.
    yesterday = service.make(rt, actor="test", now=NOW - timedelta(days=1))

    assert today["generated_at"] == "2026-06-15T08:00:00+00:00"
    assert yesterday["generated_at"] == "2026-06-14T08:00:00+00:00"
    saved = files.read(rt.settings.home, "brief", today["stamp"])
    assert saved is not None and saved["generated_at"] == "2026-06-15T08:00:00+00:00"
    rows = {row.stamp: row for row in brief_rows(rt)}
    assert as_utc(rows[today["stamp"]].created_at) == NOW
    assert as_utc(rows[yesterday["stamp"]].created_at) == NOW - timedelta(days=1)

    listed = service.listing(rt, limit=10)["briefs"]
    assert [b["stamp"] for b in listed] == [today["stamp"], yesterday["stamp"]]
    assert listed[0]["created_at"] == "2026-06-15T08:00:00+00:00"
    assert service.latest(rt)["stamp"] == today["stamp"]
