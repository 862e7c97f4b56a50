"""The price optimiser's policy: from one task type's recent billed jobs, what its rate
should be. Pure: no database, no clock (docs/operations.md, "Price optimiser").

In order, for a task type's last ECHOPILOT_OPTIMIZER_SAMPLE billed, finished jobs:
1. fewer than ECHOPILOT_OPTIMIZER_MIN_SAMPLE: hold (too few jobs to judge);
2. average QA below ECHOPILOT_OPTIMIZER_QA_FLOOR: `quality_hold`, the price stays and a
   quality alert is raised (the original system cut the price here, and on a low margin,
   which only lowered the margin further);
3. margin below ECHOPILOT_OPTIMIZER_TARGET_MARGIN_PCT: `raise`, by what would bring the
   sample's margin to the target, at most ECHOPILOT_OPTIMIZER_MAX_STEP_PCT;
4. average QA at or above ECHOPILOT_OPTIMIZER_QA_HIGH (margin on target): `modest_raise`
   by ECHOPILOT_OPTIMIZER_MODEST_STEP_PCT;
5. otherwise hold.
The rate is then kept within the type's floor and ceiling: never raised past the ceiling,
and a rate below the floor climbs toward it (one largest step at a time). The optimiser
never lowers a rate; a proposal that leaves the rate as it is is a hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from echopilot.config import Settings
from echopilot.errors import ConfigError

CENTS_TO_MICROS = 10_000
# A type with no bound of its own may move between these shares of its first recorded rate.
DEFAULT_FLOOR_SHARE = Decimal("0.5")
DEFAULT_CEILING_SHARE = Decimal(2)
BOUNDS_SETTING = "ECHOPILOT_OPTIMIZER_BOUNDS"


@dataclass(frozen=True)
class Policy:
    sample: int
    min_sample: int
    target_margin: Decimal  # a share of price: 0.40 for 40 %
    qa_floor: float
    qa_high: float
    max_step: Decimal  # a share of the rate: 0.05 for 5 %
    modest_step: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            sample=settings.optimizer_sample,
            min_sample=settings.optimizer_min_sample,
            target_margin=settings.optimizer_target_margin_pct / 100,
            qa_floor=settings.optimizer_qa_floor,
            qa_high=settings.optimizer_qa_high,
            max_step=settings.optimizer_max_step_pct / 100,
            modest_step=settings.optimizer_modest_step_pct / 100,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "sample": self.sample,
            "min_sample": self.min_sample,
            "target_margin_pct": pct_text(self.target_margin),
            "qa_floor": self.qa_floor,
            "qa_high": self.qa_high,
            "max_step_pct": pct_text(self.max_step),
            "modest_step_pct": pct_text(self.modest_step),
        }


@dataclass(frozen=True)
class Sample:
    """What a type's last billed, finished jobs add up to."""

    jobs: int
    revenue_cents: int
    cost_micros: int  # every attempt's model calls
    scored: int  # jobs with a QA score
    qa_total: float

    @property
    def margin(self) -> Decimal | None:
        """(revenue - cost) / revenue; None without revenue."""
        revenue = self.revenue_cents * CENTS_TO_MICROS
        return None if revenue <= 0 else Decimal(revenue - self.cost_micros) / revenue

    @property
    def avg_qa(self) -> float | None:
        return self.qa_total / self.scored if self.scored else None


@dataclass(frozen=True)
class Bounds:
    floor_micros: int
    ceiling_micros: int


@dataclass(frozen=True)
class Decision:
    decision: str  # raise | modest_raise | hold | quality_hold
    reason: str
    new_rate_micros: int


def resolve_bounds(
    task_type: str, first_rate_micros: int, setting: tuple[int | None, int | None] | None
) -> Bounds:
    """The type's floor and ceiling: its own from the setting, else 50 % and 200 % of its
    first recorded rate. Raise ConfigError naming the setting when the floor ends above
    the ceiling (one side set, the other by default)."""
    own_floor, own_ceiling = setting or (None, None)
    floor = own_floor if own_floor is not None else _share(first_rate_micros, DEFAULT_FLOOR_SHARE)
    ceiling = (
        own_ceiling if own_ceiling is not None else _share(first_rate_micros, DEFAULT_CEILING_SHARE)
    )
    if floor > ceiling:
        raise ConfigError(
            f"{BOUNDS_SETTING}: {task_type}: the floor {rate_text(floor)} is above the ceiling "
            f"{rate_text(ceiling)} (a side not set is 50 % or 200 % of the first rate, "
            f"{rate_text(first_rate_micros)}); set both"
        )
    return Bounds(floor, ceiling)


