"""What the soak asserts at the end of its month, from the database, the files and the
outside servers; each check returns its figures for the summary. Finance is recomputed here
from the raw job, attempt and payment rows, independently of EchoPilot's roll-ups."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select

from echopilot.clock import as_utc
from echopilot.db.engine import read_session
from echopilot.db.models import (
    Alert,
    AlertEvent,
    Job,
    JobAttempt,
    Payment,
    PaymentReconcile,
    ScheduleRun,
)
from tests.soak.month import Month
from tests.soak.world import Mark

FINAL = ("done", "needs_review")
# The hours around the brief's 08:00 slot that explain its freshness line.
MORNING = (timedelta(hours=6), timedelta(hours=9))


def runs(month: Month, task: str) -> list[tuple[datetime, str, str, str | None]]:
    """(slot, status, trigger, error) of every run of `task`."""
    with read_session(month.world.runtime.sessions) as session:
        rows = session.execute(
            select(ScheduleRun.slot, ScheduleRun.status, ScheduleRun.trigger, ScheduleRun.error)
            .where(ScheduleRun.task == task)
            .order_by(ScheduleRun.slot)
        ).all()
    return [(as_utc(slot), status, trigger, error) for slot, status, trigger, error in rows]  # type: ignore[misc]


def reconciliations(month: Month, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    """What a stale freshness line needs explained: the scheduled reconciliation runs and
    the reconciliation records between `since` and `until`."""
    scheduled = [r for r in runs(month, "payment_reconcile") if since <= r[0] <= until]
    with read_session(month.world.runtime.sessions) as session:
        records = session.execute(
            select(PaymentReconcile.started_at, PaymentReconcile.finished_at,
                   PaymentReconcile.ok, PaymentReconcile.error)
            .where(PaymentReconcile.started_at.between(since, until))
            .order_by(PaymentReconcile.started_at)
        ).all()  # fmt: skip
    return [*scheduled, *(tuple(r) for r in records)]


def mornings(month: Month, hour: int) -> list[datetime]:
    """The slot of `hour` on every morning of the soak and the morning after it."""
    first = month.world.start_at + timedelta(hours=hour)
    return [first + timedelta(days=n) for n in range(month.days + 1)]


def daily_once(month: Month, task: str, hour: int, may_fail: str | None = None) -> dict[str, Any]:
    """Each morning's run of `task` happened once: on time, or caught up once; ok, except
    that on a day whose fault is `may_fail` it may have failed (and must say why)."""
    found = [(s, st, t, e) for s, st, t, e in runs(month, task) if st != "skipped"]
    per_slot = Counter(slot for slot, *_ in found)
    expected = mornings(month, hour)
    assert [s for s in expected if per_slot[s] != 1] == [], (task, per_slot)
    assert set(per_slot) == set(expected), (task, sorted(set(per_slot) - set(expected)))
    faults = {day.start.date(): day.fault for day in month.plan}
    failed = [(slot, error) for slot, status, _, error in found if status != "ok"]
    for slot, error in failed:
        assert may_fail is not None and faults.get(slot.date()) == may_fail, (slot, error)
    caught_up = sorted(slot.date() for slot, _, trigger, _ in found if trigger == "catchup")
    assert caught_up == sorted(d for d, f in faults.items() if f == "scheduler_killed"), caught_up
    return {
        "runs": len(found),
        "caught_up": len(caught_up),
        "failed": [f"{slot:%Y-%m-%d}: {error}" for slot, error in failed],
    }


def briefs(month: Month) -> dict[str, Any]:
    """One brief a morning; the brief after a fault that left a gap names it in its
    freshness line, and no other brief names a gap that was not there."""
    figures = daily_once(month, "brief", 8, may_fail="smtp_refuses_logins")
    for day in month.plan:
        if day.fault == "smtp_refuses_logins":
            # The brief was written, its email refused: the run says so in one line.
            [error] = [e for s, st, _, e in runs(month, "brief") if s.date() == day.start.date()]
            assert error and "email failed" in error and "\n" not in error, error
    folder = month.world.home / "reports" / "briefs"
    lines: dict[str, str] = {}
    for path in sorted(folder.glob("brief_*.json")):
        brief = json.loads(path.read_text())
        day = datetime.fromisoformat(brief["generated_at"]).date().isoformat()
        lines[day] = brief["freshness"]["line"]
    for day in month.plan[1:]:  # the first morning's brief is the one retention prunes
        line = lines.get(day.start.date().isoformat())
        assert line is not None, (day.start.date(), sorted(lines))
        if day.fault == "scheduler_killed":
            assert "Stripe not reconciled since" in line, line
        elif day.fault == "model_down":
            assert "not finished" in line, line
        else:
            assert "Stripe not reconciled" not in line and "not finished" not in line, (
                day.n,
                day.fault,
                line,
                reconciliations(month, day.start + MORNING[0], day.start + MORNING[1]),
            )
    figures["freshness_lines"] = lines
    return figures


def self_heal(month: Month) -> dict[str, Any]:
    """Self-heal ran once in every 6-hour slot of the month."""
    done = Counter(slot for slot, status, trigger, _ in runs(month, "self_heal")
                   if status == "ok" and trigger != "startup")  # fmt: skip
    start, end = month.world.start_at, month.world.now
    slots = []
    at = start
    while at <= end:
        slots.append(at)
        at += timedelta(hours=6)
    missing = [s for s in slots if done[s] != 1]
    assert missing == [], [
        (slot, [r for r in runs(month, "self_heal") if abs(r[0] - slot) <= timedelta(hours=6)])
        for slot in missing
    ]
    return {"slots": len(slots)}


# What only the stand-alone `ingest` and `analyze` commands write; the soak never runs them.
NEVER_MADE = frozenset({"ingest/*.json", "analysis/*.json"})


def retention(month: Month) -> dict[str, Any]:
    """Each report pattern keeps exactly its newest `keep` files."""
    reports = month.world.home / "reports"
    kept = {}
    for pattern in month.world.settings.retention_pattern_list:
        found = sorted(p.name for p in reports.glob(pattern))
        if pattern in NEVER_MADE:
            assert found == [], (pattern, found[:3])
            continue
        # One more was made (the morning after the month) than retention keeps.
        assert len(found) == month.world.keep, (pattern, len(found))
        kept[pattern] = len(found)
    daily = sorted(p.name for p in reports.glob("daily/daily_report_*.json"))
    newest = (month.world.start_at + timedelta(days=month.days - 1)).strftime("%Y%m%d")
    assert daily and newest in daily[-1], daily[-3:]
    assert len(daily) == month.world.keep, len(daily)
    return kept


def jobs(month: Month) -> dict[str, Any]:
    """Every accepted job ended, once; every refused input made no job; nobody paid twice."""
    world = month.world
    accepted = world.accepted.ids
    asked = {spec["name"] for day in month.plan for batch in day.batches.values() for spec in batch}
    with read_session(world.runtime.sessions) as session:
        found = session.execute(select(Job.id, Job.name, Job.status)).all()
        rows = {name: (job_id, status) for job_id, name, status in found}
        names = Counter(name for _, name, _ in found)
        ok_attempts = Counter(
            session.scalars(select(JobAttempt.job_id).where(JobAttempt.status == "ok"))
        )
        lost = session.scalar(select(JobAttempt.id).where(JobAttempt.status == "lost").limit(1))
        payments = Counter(session.scalars(select(Payment.job_id).where(Payment.kind == "payment")))
        without_link = list(
            session.scalars(
                select(Job.id).where(Job.status == "done", Job.payment_status == "link_pending")
            )
        )
    assert not [n for n in asked if n not in accepted and n not in world.accepted.refused]
    bad = {name: named for day in month.plan for name, named in day.bad.items()}
    assert set(world.accepted.refused) == set(bad)
    unclear = {n: a for n, a in world.accepted.refused.items() if bad[n] not in a}
    assert unclear == {}, unclear  # each refusal names the field at fault
    assert not [n for n in world.accepted.refused if n in rows]
    assert [n for n, count in names.items() if count > 1] == []  # no submission made twice
    if any(day.fault == "worker_killed" for day in month.plan):
        assert lost is not None, "a worker was killed mid-job, yet no attempt was lost"
    lost_jobs = [n for n, i in accepted.items() if rows.get(n, (None,))[0] != i]
    assert lost_jobs == [], lost_jobs[:5]
    unfinished = [n for n, (_, status) in rows.items() if status not in FINAL]
    assert unfinished == [], unfinished[:5]
    twice = [j for j, n in ok_attempts.items() if n > 1]
    assert twice == [], twice[:5]
    charged_twice = [j for j, n in payments.items() if n > 1]
    assert charged_twice == [], charged_twice
    assert without_link == [], without_link[:5]  # reconciliation made what the worker could not
    links = Counter(str(link["metadata"].get("job_id")) for link in world.stripe.links.values())
    linked_twice = [j for j, n in links.items() if n > 1]
    assert linked_twice == [], linked_twice
    statuses = Counter(status for _, status in rows.values())
    return {
        "accepted": len(accepted),
        "refused_bad_input": len(world.accepted.refused),
        "answered_503": len(world.accepted.unavailable),
        "by_status": dict(statuses),
        "lost_attempts_recovered": lost is not None,
        "paid_jobs": len(payments),
        "payment_links": len(links),
    }


def alerts(month: Month) -> dict[str, Any]:
    """Every alert that fired was resolved, once, and its resolution sent once a channel."""
    with read_session(month.world.runtime.sessions) as session:
        alerts = session.execute(select(Alert.id, Alert.rule, Alert.status)).all()
        events = session.execute(
            select(AlertEvent.alert_id, AlertEvent.event, AlertEvent.channel, AlertEvent.detail)
        ).all()
    by_alert: dict[int, Counter[str]] = defaultdict(Counter)
    sent: Counter[tuple[int, str, str]] = Counter()
    channels = set()
    for alert_id, event, channel, detail in events:
        if alert_id is None:
            continue
        by_alert[alert_id][event] += 1
        if event == "sent":
            channels.add(channel)
            sent[(alert_id, channel, (detail or {}).get("kind", ""))] += 1
    still_open = [(i, rule) for i, rule, status in alerts if status != "resolved"]
    assert still_open == [], still_open
    for alert_id, _, _ in alerts:
        assert by_alert[alert_id]["fired"] == 1, (alert_id, by_alert[alert_id])
        assert by_alert[alert_id]["resolved"] == 1, (alert_id, by_alert[alert_id])
    # Both channels (email and the HTTP receiver) were used, and each alert's resolution
    # reached each of them exactly once; its first notice at most once.
    assert len(channels) == 2, channels
    for alert_id, _, _ in alerts:
        for channel in channels:
            assert sent[(alert_id, channel, "resolved")] == 1, (alert_id, channel, sent)
            assert sent[(alert_id, channel, "fired")] <= 1, (alert_id, channel, sent)
    return {
        "fired": len(alerts),
        "by_rule": dict(Counter(rule for _, rule, _ in alerts)),
        "emails": len(month.world.mail.messages),
        "webhook_posts": len(month.world.hooks.posts),
        "refused_smtp_logins": month.world.mail.refused_logins,
    }


def _money(cents_or_micros: Decimal, places: str) -> str:
    return str(cents_or_micros.quantize(Decimal(places), rounding=ROUND_HALF_EVEN))


def recompute(month: Month) -> dict[str, Any]:
    """Revenue billed, revenue paid, cost, profit, margin and ROI of the whole soak from the
    raw rows (jobs finished, every attempt's spend, every ledger entry)."""
    with read_session(month.world.runtime.sessions) as session:
        billed = sum(
            session.scalars(
                select(Job.price_cents).where(
                    Job.status == "done",
                    Job.payment_status != "na",
                    Job.price_cents.is_not(None),
                )
            )
        )
        finished = set(session.scalars(select(Job.id).where(Job.finished_at.is_not(None))))
        cost = sum(
            micros
            for job_id, micros in session.execute(select(JobAttempt.job_id, JobAttempt.cost_micros))
            if job_id in finished
        )
        paid = sum(session.scalars(select(Payment.amount_cents)))
    profit = Decimal(billed) * 10_000 - cost
    return {
        "jobs": len(finished),
        "revenue": _money(Decimal(billed) / 100, "0.01"),
        "revenue_paid": _money(Decimal(paid) / 100, "0.01"),
        "cost": _money(Decimal(cost) / 1_000_000, "0.000001"),
        "profit": _money(profit / 1_000_000, "0.000001"),
        "margin_pct": None if not billed else _money(profit * 100 / (billed * 10_000), "0.1"),
        "roi": None if not cost else _money(profit / cost, "0.01"),
    }


def finance(month: Month) -> dict[str, Any]:
    """EchoPilot's own figures (the API, over a window that holds the whole soak) equal the
    recomputation to the cent."""
    world = month.world
    days = month.days + 3
    answer = world.client.get(world.url + "/api/finance-metrics", params={"days": days})
    assert answer.status_code == 200, answer.text
    window = answer.json()["data"]["windows"][f"{days}d"]
    ours = recompute(month)
    theirs = {key: window[key] for key in ours}
    assert theirs == ours, {"echopilot": theirs, "recomputed": ours}
    return ours


def alert_marks(month: Month) -> list[Mark]:
    """Every alert's firing and resolution, for the timeline."""
    with read_session(month.world.runtime.sessions) as session:
        rows = session.execute(
            select(Alert.rule, Alert.title, Alert.first_seen_at, Alert.resolved_at)
        ).all()
    marks = []
    for rule, title, fired, resolved in rows:
        marks.append(Mark(as_utc(fired), "alert", f"{rule} fired: {title}"))  # type: ignore[arg-type]
        if resolved is not None:
            marks.append(Mark(as_utc(resolved), "resolved", f"{rule} resolved"))  # type: ignore[arg-type]
    return marks


def daily_reports(month: Month) -> dict[str, Any]:
    """One report a day, made once (on time, or caught up once); the one made the morning
    the scheduler came back names the payments gap in its late sources, no other does."""
    figures = daily_once(month, "daily_report", 9)
    folder = month.world.home / "reports" / "daily"
    late: dict[str, list[str]] = {}
    for day in month.plan[1:]:  # the first morning's report is the one retention prunes
        covered = day.start.date() - timedelta(days=1)
        path = folder / f"daily_report_{covered:%Y%m%d}.json"
        report = json.loads(path.read_text())
        details = [item["detail"] for item in report["late_sources"]]
        named = any("Stripe not reconciled since" in d for d in details)
        assert named == (day.fault == "scheduler_killed"), (day.n, day.fault, details)
        late[covered.isoformat()] = details
    figures["late_sources"] = {d: v for d, v in late.items() if v}
    return figures
