"""The price optimiser: propose each task type's rate from its recent jobs (the policy is
in optimizer_policy), apply the proposal as new rule versions, roll a type back.

A dry run reads and reports; it writes nothing but its line in `optimizer.log`. Applying
writes each changed rate as a new version of its rule (history kept) in a transaction of its
own, guarded on the version read, so two runs at once never step a rate twice. The workers
re-read rules within a second: jobs priced before keep their price, later ones get the new
rate. A quality hold raises the `optimizer_quality` alert (one per task type, through the
alert engine) when the run is the schedule's or applies; a person's dry run leaves that to
the next alert check. Every change is audited and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from echopilot import audit, ndjson
from echopilot.clock import iso, utcnow
from echopilot.config import Settings
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import PriceRule, ScheduleRun
from echopilot.errors import ConfigError, InputError
from echopilot.finance import optimizer_data as data
from echopilot.finance import price_versions
from echopilot.finance.optimizer_policy import (
    BOUNDS_SETTING,
    Bounds,
    Decision,
    Policy,
    Sample,
    change_pct,
    decide,
    pct_text,
    rate_text,
    resolve_bounds,
)
from echopilot.jobs.intake import normalize_task_type, task_type_names
from echopilot.money import cents_text, micros_text
from echopilot.runtime import Runtime
from echopilot.scheduler import store

log = logging.getLogger(__name__)

TASK = "optimizer"
QUALITY_RULE = "optimizer_quality"
SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Proposal:
    rule: data.Rule
    sample: Sample
    bounds: Bounds
    decision: Decision
    last_30d: data.Repriced

    @property
    def changes(self) -> bool:
        return self.decision.new_rate_micros != self.rule.rate_micros

    def as_dict(self) -> dict[str, Any]:
        rule, sample, new = self.rule, self.sample, self.decision.new_rate_micros
        margin, avg_qa = sample.margin, sample.avg_qa
        window = self.last_30d
        return {
            "task_type": rule.task_type,
            "unit": rule.unit,
            "old_rate_usd": micros_text(rule.rate_micros),
            "new_rate_usd": micros_text(new),
            "change_pct": change_pct(rule.rate_micros, new),
            "decision": self.decision.decision,
            "reason": self.decision.reason,
            "sample": {
                "jobs": sample.jobs,
                "revenue_usd": cents_text(sample.revenue_cents),
                "cost_usd": micros_text(sample.cost_micros),
                "margin_pct": None if margin is None else pct_text(margin),
                "avg_qa": None if avg_qa is None else round(avg_qa, 1),
            },
            "last_30d": {
                "jobs": window.jobs,
                "billed_usd": cents_text(window.billed_cents),
                "at_new_rate_usd": cents_text(window.at_new_cents),
                "difference_usd": cents_text(window.at_new_cents - window.billed_cents),
            },
            "floor_usd": micros_text(self.bounds.floor_micros),
            "ceiling_usd": micros_text(self.bounds.ceiling_micros),
            "alert": f"{QUALITY_RULE}:{rule.task_type}"
            if self.decision.decision == "quality_hold"
            else None,
        }


def run(
    runtime: Runtime, *, dry_run: bool, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Propose every active type's rate and, unless `dry_run`, apply the changes; return
    `{dry_run, applied, proposals, notes, policy, ran_at}`. Raise ConfigError (before
    anything is written) for bounds that do not fit."""
    now = now or utcnow()
    policy = Policy.from_settings(runtime.settings)
    with read_session(runtime.sessions) as session:
        proposals = propose(session, runtime.settings, policy, now)
    applied: list[str] = []
    notes: list[str] = []
    logfile = ndjson.log_path(runtime.settings.home, "optimizer")
    for proposal in proposals:
        if dry_run or not proposal.changes:
            continue
        if _apply(runtime, proposal, actor, now):
            applied.append(proposal.rule.task_type)
            ndjson.append(logfile, "apply", now=now, actor=actor, **_change(proposal))
        else:
            notes.append(
                f"{proposal.rule.task_type}: its price changed while this ran; not applied "
                "(run the optimiser again)"
            )
            ndjson.append(logfile, "apply_skipped", now=now, actor=actor, **_change(proposal))
    held = [p.rule.task_type for p in proposals if p.decision.decision == "quality_hold"]
    if held and (not dry_run or actor == SCHEDULER):
        _raise_quality_alert(runtime, now, actor)
    notes[:0] = _notes(proposals, applied, held, dry_run, actor)
    result: dict[str, Any] = {
        "dry_run": dry_run,
        "applied": applied,
        "proposals": [p.as_dict() for p in proposals],
        "notes": notes,
        "policy": {**policy.as_dict(), "auto_apply": runtime.settings.optimizer_auto_apply},
        "ran_at": now.isoformat(),
    }
    ndjson.append(
        logfile,
        "dry_run" if dry_run else "run",
        now=now,
        actor=actor,
        applied=applied,
        proposals=[
            {k: p[k] for k in ("task_type", "decision", "old_rate_usd", "new_rate_usd")}
            for p in result["proposals"]
        ],
    )
    return result