def is_quality_hold(policy: Policy, sample: Sample) -> bool:
    """Whether the sample is judged (enough jobs) and its average QA is below the floor."""
    avg_qa = sample.avg_qa
    return sample.jobs >= policy.min_sample and avg_qa is not None and avg_qa < policy.qa_floor


def decide(policy: Policy, rate_micros: int, sample: Sample, bounds: Bounds) -> Decision:
    """The decision for a type whose rate is `rate_micros`, judged on `sample`."""
    if sample.jobs < policy.min_sample:
        return Decision(
            "hold",
            f"too few jobs: {sample.jobs} billed of the {policy.min_sample} needed",
            rate_micros,
        )
    avg_qa = sample.avg_qa
    if is_quality_hold(policy, sample):
        return Decision(
            "quality_hold",
            f"average QA {avg_qa:.1f} is below {policy.qa_floor:g}: the price is held and a "
            "quality alert goes out; fix quality before charging more",
            rate_micros,
        )
    margin = sample.margin
    if margin is None:
        return Decision("hold", "no revenue in the sample", rate_micros)
    margin_text = f"margin {pct_text(margin)}%"
    target_text = f"{pct_text(policy.target_margin)}%"
    if margin < policy.target_margin:
        step = min(policy.max_step, _rise_to_target(sample, policy.target_margin))
        decision, why = "raise", f"{margin_text} is below the target {target_text}"
    elif avg_qa is not None and avg_qa >= policy.qa_high:
        step = policy.modest_step
        decision = "modest_raise"
        why = f"average QA {avg_qa:.1f} is at least {policy.qa_high:g} with {margin_text}"
    else:
        step = Decimal(0)
        decision = "hold"
        qa_text = (
            "no QA scores"
            if avg_qa is None
            else f"average QA {avg_qa:.1f} is below {policy.qa_high:g}"
        )
        why = f"{margin_text} is on target; {qa_text}"
    return _within_bounds(policy, rate_micros, step, decision, why, bounds)


def _rise_to_target(sample: Sample, target: Decimal) -> Decimal:
    """The rise in the rate that would bring the sample's margin to `target`, were the
    same jobs billed at it: revenue must become cost / (1 - target)."""
    revenue = Decimal(sample.revenue_cents * CENTS_TO_MICROS)
    return Decimal(sample.cost_micros) / ((1 - target) * revenue) - 1


def _within_bounds(
    policy: Policy, rate: int, step: Decimal, decision: str, why: str, bounds: Bounds
) -> Decision:
    ceiling, floor = bounds.ceiling_micros, bounds.floor_micros
    if rate > ceiling:
        return Decision(
            "hold",
            f"{why}; the rate is above the ceiling {rate_text(ceiling)}, and the optimiser "
            "never lowers a rate (lower it by hand)",
            rate,
        )
    if rate == ceiling and decision != "hold":
        return Decision("hold", f"{why}; the rate is at the ceiling {rate_text(ceiling)}", rate)
    proposed = step_rate(rate, step)
    if proposed < floor:
        # Below its floor a rate climbs toward it, a largest step at a time.
        proposed = min(floor, step_rate(rate, policy.max_step))
        if decision == "hold":
            decision = "raise"
        why = f"{why}; the rate is below the floor {rate_text(floor)}"
    if proposed > ceiling:
        proposed = ceiling
        why = f"{why}; capped at the ceiling {rate_text(ceiling)}"
    if proposed <= rate:
        return Decision("hold", why, rate)
    return Decision(decision, why, proposed)


def step_rate(rate_micros: int, step: Decimal) -> int:
    """`rate_micros` raised by `step`, rounded half up to a whole micro-dollar."""
    return int((Decimal(rate_micros) * (1 + step)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _share(rate_micros: int, share: Decimal) -> int:
    return int((Decimal(rate_micros) * share).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def change_pct(old_micros: int, new_micros: int) -> str:
    """The change in percent, two decimals ("5.00"); "0.00" from a zero rate."""
    if old_micros == 0:
        return "0.00"
    change = Decimal(new_micros - old_micros) * 100 / old_micros
    return str(change.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def pct_text(share: Decimal) -> str:
    """A share as a percentage with one decimal: Decimal("0.405") -> "40.5"."""
    return str((share * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def rate_text(micros: int) -> str:
    """A rate for people: $25.00, $0.51, $1.224 (cents always, more only when set)."""
    amount = Decimal(micros) / 1_000_000
    cents = amount.quantize(Decimal("0.01"))
    return f"${cents}" if cents == amount else f"${amount.normalize()}"
