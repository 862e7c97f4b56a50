"""What a client is charged for a job, from its task type's price rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from echopilot.money import MICROS_PER_USD, usd_to_cents
from echopilot.payments import status as payment_status

UNITS = ("flat", "per_minute", "per_1k_tokens")
# The offline provider is not a model: its jobs are priced for show but never billed.
UNBILLED_PROVIDERS = frozenset({"offline"})
# per_minute bills minutes of source speech, estimated from the transcript's length.
WORDS_PER_MINUTE = 150


def price_cents(
    *,
    unit: str,
    rate_micros: int,
    min_cents: int | None,
    max_cents: int | None,
    tokens: int,
    input_text: str,
    client_overrides: dict[str, Any] | None = None,
    task_type: str = "",
) -> int:
    """The price in cents, clamped to the rule's bounds. A client's override replaces the rate."""
    if client_overrides and task_type in client_overrides:
        rate_micros = int(client_overrides[task_type])
    rate = Decimal(rate_micros) / MICROS_PER_USD
    if unit == "flat":
        amount = rate
    elif unit == "per_1k_tokens":
        amount = rate * Decimal(tokens) / 1000
    elif unit == "per_minute":
        minutes = Decimal(len(input_text.split())) / WORDS_PER_MINUTE
        amount = rate * max(minutes, Decimal(1))
    else:
        raise ValueError(f"unknown price unit {unit!r}; expected one of {', '.join(UNITS)}")
    cents = usd_to_cents(amount)
    if min_cents is not None:
        cents = max(cents, min_cents)
    if max_cents is not None:
        cents = min(cents, max_cents)
    return cents


def billing_status(
    provider: str | None, *, billed: bool, price_cents: int | None, stripe_on: bool
) -> str:
    """The payment status a finished job starts with: `na` (not billed) when it awaits
    review, costs nothing or was made by the offline provider; otherwise owed, with a
    Stripe link to make (`link_pending`) or none (`not_configured`, paid by hand)."""
    billable = billed and provider not in UNBILLED_PROVIDERS and (price_cents or 0) > 0
    return payment_status.initial(billed=billable, stripe_on=stripe_on)
