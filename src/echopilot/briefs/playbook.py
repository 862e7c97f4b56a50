"""What to do about each kind of anomaly: the brief's actions, from a fixed playbook keyed
by rule, so the advice is the same every day for the same finding (and testable).

An action has an owner (who does it), a priority (P1 first), the task, and eta_hours (how
soon it should be done): 24 hours or less goes to "next 24 hours", the rest to "next 7 days".
"""

from __future__ import annotations

from typing import Any

from echopilot.briefs.rules import SEVERITY_RANK, Anomaly

NEXT_DAY_HOURS = 24

# rule (before any ":subject") -> [(owner, priority, task, eta_hours)]; {subject} is the
# anomaly's subject (a task type), {signal} its signal.
PLAYBOOK: dict[str, list[tuple[str, str, str, int]]] = {
    "quality.low_qa_run": [
        ("quality", "P1", "Review the low-scored {subject} jobs before they are billed", 4),
        ("quality", "P2", "Fix the {subject} prompt or move it to a stronger model", 72),
    ],
    "quality.avg_below_target": [
        ("quality", "P2", "Find the task types pulling average QA down and fix the worst", 24),
    ],
    "quality.type_below_target": [
        ("quality", "P2", "Improve {subject}: prompt, model or QA target", 72),
    ],
    "finance.roi_low": [
        ("finance", "P2", "Check cost per job by task type and model; run the optimiser", 24),
        ("finance", "P3", "Move cheap work to a cheaper model", 120),
    ],
    "finance.margin_low": [
        ("finance", "P2", "Review the prices of the lowest-margin task types", 24),
        ("finance", "P3", "Apply the optimiser's price proposal once reviewed", 96),
    ],
    "finance.revenue_falling": [
        ("growth", "P2", "Find which clients or sources sent fewer jobs", 24),
        ("growth", "P3", "Contact the clients whose volume dropped", 96),
    ],
    "finance.unpaid_high_qa": [
        ("finance", "P1", "Chase payment for the unpaid high-QA jobs", 24),
    ],
    "ops.latency_high": [
        ("ops", "P2", "Check model latency and worker concurrency", 24),
        ("ops", "P3", "Move slow task types to a faster model", 120),
    ],
    "ops.failure_rate": [
        ("ops", "P1", "Read the dead jobs' errors, fix the cause and retry them", 8),
    ],
    "ops.scheduler_down": [
        ("ops", "P1", "Start the scheduler (echopilot up)", 1),
    ],
    "ops.automations_paused": [
        ("ops", "P2", "Resume the automations when the pause is no longer needed", 24),
    ],
    "ops.scheduled_failures": [
        ("ops", "P2", "Fix the cause of the failed scheduled runs", 24),
    ],
    "ops.no_workers": [
        ("ops", "P1", "Start a worker (echopilot up or echopilot worker)", 1),
    ],
    "ops.notion_lag": [
        (
            "ops",
            "P2",
            "Check that the Notion pages show their results; run echopilot notion sync",
            24,
        ),
    ],
    "ops.notion_stopped": [
        ("ops", "P1", "Fix the Notion token or database and run echopilot notion check", 4),
    ],
    "growth.no_new_clients": [
        ("growth", "P3", "Follow up on leads and offer past clients a trial job", 120),
    ],
    "stats": [
        ("owner", "P2", "Look into the unusual {signal} and explain it", 24),
    ],
}
PRIORITY_RANK = {"P1": 0, "P2": 1, "P3": 2}


def actions_for(anomalies: list[Anomaly]) -> list[dict[str, Any]]:
    """One entry per playbook step of each anomaly (steps shared by several anomalies of
    one rule listed once, naming every anomaly), ordered by priority then eta."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for found in anomalies:
        rule, _, subject = found["rule"].partition(":")
        key = "stats" if found["type"] == "statistical" else rule
        for owner, priority, task, eta in PLAYBOOK.get(key, []):
            text = task.format(subject=subject or "the affected task type", signal=found["signal"])
            step = merged.setdefault(
                (key, text),
                {
                    "id": f"a{len(merged) + 1}",
                    "rule": key,
                    "owner": owner,
                    "priority": priority,
                    "task": text,
                    "eta_hours": eta,
                    "for": [],
                    "severity": found["severity"],
                },
            )
            step["for"].append(found["rule"])
            if SEVERITY_RANK[found["severity"]] < SEVERITY_RANK[step["severity"]]:
                step["severity"] = found["severity"]
    ordered = sorted(
        merged.values(),
        key=lambda a: (PRIORITY_RANK[a["priority"]], a["eta_hours"], SEVERITY_RANK[a["severity"]]),
    )
    for n, step in enumerate(ordered, 1):
        step["id"] = f"a{n}"
    return ordered


def split(actions: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(next 24 hours, next 7 days)."""
    soon = [a for a in actions if a["eta_hours"] <= NEXT_DAY_HOURS]
    later = [a for a in actions if a["eta_hours"] > NEXT_DAY_HOURS]
    return soon, later
