"""What a model call cost, from its real token usage.

Prices come from genai-prices (bundled data, no network) unless ECHOPILOT_MODEL_PRICES
overrides the model. A model with no known price yields None: it is flagged, never
costed as zero.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price

from echopilot.ai.offline import OFFLINE_MODEL
from echopilot.money import usd_to_micros

PER_MILLION = Decimal(1_000_000)


def call_cost_micros(
    model: str,
    tokens_in: int,
    tokens_out: int,
    overrides: dict[str, tuple[Decimal, Decimal]],
) -> int | None:
    """Cost in micro-USD, or None when the model's price is unknown."""
    if model == OFFLINE_MODEL:
        return 0  # nothing was called, nothing was spent
    if model in overrides:
        price_in, price_out = overrides[model]
        return usd_to_micros((price_in * tokens_in + price_out * tokens_out) / PER_MILLION)
    if not _known(model):
        return None
    result = calc_price(Usage(input_tokens=tokens_in, output_tokens=tokens_out), model)
    return usd_to_micros(Decimal(result.total_price))


@lru_cache(maxsize=256)
def _known(model: str) -> bool:
    try:
        calc_price(Usage(input_tokens=1, output_tokens=1), model)
    except LookupError:
        return False
    return True