def propose(session: Session, settings: Settings, policy: Policy, now: datetime) -> list[Proposal]:
    """Each active type's proposal, judged on its sample. Raise ConfigError naming
    ECHOPILOT_OPTIMIZER_BOUNDS for a type there that does not exist or a floor that ends
    above its ceiling, before any type is judged."""
    rules = data.rules(session)
    own_bounds = settings.optimizer_bound_map
    unknown = sorted(set(own_bounds) - {r.task_type for r in rules})
    if unknown:
        known = ", ".join(r.task_type for r in rules)
        raise ConfigError(f"{BOUNDS_SETTING}: unknown task type {unknown[0]!r}; known: {known}")
    first = data.first_rates(session)
    # Every type's bounds first: a bad one stops the run before anything is judged.
    bounds = {
        r.task_type: resolve_bounds(
            r.task_type, first.get(r.task_type, r.rate_micros), own_bounds.get(r.task_type)
        )
        for r in rules
    }
    proposals = []
    for rule in rules:
        sample = data.sample(session, rule.task_type, policy.sample)
        decision = decide(policy, rule.rate_micros, sample, bounds[rule.task_type])
        if decision.new_rate_micros == rule.rate_micros:
            jobs, billed = data.billed_last_30_days(session, rule.task_type, now)
            window = data.Repriced(jobs, billed, billed)
        else:
            window = data.reprice_last_30_days(session, rule, decision.new_rate_micros, now)
        proposals.append(Proposal(rule, sample, bounds[rule.task_type], decision, window))
    return proposals


def run_by(runtime: Runtime, *, actor: str, dry_run: bool) -> dict[str, Any]:
    """The optimiser asked for by a person (CLI or API). An applying run is also recorded
    as a manual run of the `optimizer` task, so the dashboard shows its result."""
    started = utcnow()
    result = run(runtime, dry_run=dry_run, actor=actor, now=started)
    if not dry_run:
        with write_session(runtime.sessions) as session:
            store.record_manual(session, TASK, started=started, summary=result, actor=actor)
    return result


def latest(runtime: Runtime) -> dict[str, Any]:
    """The last recorded run's result (the weekly proposal, or a person's apply), with
    `ran_at` and `trigger`; an empty proposal when the optimiser has not run yet."""
    with read_session(runtime.sessions) as session:
        found = session.execute(
            select(ScheduleRun.summary, ScheduleRun.finished_at, ScheduleRun.trigger)
            .where(
                ScheduleRun.task == TASK,
                ScheduleRun.status == "ok",
                ScheduleRun.summary.is_not(None),
            )
            .order_by(ScheduleRun.started_at.desc(), ScheduleRun.id.desc())
            .limit(1)
        ).first()
    if found is None:
        return {
            "dry_run": True,
            "applied": [],
            "proposals": [],
            "notes": ["the optimiser has not run yet: run a dry run to see its proposal"],
            "ran_at": None,
            "trigger": None,
        }
    summary, finished_at, trigger = found
    return {**summary, "ran_at": summary.get("ran_at") or iso(finished_at), "trigger": trigger}


