"""The brief's risk rules (quality, finance, operations, growth) and its statistical
checks, applied to one ingest snapshot. Each finding is an anomaly with its evidence: the
numbers, days and job ids it rests on, so an owner can check it.

Thresholds come from the settings (ECHOPILOT_BRIEF_*); the rules are the original
system's (../DESIGN section 8) with its flaws fixed: every number is computed, never asked
of a model.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from echopilot.briefs import detect
from echopilot.config import Settings

HIGH, MEDIUM, LOW = "high", "medium", "low"
SEVERITY_RANK = {HIGH: 0, MEDIUM: 1, LOW: 2}
FAILURE_RATE_PCT = Decimal("10")  # dead jobs per ended job over 7 days, in %
QUEUE_WAIT_SECONDS = 300  # queued this long with no live worker: nobody is working

Signals = dict[str, Any]
Anomaly = dict[str, Any]

# Daily series judged statistically: (field, what it is, the direction that is bad, the
# smallest change that matters when the past was flat, unit).
SERIES = (
    ("revenue", "revenue per day", "down", 1.0, "USD"),
    ("finished", "jobs finished per day", "down", 1.0, "jobs"),
    ("submitted", "jobs submitted per day", "down", 1.0, "jobs"),
    ("avg_qa", "average QA per day", "down", 1.0, "points"),
    ("margin_pct", "margin per day", "down", 1.0, "%"),
    ("cost", "model cost per day", "up", 0.01, "USD"),
    ("dead", "dead jobs per day", "up", 1.0, "jobs"),
    ("latency_p95_ms", "p95 processing time per day", "up", 1000.0, "ms"),
)


def anomaly(
    rule: str,
    severity: str,
    signal: str,
    title: str,
    evidence: dict[str, Any],
    suggested_fix: str,
    *,
    kind: str = "rule",
) -> Anomaly:
    return {
        "rule": rule,
        "domain": rule.split(".", 1)[0],
        "type": kind,
        "severity": severity,
        "signal": signal,
        "title": title,
        "evidence": evidence,
        "suggested_fix": suggested_fix,
    }


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# --- quality -----------------------------------------------------------------------------


def low_qa_runs(s: Signals, settings: Settings) -> list[Anomaly]:
    found = []
    floor = settings.brief_qa_floor
    for t in s["task_types"]:
        run = []
        for job in t["recent_scored"]:  # newest first
            if job["qa_score"] >= floor:
                break
            run.append(job)
        if len(run) < settings.brief_qa_run:
            continue
        name = t["task_type"]
        more = "+" if len(run) == t.get("recent_limit") else ""  # older ones were not read
        found.append(
            anomaly(
                f"quality.low_qa_run:{name}",
                HIGH,
                f"QA of {name} jobs",
                f"The last {len(run)}{more} {name} jobs scored below {floor}",
                {
                    "task_type": name,
                    "consecutive_low": len(run),
                    "floor": floor,
                    "scores": [j["qa_score"] for j in run],
                    "job_ids": [j["id"] for j in run],
                    "since": run[-1]["finished_at"],
                },
                f"Look at the newest {name} jobs' answers and QA notes; fix the task type's "
                "prompt or route it to a stronger model, and review the low-scored jobs "
                "before they are billed.",
            )
        )
    return found


def qa_below_target(s: Signals, settings: Settings) -> list[Anomaly]:
    target = settings.brief_qa_target
    found = []
    overall = s["kpis"]["7d"]["avg_qa"]
    if overall is not None and overall < target:
        found.append(
            anomaly(
                "quality.avg_below_target",
                MEDIUM,
                "average QA over 7 days",
                f"Average QA over 7 days is {overall}, below the target of {target}",
                {"avg_qa_7d": overall, "target": target, "jobs_7d": s["kpis"]["7d"]["jobs"]},
                "Find the task types pulling the average down (below) and fix those first.",
            )
        )
    for t in s["task_types"]:
        avg = t["avg_qa_7d"]
        if avg is None or avg >= target:
            continue
        name = t["task_type"]
        found.append(
            anomaly(
                f"quality.type_below_target:{name}",
                MEDIUM,
                f"average QA of {name} over 7 days",
                f"{name}: average QA over 7 days is {avg}, below the target of {target}",
                {"task_type": name, "avg_qa_7d": avg, "target": target, "jobs_7d": t["jobs_7d"]},
                f"Review {name}'s prompt and recent answers; raise its QA target or price "
                "only once quality is back.",
            )
        )
    return found


# --- finance -----------------------------------------------------------------------------


def roi_low(s: Signals, settings: Settings) -> list[Anomaly]:
    week = s["kpis"]["7d"]
    roi = _dec(week["roi"])
    if roi is None or roi >= settings.brief_min_roi:
        return []
    loss = _dec(week["profit"]) is not None and Decimal(week["profit"]) < 0
    return [
        anomaly(
            "finance.roi_low",
            HIGH if loss else MEDIUM,
            "ROI over 7 days",
            f"ROI over 7 days is {week['roi']}, below {settings.brief_min_roi}",
            {
                "roi_7d": week["roi"],
                "min_roi": str(settings.brief_min_roi),
                "profit_7d": week["profit"],
                "cost_7d": week["cost"],
                "revenue_7d": week["revenue"],
            },
            "Check the cost per job of the most expensive task types (finance breakdown) "
            "and run the optimiser; move cheap work to a cheaper model.",
        )
    ]


def margin_low(s: Signals, settings: Settings) -> list[Anomaly]:
    week = s["kpis"]["7d"]
    margin = _dec(week["margin_pct"])
    if margin is None or margin >= settings.brief_min_margin_pct:
        return []
    return [
        anomaly(
            "finance.margin_low",
            HIGH if margin < 0 else MEDIUM,
            "margin over 7 days",
            f"Margin over 7 days is {week['margin_pct']} %, below "
            f"{settings.brief_min_margin_pct} %",
            {
                "margin_7d_pct": week["margin_pct"],
                "min_margin_pct": str(settings.brief_min_margin_pct),
                "revenue_7d": week["revenue"],
                "cost_7d": week["cost"],
                "profit_7d": week["profit"],
            },
            "Raise the price of the task types with the lowest margin (`echopilot optimize "
            "--dry-run` shows them) or lower their model cost.",
        )
    ]


def revenue_falling(s: Signals, settings: Settings) -> list[Anomaly]:
    days = s["daily"]
    falls = 0
    for newer, older in zip(reversed(days), list(reversed(days))[1:], strict=False):
        if Decimal(newer["revenue"]) < Decimal(older["revenue"]):
            falls += 1
        else:
            break
    if falls < settings.brief_revenue_down_days:
        return []
    run = days[-falls - 1 :]
    return [
        anomaly(
            "finance.revenue_falling",
            MEDIUM,
            "revenue per day",
            f"Revenue fell {falls} days in a row, from {run[0]['revenue']} to "
            f"{run[-1]['revenue']} USD",
            {
                "days_falling": falls,
                "days": [{"day": d["day"], "revenue": d["revenue"]} for d in run],
            },
            "Check whether fewer jobs came in (sources, Notion queue, clients) or prices "
            "fell; contact the clients whose volume dropped.",
        )
    ]


def unpaid_high_qa(s: Signals, settings: Settings) -> list[Anomaly]:
    unpaid = s["unpaid_high_qa"]
    if not unpaid["jobs"]:
        return []
    count = f"{unpaid['jobs']}{'+' if unpaid['capped'] else ''}"
    return [
        anomaly(
            "finance.unpaid_high_qa",
            MEDIUM,
            "unpaid high-QA jobs",
            f"{count} jobs scored {unpaid['min_qa']}+ are unpaid more than "
            f"{unpaid['older_than_hours']} hours after finishing",
            {
                "jobs": unpaid["jobs"],
                "capped": unpaid["capped"],
                "min_qa": unpaid["min_qa"],
                "older_than_hours": unpaid["older_than_hours"],
                "job_ids": [j["id"] for j in unpaid["oldest"]],
                "oldest_finished_at": unpaid["oldest"][0]["finished_at"]
                if unpaid["oldest"]
                else None,
                "owed_total": s["owed"]["amount"],
            },
            "Send the payment links again (or invoice) for these jobs; mark the ones paid "
            "outside Stripe with `echopilot payments mark-paid ID`.",
        )
    ]


# --- operations --------------------------------------------------------------------------


def latency_high(s: Signals, settings: Settings) -> list[Anomaly]:
    latency = s["kpis"]["7d"]["latency"]
    limit_ms = settings.brief_max_latency_seconds * 1000
    p50, p95 = latency.get("p50_ms"), latency.get("p95_ms")
    if p95 is None or p95 <= limit_ms:
        return []
    slow_days = [
        {"day": d["day"], "latency_p95_ms": d["latency_p95_ms"]}
        for d in s["daily"][-7:]
        if d["latency_p95_ms"] is not None and d["latency_p95_ms"] > limit_ms
    ]
    return [
        anomaly(
            "ops.latency_high",
            HIGH if p50 is not None and p50 > limit_ms else MEDIUM,
            "processing time over 7 days",
            f"p95 processing time over 7 days is {round(p95 / 1000)} s, above "
            f"{settings.brief_max_latency_seconds} s",
            {
                "p50_ms_7d": p50,
                "p95_ms_7d": p95,
                "limit_seconds": settings.brief_max_latency_seconds,
                "slow_days": slow_days,
            },
            "Check the model server's latency and the workers' concurrency; long inputs "
            "may need a faster model or a smaller max_tokens.",
        )
    ]


def failures_high(s: Signals, settings: Settings) -> list[Anomaly]:
    rate = s["kpis"]["7d"]["failure_rate_pct"]
    if rate is None or Decimal(str(rate)) <= FAILURE_RATE_PCT:
        return []
    return [
        anomaly(
            "ops.failure_rate",
            HIGH,
            "dead jobs over 7 days",
            f"{rate} % of the jobs that ended in 7 days are dead (limit {FAILURE_RATE_PCT} %)",
            {
                "failure_rate_7d_pct": rate,
                "dead_7d": s["kpis"]["7d"]["dead"],
                "jobs_7d": s["kpis"]["7d"]["jobs"],
            },
            "Read the dead jobs' errors (`echopilot failures`): fix a permanent cause "
            "(key, model name, input) and retry them.",
        )
    ]


def scheduler_health(s: Signals, settings: Settings) -> list[Anomaly]:
    sched = s["scheduler"]
    found = []
    if not sched["running"] and s["jobs_ever"]:  # a new install has nothing to run yet
        age = sched["heartbeat_age_s"]
        seen = "never seen" if age is None else f"last heartbeat {age} s ago"
        found.append(
            anomaly(
                "ops.scheduler_down",
                HIGH,
                "scheduler heartbeat",
                f"The scheduler is not running ({seen}): no brief, report, self-heal or "
                "reconciliation runs",
                {"heartbeat_age_s": age},
                "Start it: `echopilot up` or `echopilot scheduler start`; a missed slot is "
                "caught up once.",
            )
        )
    if sched["paused"]:
        found.append(
            anomaly(
                "ops.automations_paused",
                MEDIUM,
                "automations",
                "Automations are paused: scheduled tasks do not run",
                {"paused_since": sched["paused_since"]},
                "Resume with `echopilot scheduler start` (or the dashboard) when done.",
            )
        )
    if sched["failed_runs_24h"]:
        tasks = [f"{r['task']} ({r['runs']})" for r in sched["failed_runs_24h"]]
        found.append(
            anomaly(
                "ops.scheduled_failures",
                MEDIUM,
                "scheduled runs",
                f"Scheduled tasks failed in the last 24 hours: {', '.join(tasks)}",
                {"failed_runs_24h": sched["failed_runs_24h"]},
                "Read the failed runs' errors (`echopilot scheduler status --json`, "
                "var/logs/scheduler.log) and fix their cause.",
            )
        )
    return found


def workers_idle(s: Signals, settings: Settings) -> list[Anomaly]:
    w = s["workers"]
    waited = w["oldest_queued_age_s"]
    if not w["queued"] or w["live"] or waited is None or waited < QUEUE_WAIT_SECONDS:
        return []
    return [
        anomaly(
            "ops.no_workers",
            HIGH,
            "workers",
            f"{w['queued']} jobs are queued (the oldest for {waited} s) and no worker is alive",
            {
                "queued": w["queued"],
                "oldest_queued_age_s": waited,
                "newest_worker_heartbeat_age_s": w["newest_heartbeat_age_s"],
            },
            "Start a worker: `echopilot up` or `echopilot worker`.",
        )
    ]


# --- growth ------------------------------------------------------------------------------


def no_new_clients(s: Signals, settings: Settings) -> list[Anomaly]:
    clients = s["clients"]
    days = settings.brief_no_client_days
    since = clients["days_since_newest"]
    if s["jobs_ever"] == 0 or (since is not None and since < days):
        return []
    words = "no client yet" if since is None else f"the newest client came {since} days ago"
    return [
        anomaly(
            "growth.no_new_clients",
            LOW,
            "new clients",
            f"No new client in {days} days ({words})",
            {
                "days": days,
                "days_since_newest": since,
                "newest_at": clients["newest_at"],
                "clients_total": clients["total"],
                "new_30d": clients["new_30d"],
            },
            "Follow up on leads and past clients; offer a trial job.",
        )
    ]


def notion_lag(s: Signals, settings: Settings) -> list[Anomaly]:
    notion = s.get("notion") or {}
    if not notion.get("enabled"):
        return []
    limit = settings.brief_notion_lag_seconds
    worst, pending = notion.get("worst_lag_ms_7d"), notion.get("pending_writes", 0)
    found: list[Anomaly] = []
    if (worst is not None and worst > limit * 1000) or pending:
        found.append(
            anomaly(
                "ops.notion_lag",
                HIGH if pending else MEDIUM,
                "Notion read-after-write lag over 7 days",
                f"Notion took up to {round((worst or 0) / 1000)} s to show EchoPilot's writes "
                f"(limit {limit} s); {pending} write-backs not shown yet",
                {
                    "worst_lag_seconds_7d": None if worst is None else round(worst / 1000, 1),
                    "limit_seconds": limit,
                    "pending_writes": pending,
                    "slow_writes": notion.get("slow_writes", []),
                },
                "Pages may show an old status for a while; pending writes are sent again by "
                "self-heal (or `echopilot notion sync`). If it persists, check Notion's status "
                "page and the integration's request volume.",
            )
        )
    if notion.get("status") in ("off", "stopped"):
        found.append(
            anomaly(
                "ops.notion_stopped",
                HIGH,
                "Notion connector",
                f"the Notion connector is {notion['status']}: no task is taken from the queue",
                {"status": notion["status"], "reason": notion.get("reason")},
                "Fix what the reason names, then run `echopilot notion check`.",
            )
        )
    return found


RULES: tuple[Callable[[Signals, Settings], list[Anomaly]], ...] = (
    low_qa_runs,
    qa_below_target,
    roi_low,
    margin_low,
    revenue_falling,
    unpaid_high_qa,
    latency_high,
    failures_high,
    scheduler_health,
    workers_idle,
    notion_lag,
    no_new_clients,
)


# --- statistics --------------------------------------------------------------------------


def statistical(s: Signals) -> tuple[list[Anomaly], list[dict[str, Any]]]:
    """Each daily series' newest day against its previous 28: the anomalies in the bad
    direction, and what was judged (or skipped, and why)."""
    found: list[Anomaly] = []
    judged: list[dict[str, Any]] = []
    days = s["daily"]
    if not days:
        return found, judged
    day = days[-1]["day"]
    # A day with no job at all is no data, not a day of zero revenue or cost: a business
    # that rests at weekends (or started 10 days ago) is not judged by its empty days. A
    # business that stops is the revenue-falling and operations rules' to catch.
    idle = {i for i, d in enumerate(days) if not (d["finished"] or d["submitted"])}
    series: list[tuple[str, str, str, float, str, list[float | None]]] = [
        (
            field,
            label,
            bad,
            floor,
            unit,
            [None if i in idle else _float(d[field]) for i, d in enumerate(days)],
        )
        for field, label, bad, floor, unit in SERIES
    ]
    for t in s["task_types"]:
        label = f"average QA of {t['task_type']} per day"
        series.append((f"avg_qa:{t['task_type']}", label, "down", 1.0, "points", t["daily_avg_qa"]))
    for field, label, bad, floor, unit, values in series:
        j = detect.judge(values, floor=floor)
        entry = {
            "series": field,
            "day": day,
            "value": j.value,
            "median": j.median,
            "z": j.z,
            "history_days": j.history,
            "note": j.note,
        }
        judged.append(entry)
        if not (j.anomalous and j.direction == bad):
            continue
        found.append(
            anomaly(
                f"stats.{field}",
                MEDIUM,
                label,
                f"{label[0].upper()}{label[1:]} on {day} was {_shown(j.value)} {unit}, "
                f"against a median of {_shown(j.median)} over the previous "
                f"{j.history} days with data (robust z {j.z})",
                {
                    "day": day,
                    "value": j.value,
                    "median": j.median,
                    "z": j.z,
                    "threshold": detect.THRESHOLD,
                    "history_days": j.history,
                    "unit": unit,
                },
                _stat_fix(field, bad),
                kind="statistical",
            )
        )
    return found, judged


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _shown(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _stat_fix(field: str, bad: str) -> str:
    if field.startswith("avg_qa"):
        return "Read that day's low-scored jobs and their QA notes; compare with the days before."
    if field in ("revenue", "finished", "submitted", "margin_pct"):
        return (
            "Compare that day's jobs by client and task type with a usual day (finance breakdown)."
        )
    if field == "cost":
        return "Find the jobs that cost most that day (finance breakdown by model); check retries."
    if field == "dead":
        return "Read the day's dead jobs' errors (`echopilot failures`) and retry after the fix."
    return "Check the model server's latency and the workers on that day."
