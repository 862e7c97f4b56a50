"""Money is integer micro-dollars for costs and integer cents for prices; Decimal at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
CENTS_PER_USD = 100


def usd_to_micros(amount: Decimal) -> int:
    return int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.000001"))


def usd_to_cents(amount: Decimal) -> int:
    return int((amount * CENTS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cents_to_usd(cents: int) -> Decimal:
    return (Decimal(cents) / CENTS_PER_USD).quantize(Decimal("0.01"))


def micros_text(micros: int) -> str:
    """str(micros_to_usd(micros)) by integer arithmetic (the API lists many at once)."""
    sign = "-" if micros < 0 else ""
    whole, part = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{part:06d}"


def cents_text(cents: int) -> str:
    """str(cents_to_usd(cents)) by integer arithmetic."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), CENTS_PER_USD)
    return f"{sign}{whole}.{part:02d}"