def rollback(
    runtime: Runtime,
    task_type: str,
    *,
    actor: str,
    field: str = "task_type",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Restore `task_type`'s previous rate (a new version). Raise InputError naming `field`
    for a type that does not exist, ConflictError when it has no earlier version."""
    now = now or utcnow()
    name = normalize_task_type(task_type)
    with write_session(runtime.sessions) as session:
        if session.get(PriceRule, name) is None:
            known = ", ".join(task_type_names(session))
            raise InputError(field, f"unknown task type {task_type!r}; known: {known}")
        restored = price_versions.roll_back(session, name, now)
        result = {
            "task_type": name,
            "unit": restored.unit,
            "from_rate_usd": micros_text(restored.from_rate_micros),
            "to_rate_usd": micros_text(restored.to_rate_micros),
            "restored_version": restored.version_id,
            "restored_version_at": iso(restored.version_at),
            "rolled_back_at": now.isoformat(),
        }
        audit.record(
            session,
            actor=actor,
            action="optimizer.rollback",
            target=f"price_rule:{name}",
            details=result,
            now=now,
        )
    ndjson.append(
        ndjson.log_path(runtime.settings.home, "optimizer"),
        "rollback",
        now=now,
        actor=actor,
        **result,
    )
    return result


def _apply(runtime: Runtime, proposal: Proposal, actor: str, now: datetime) -> bool:
    decision = proposal.decision
    reason = f"optimiser ({actor}): {decision.decision}: {decision.reason}"
    with write_session(runtime.sessions) as session:
        if not price_versions.write_version(
            session, proposal.rule, decision.new_rate_micros, reason, now
        ):
            return False
        audit.record(
            session,
            actor=actor,
            action="optimizer.apply",
            target=f"price_rule:{proposal.rule.task_type}",
            details=_change(proposal),
            now=now,
        )
    return True


def _change(proposal: Proposal) -> dict[str, Any]:
    shown = proposal.as_dict()
    keys = ("task_type", "unit", "old_rate_usd", "new_rate_usd", "change_pct", "decision")
    return {**{k: shown[k] for k in keys}, "reason": proposal.decision.reason}


def _notes(
    proposals: list[Proposal], applied: list[str], held: list[str], dry_run: bool, actor: str
) -> list[str]:
    changes = [p for p in proposals if p.changes]
    notes = []
    if not changes:
        notes.append("no price changes proposed")
    elif dry_run:
        listed = ", ".join(
            f"{p.rule.task_type} {rate_text(p.rule.rate_micros)} -> "
            f"{rate_text(p.decision.new_rate_micros)}"
            for p in changes
        )
        notes.append(f"dry run, nothing changed: {listed}; apply with `echopilot optimize --apply`")
    elif applied:
        notes.append(f"applied to new jobs: {', '.join(applied)} (jobs priced before keep theirs)")
    for task_type in held:
        raised = not dry_run or actor == SCHEDULER
        notes.append(
            f"{task_type}: quality below the floor, price held; quality alert "
            + ("raised" if raised else "raised by the next alert check")
        )
    return notes


def _raise_quality_alert(runtime: Runtime, now: datetime, actor: str) -> None:
    from echopilot.alerts.engine import check

    try:
        check(runtime, now=now, only=[QUALITY_RULE], actor=actor)
    except Exception:  # the proposal stands; the scheduled alert check raises it later
        log.warning("the optimiser could not raise the quality alert", exc_info=True)
