"""The brief's third step: from the analysis, the document the owner reads: headline (by the
original's rules), summary, KPIs, top risks with their evidence, actions for the next 24
hours and the next 7 days, confidence, provider and the freshness line.
"""

from __future__ import annotations

from typing import Any

from echopilot.briefs import narrative as prose

VERSION = 1
TOP_RISKS = 5
NO_JOBS = "No jobs yet"
NOMINAL = "All systems nominal"


def headline(analysis: dict[str, Any]) -> str:
    high, total = analysis["counts"]["high"], analysis["counts"]["total"]
    # The original's exact words whatever N (scripts and mail filters match them).
    if high:
        return f"{high} HIGH SEVERITY ALERTS"
    if total:
        return f"{total} anomalies detected"
    return NO_JOBS if analysis["empty"] else NOMINAL


def deterministic_summary(analysis: dict[str, Any]) -> str:
    """Two to four sentences, every number taken from the analysis as it stands there."""
    if analysis["empty"]:
        return (
            "No jobs yet: EchoPilot has not finished a job, so there are no figures to "
            "report. Submit one (`echopilot jobs submit`) or load sample data (`make demo`)."
        )
    k = analysis["kpis"]["7d"]
    parts = [
        f"Over the last 7 days {k['jobs']} jobs finished, billing {k['revenue']} USD "
        f"against {k['cost']} USD of model cost (profit {k['profit']} USD"
        + (f", margin {k['margin_pct']} %" if k["margin_pct"] is not None else "")
        + (f", ROI {k['roi']}" if k["roi"] is not None else "")
        + ")"
        + (f", with an average QA of {k['avg_qa']}." if k["avg_qa"] is not None else ".")
    ]
    anomalies = analysis["anomalies"]
    if anomalies:
        shown = "; ".join(a["title"] for a in anomalies[:3])
        more = f" (and {len(anomalies) - 3} more)" if len(anomalies) > 3 else ""
        parts.append(f"Most pressing: {shown}{more}.")
    else:
        parts.append("No rule or statistical check found anything wrong.")
    late = analysis["freshness"]["late"]
    if late:
        parts.append("Not yet counted: " + "; ".join(item["detail"] for item in late) + ".")
    return " ".join(parts)


def compose(
    analysis: dict[str, Any], narrative: prose.Narrative, *, stamp: str, generated_at: str
) -> dict[str, Any]:
    by_id = {a["id"]: a for a in analysis["actions"]}

    def actions(ids: list[str]) -> list[dict[str, Any]]:
        out = []
        for action_id in ids:
            a = dict(by_id[action_id])
            a["task"] = narrative.tasks.get(action_id, a["task"])
            out.append(a)
        return out

    return {
        "kind": "brief",
        "version": VERSION,
        "stamp": stamp,
        "generated_at": generated_at,
        "cutoff": analysis["cutoff"],
        "headline": headline(analysis),
        "summary": narrative.summary,
        "narrative": narrative.as_dict(),
        "kpis": analysis["kpis"],
        "counts": analysis["counts"],
        "top_risks": analysis["anomalies"][:TOP_RISKS],
        "other_risks": len(analysis["anomalies"][TOP_RISKS:]),
        "actions_next_24h": actions(analysis["actions_next_24h"]),
        "actions_next_7d": actions(analysis["actions_next_7d"]),
        "confidence": analysis["confidence"],
        "provider": analysis["provider"],
        "freshness": analysis["freshness"],
        "open_alerts": analysis["open_alerts"],
    }
