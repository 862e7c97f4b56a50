"""Versions of a price rule: a new rate written as a new version, and a rollback to the
version before the current one.

`price_rules` holds the version in force; `price_rule_history` every version that has been,
oldest first. The first change recorded for a type also records the version it replaced,
so there is always one to go back to. A rollback is itself a version, whose reason starts
with "rollback": it undoes the version in force, so rollbacks in a row walk back one version
each (C -> B -> A), and there is nothing left to undo at the first version.

Every write is guarded on the version read (its rate and `updated_at`): of two runs that
read the same version, one writes and the other changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from echopilot.db.models import PriceRule, PriceRuleHistory
from echopilot.errors import ConflictError
from echopilot.finance.optimizer_data import Rule, history

ROLLBACK = "rollback"
FIRST_VERSION = "the version in force before the first recorded change"


@dataclass(frozen=True)
class Restored:
    """What a rollback did: the version it left and the one it restored."""

    task_type: str
    unit: str
    from_rate_micros: int
    to_rate_micros: int
    version_id: int  # the history row of the restored version
    version_at: datetime


def write_version(
    session: Session, rule: Rule, new_rate_micros: int, reason: str, now: datetime
) -> bool:
    """Make `new_rate_micros` the type's rate if the rule is still the version `rule` read;
    record it (and, the first time, the version it replaces). False: it changed meanwhile,
    and nothing was written."""
    changed = session.connection().execute(
        update(PriceRule)
        .where(
            PriceRule.task_type == rule.task_type,
            PriceRule.rate_micros == rule.rate_micros,
            PriceRule.updated_at == rule.updated_at,
        )
        .values(rate_micros=new_rate_micros, updated_at=now)
    )
    if changed.rowcount != 1:
        return False
    if not history(session, rule.task_type):
        session.add(_version(rule, rule.rate_micros, FIRST_VERSION, rule.updated_at))
    session.add(_version(rule, new_rate_micros, reason, now))
    return True


def roll_back(session: Session, task_type: str, now: datetime) -> Restored:
    """Restore the version before the one in force. Raise ConflictError when there is
    none, or when the rule changed while this ran (nothing is written then)."""
    current = session.get(PriceRule, task_type)
    assert current is not None, "the caller checks that the type exists"
    target = _version_before(history(session, task_type), current)
    if target is None:
        raise ConflictError(
            f"task type {task_type} has no earlier price to roll back to (its rate has not "
            "been changed since it was first recorded)"
        )
    changed = session.connection().execute(
        update(PriceRule)
        .where(
            PriceRule.task_type == task_type,
            PriceRule.rate_micros == current.rate_micros,
            PriceRule.updated_at == current.updated_at,
        )
        .values(
            unit=target.unit,
            rate_micros=target.rate_micros,
            min_cents=target.min_cents,
            max_cents=target.max_cents,
            updated_at=now,
        )
    )
    if changed.rowcount != 1:
        raise ConflictError(f"the price of {task_type} changed while rolling back; try again")
    session.add(
        PriceRuleHistory(
            task_type=task_type,
            unit=target.unit,
            rate_micros=target.rate_micros,
            min_cents=target.min_cents,
            max_cents=target.max_cents,
            reason=f"{ROLLBACK}: back to version {target.id} of {target.changed_at:%Y-%m-%d %H:%M} "
            "UTC",
            changed_at=now,
        )
    )
    return Restored(
        task_type,
        target.unit,
        int(current.rate_micros),
        int(target.rate_micros),
        target.id,
        target.changed_at,
    )


def _version_before(
    versions: list[PriceRuleHistory], current: PriceRule
) -> PriceRuleHistory | None:
    """Replay the versions as an undo stack (a change pushes, a rollback pops): the one
    below the top is what a rollback restores. A rule changed by hand since its last
    recorded version goes back to that version."""
    stack: list[PriceRuleHistory] = []
    for version in versions:
        if version.reason.startswith(ROLLBACK) and len(stack) > 1:
            stack.pop()
        elif not version.reason.startswith(ROLLBACK):
            stack.append(version)
    if not stack:
        return None
    if _terms(stack[-1]) != _terms(current):
        return stack[-1]
    return stack[-2] if len(stack) > 1 else None


def _terms(row: PriceRule | PriceRuleHistory) -> tuple[str, int, int | None, int | None]:
    return (row.unit, int(row.rate_micros), row.min_cents, row.max_cents)


def _version(rule: Rule, rate_micros: int, reason: str, at: datetime) -> PriceRuleHistory:
    return PriceRuleHistory(
        task_type=rule.task_type,
        unit=rule.unit,
        rate_micros=rate_micros,
        min_cents=rule.min_cents,
        max_cents=rule.max_cents,
        reason=reason,
        changed_at=at,
    )
