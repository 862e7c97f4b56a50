"""The brief's second step: from one ingest snapshot, the anomalies (rules and statistics),
the actions for them, how fresh the data is and how far to trust the whole (`confidence`,
from data coverage alone: how many days have data, how many jobs are still unfinished,
whether payments are reconciled, how many series could be judged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from echopilot.briefs import detect, playbook, rules
from echopilot.config import Settings

VERSION = 1
KPI_WINDOWS = ("7d", "30d")


def analyze(signals: dict[str, Any], settings: Settings) -> dict[str, Any]:
    found: list[rules.Anomaly] = []
    for rule in rules.RULES:
        found += rule(signals, settings)
    empty = signals["jobs_ever"] == 0
    judged: list[dict[str, Any]] = []
    if not empty:
        stats, judged = rules.statistical(signals)
        found += stats
    found.sort(key=lambda a: (rules.SEVERITY_RANK[a["severity"]], a["domain"], a["rule"]))
    actions = playbook.actions_for(found)
    soon, later = playbook.split(actions)
    counts = {level: sum(a["severity"] == level for a in found) for level in rules.SEVERITY_RANK}
    return {
        "kind": "analysis",
        "version": VERSION,
        "cutoff": signals["cutoff"],
        "provider": signals["provider"],
        "empty": empty,
        "kpis": _kpis(signals),
        "anomalies": found,
        "counts": {**counts, "total": len(found)},
        "actions": actions,
        "actions_next_24h": [a["id"] for a in soon],
        "actions_next_7d": [a["id"] for a in later],
        "statistics": judged,
        "open_alerts": signals["alerts"],
        "freshness": freshness(signals, judged),
        "confidence": confidence(signals, judged),
    }


def _kpis(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in KPI_WINDOWS:
        k = s["kpis"][key]
        out[key] = {
            "jobs": k["jobs"],
            "revenue": k["revenue"],
            "revenue_paid": k["revenue_paid"],
            "cost": k["cost"],
            "profit": k["profit"],
            "margin_pct": k["margin_pct"],
            "roi": k["roi"],
            "avg_qa": k["avg_qa"],
            "failure_rate_pct": k["failure_rate_pct"],
            "p95_latency_ms": k["latency"].get("p95_ms"),
        }
    out["owed"] = s["owed"]["amount"]
    out["owed_jobs"] = s["owed"]["jobs"]
    out["new_clients_7d"] = s["clients"]["new_7d"]
    out["open_alerts"] = s["alerts"]["open"]
    return out


def _unfinished(s: dict[str, Any]) -> int:
    return int(sum(s["unfinished"].values()))


def freshness(s: dict[str, Any], judged: list[dict[str, Any]]) -> dict[str, Any]:
    """The data cut-off and every source that is late or missing, in words."""
    late: list[dict[str, Any]] = []
    pay = s["payments"]
    if pay["late"] is not None:
        late.append({"source": "payments", "detail": pay["late"]})
    notion = s.get("notion") or {}
    late_poll = notion.get("polled_age_s") is not None and notion["polled_age_s"] > 3 * (
        notion.get("poll_every_seconds") or 60
    )
    if notion.get("enabled") and (notion.get("status") != "on" or late_poll):
        why = (
            f"the connector is {notion.get('status')}"
            if notion.get("status") != "on"
            else f"last polled {notion['polled_age_s'] // 60} min ago"
        )
        late.append({"source": "notion", "detail": f"Notion tasks may be missing: {why}"})
    unfinished = _unfinished(s)
    if unfinished:
        parts = ", ".join(
            f"{n} {state.replace('_', ' ')}" for state, n in s["unfinished"].items() if n
        )
        late.append(
            {
                "source": "jobs",
                "detail": f"{unfinished} jobs not finished or scored yet ({parts}): "
                "not in these figures",
            }
        )
    short = [j for j in judged if j["z"] is None and j["series"] == "revenue"]
    if s["jobs_ever"] and short:
        late.append(
            {
                "source": "history",
                "detail": f"statistical checks skipped: {short[0]['note']}",
            }
        )
    if not s["jobs_ever"]:
        late.append({"source": "jobs", "detail": "no jobs yet: there is nothing to measure"})
    cutoff = s["cutoff"]
    line = f"Data to {datetime.fromisoformat(cutoff):%Y-%m-%d %H:%M} UTC"
    line += "; " + "; ".join(item["detail"] for item in late) if late else "; every source current"
    return {"cutoff": cutoff, "late": late, "line": line}


def confidence(s: dict[str, Any], judged: list[dict[str, Any]]) -> dict[str, Any]:
    """A score in [0, 1] from data coverage, its level, and why it is not 1."""
    recent = s["daily"][-detect.WINDOW :]
    with_data = sum(1 for d in recent if d["finished"])
    history = with_data / detect.WINDOW
    done_7d = s["kpis"]["7d"]["jobs"]
    unfinished = _unfinished(s)
    completeness = 1.0 if not (done_7d + unfinished) else done_7d / (done_7d + unfinished)
    payments = 1.0 if s["payments"]["late"] is None else 0.5
    statistics = (sum(1 for j in judged if j["z"] is not None) / len(judged)) if judged else 0.0
    parts = {
        "history": round(history, 2),
        "completeness": round(completeness, 2),
        "payments": payments,
        "statistics": round(statistics, 2),
    }
    score = round(sum(parts.values()) / len(parts), 2)
    notes = []
    if history < 1:
        notes.append(f"{with_data} of the last {detect.WINDOW} days have finished jobs")
    if completeness < 1:
        notes.append(f"{unfinished} jobs are not finished yet")
    if payments < 1:
        notes.append("payments are not reconciled with Stripe")
    if statistics < 1:
        notes.append(
            f"{sum(1 for j in judged if j['z'] is None)} of {len(judged)} series could not be "
            "judged (too little history)"
            if judged
            else "no series could be judged"
        )
    level = "high" if score >= 0.8 else "medium" if score >= 0.5 else "low"
    return {"score": score, "level": level, "coverage": parts, "notes": notes}
