"""What the price optimiser reads: price rules, each type's recent billed jobs, its rate
history, and the last 30 days re-priced at a proposed rate.

Billed, finished jobs are revenue as the metrics count it: done, billed (payment status not
`na`: not the offline provider's, not one awaiting review) and priced. Reads select only the
columns they need; the 30-day re-pricing streams its rows, so a database of millions of jobs
costs one pass over one type's last 30 days.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from echopilot.db.models import Client, Job, PriceRule, PriceRuleHistory, TaskType
from echopilot.finance.metrics import billed
from echopilot.finance.optimizer_policy import Sample
from echopilot.jobs import pricing

WINDOW = timedelta(days=30)
STREAM_ROWS = 2000


@dataclass(frozen=True)
class Rule:
    """A price rule as read: the version the optimiser starts from (and guards on)."""

    task_type: str
    unit: str
    rate_micros: int
    min_cents: int | None
    max_cents: int | None
    updated_at: datetime


@dataclass(frozen=True)
class Repriced:
    """One type's billed jobs of the last 30 days: what they were billed, and what they
    would have been at a proposed rate."""

    jobs: int
    billed_cents: int
    at_new_cents: int


def rules(session: Session) -> list[Rule]:
    """The price rules of the active task types, by name."""
    rows = session.execute(
        select(
            PriceRule.task_type,
            PriceRule.unit,
            PriceRule.rate_micros,
            PriceRule.min_cents,
            PriceRule.max_cents,
            PriceRule.updated_at,
        )
        .join(TaskType, TaskType.name == PriceRule.task_type)
        .where(TaskType.active)
        .order_by(PriceRule.task_type)
    ).all()
    return [Rule(*row) for row in rows]


def sample(session: Session, task_type: str, size: int) -> Sample:
    """The type's last `size` billed jobs, newest finished first, added up."""
    rows = session.execute(
        select(Job.price_cents, Job.cost_micros, Job.qa_score)
        .where(Job.task_type == task_type, billed())
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(size)
    ).all()
    scores = [float(qa) for _, _, qa in rows if qa is not None]
    return Sample(
        jobs=len(rows),
        revenue_cents=sum(int(price or 0) for price, _, _ in rows),
        cost_micros=sum(int(cost or 0) for _, cost, _ in rows),
        scored=len(scores),
        qa_total=sum(scores),
    )


def history(session: Session, task_type: str) -> list[PriceRuleHistory]:
    """The type's recorded versions, oldest first (a handful: one per change)."""
    return list(
        session.scalars(
            select(PriceRuleHistory)
            .where(PriceRuleHistory.task_type == task_type)
            .order_by(PriceRuleHistory.changed_at, PriceRuleHistory.id)
        )
    )


def first_rates(session: Session) -> dict[str, int]:
    """Each type's first recorded rate (its oldest version), for the default bounds."""
    first: dict[str, int] = {}
    rows = session.execute(
        select(PriceRuleHistory.task_type, PriceRuleHistory.rate_micros).order_by(
            PriceRuleHistory.changed_at, PriceRuleHistory.id
        )
    )
    for task_type, rate in rows:
        first.setdefault(task_type, int(rate))
    return first


def billed_last_30_days(session: Session, task_type: str, now: datetime) -> tuple[int, int]:
    """(jobs, cents) the type billed in the 30 days before `now`: one aggregate."""
    jobs, cents = session.execute(
        select(func.count(), func.coalesce(func.sum(Job.price_cents), 0)).where(
            Job.task_type == task_type,
            billed(),
            Job.finished_at >= now - WINDOW,
            Job.finished_at <= now,
        )
    ).one()
    return int(jobs or 0), int(cents or 0)


def reprice_last_30_days(
    session: Session, rule: Rule, new_rate_micros: int, now: datetime
) -> Repriced:
    """Re-price the type's billed jobs finished in the 30 days before `now` at
    `new_rate_micros`, the rule's minimum and maximum kept:
    - flat: the new rate, exactly as the worker prices it;
    - per_minute and per_1k_tokens (a rate times a quantity): the job's price scaled by
      new rate / rate in force when it finished, rounded half up to the cent, so within a
      cent of what the worker would charge. The quantity billed is not kept on the job (its
      tokens also count the QA judge's calls), and the scale needs no input text. A job
      billed at the rule's minimum or maximum keeps its price.
    A job of a client with a rate of their own for the type keeps its price: the rule's
    rate does not apply to them."""
    own_rates = _clients_with_own_rate(session, rule.task_type)
    versions = _rate_versions(session, rule)
    flat = pricing.price_cents(
        unit="flat",
        rate_micros=new_rate_micros,
        min_cents=rule.min_cents,
        max_cents=rule.max_cents,
        tokens=0,
        input_text="",
    )
    jobs = billed = at_new = 0
    for client_id, price, finished_at in _last_30_days(session, rule.task_type, now):
        jobs += 1
        billed += price
        if client_id in own_rates:
            at_new += price
        elif rule.unit == "flat":
            at_new += flat
        else:
            at_new += _scaled(rule, price, versions.rate_at(finished_at), new_rate_micros)
    return Repriced(jobs, billed, at_new)


def _last_30_days(
    session: Session, task_type: str, now: datetime
) -> Iterator[tuple[int | None, int, datetime]]:
    statement = (
        select(Job.client_id, Job.price_cents, Job.finished_at)
        .where(
            Job.task_type == task_type,
            billed(),
            Job.finished_at >= now - WINDOW,
            Job.finished_at <= now,
        )
        .execution_options(yield_per=STREAM_ROWS)
    )
    for client_id, price, finished_at in session.execute(statement):
        # The filter guarantees both (a price; finished in the window).
        yield client_id, int(price or 0), finished_at or now


def _clients_with_own_rate(session: Session, task_type: str) -> set[int]:
    rows = session.execute(select(Client.id, Client.rate_overrides))
    return {client_id for client_id, own in rows if own and task_type in own}


@dataclass(frozen=True)
class _Versions:
    """The rate in force at a moment, from the type's recorded versions."""

    changed_at: list[datetime]
    rates: list[int]
    current: int

    def rate_at(self, moment: datetime) -> int:
        index = bisect.bisect_right(self.changed_at, moment) - 1
        if index < 0:
            # Before the first recorded version: that version (the rule as first seen).
            return self.rates[0] if self.rates else self.current
        return self.rates[index]


def _rate_versions(session: Session, rule: Rule) -> _Versions:
    if rule.unit == "flat":
        return _Versions([], [], rule.rate_micros)
    versions = history(session, rule.task_type)
    return _Versions(
        [v.changed_at for v in versions], [int(v.rate_micros) for v in versions], rule.rate_micros
    )


def _scaled(rule: Rule, price: int, rate_then: int, new_rate: int) -> int:
    at_bound = price in (rule.min_cents, rule.max_cents)
    if at_bound or rate_then <= 0:
        return price
    scaled = (Decimal(price) * new_rate / rate_then).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    cents = int(scaled)
    if rule.min_cents is not None:
        cents = max(cents, rule.min_cents)
    if rule.max_cents is not None:
        cents = min(cents, rule.max_cents)
    return cents
