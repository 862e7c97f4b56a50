"""What a client is charged, what a model call cost, and money conversions that lose nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given
from hypothesis import strategies as st

from echopilot.config import load_settings
from echopilot.jobs.costing import call_cost_micros
from echopilot.jobs.pricing import price_cents
from echopilot.money import cents_to_usd, micros_to_usd, usd_to_cents, usd_to_micros

USD = 1_000_000  # micros


def price(**rule: Any) -> int:
    values: dict[str, Any] = {
        "unit": "flat",
        "rate_micros": 10 * USD,
        "min_cents": None,
        "max_cents": None,
        "tokens": 0,
        "input_text": "",
        "task_type": "summary",
    }
    values.update(rule)
    return price_cents(**values)


def words(n: int) -> str:
    return " ".join(["word"] * n)


# --- price_cents -----------------------------------------------------------------------------


def test_a_flat_price_ignores_tokens_and_input_length() -> None:
    assert price(rate_micros=8 * USD, tokens=50_000, input_text=words(5000)) == 800


def test_a_per_1k_tokens_price_scales_with_tokens() -> None:
    assert price(unit="per_1k_tokens", rate_micros=USD // 2, tokens=3000) == 150


def test_a_per_1k_tokens_price_rounds_half_a_cent_up() -> None:
    # 1010 tokens at $0.50 per 1k = $0.505
    assert price(unit="per_1k_tokens", rate_micros=USD // 2, tokens=1010) == 51
    # 1001 tokens at $0.50 per 1k = $0.5005
    assert price(unit="per_1k_tokens", rate_micros=USD // 2, tokens=1001) == 50


def test_a_per_minute_price_bills_minutes_of_speech_from_the_word_count() -> None:
    # 150 words are a minute of speech: 300 words at $1.20 a minute = $2.40
    assert price(unit="per_minute", rate_micros=1_200_000, input_text=words(300)) == 240


def test_a_per_minute_price_bills_at_least_one_minute() -> None:
    assert price(unit="per_minute", rate_micros=1_200_000, input_text=words(20)) == 120


def test_the_minimum_raises_a_small_price() -> None:
    assert price(unit="per_1k_tokens", rate_micros=USD // 2, tokens=100, min_cents=500) == 500


def test_the_maximum_caps_a_large_price() -> None:
    assert price(rate_micros=25 * USD, max_cents=1000) == 1000


def test_a_price_between_the_bounds_is_left_alone() -> None:
    assert price(rate_micros=8 * USD, min_cents=100, max_cents=1000) == 800


def test_a_clients_override_replaces_the_rate_for_that_task_type() -> None:
    overrides = {"summary": 2 * USD}
    assert price(rate_micros=8 * USD, client_overrides=overrides, task_type="summary") == 200


def test_a_clients_override_for_another_task_type_does_not_apply() -> None:
    overrides = {"research": 2 * USD}
    assert price(rate_micros=8 * USD, client_overrides=overrides, task_type="summary") == 800


def test_a_clients_override_is_still_clamped_by_the_rule() -> None:
    overrides = {"summary": USD // 100}
    assert price(rate_micros=8 * USD, min_cents=300, client_overrides=overrides) == 300


def test_an_unknown_price_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="per_hour"):
        price(unit="per_hour")


# --- money -----------------------------------------------------------------------------------

MICROS = st.integers(min_value=-(10**15), max_value=10**15)
CENTS = st.integers(min_value=-(10**13), max_value=10**13)


@given(MICROS)
def test_micros_survive_a_round_trip_through_usd(micros: int) -> None:
    assert usd_to_micros(micros_to_usd(micros)) == micros


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6))
def test_usd_with_six_decimal_places_survives_a_round_trip_through_micros(
    amount: Decimal,
) -> None:
    assert micros_to_usd(usd_to_micros(amount)) == amount


@given(st.lists(MICROS, max_size=50))
def test_adding_costs_in_usd_loses_no_micro_dollar(parts: list[int]) -> None:
    total_usd = sum((micros_to_usd(p) for p in parts), Decimal(0))
    assert usd_to_micros(total_usd) == sum(parts)


@given(CENTS)
def test_cents_survive_a_round_trip_through_usd(cents: int) -> None:
    assert usd_to_cents(cents_to_usd(cents)) == cents


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2))
def test_usd_with_two_decimal_places_survives_a_round_trip_through_cents(amount: Decimal) -> None:
    assert cents_to_usd(usd_to_cents(amount)) == amount


def test_half_a_micro_dollar_rounds_up() -> None:
    assert usd_to_micros(Decimal("0.0000005")) == 1
    assert usd_to_micros(Decimal("0.0000004")) == 0


# --- call_cost_micros ------------------------------------------------------------------------


def test_a_known_model_costs_what_genai_prices_says() -> None:
    own = calc_price(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini").total_price
    assert call_cost_micros("gpt-4o-mini", 1000, 500, {}) == usd_to_micros(Decimal(own)) == 450


def test_an_unknown_model_has_no_cost_rather_than_zero() -> None:
    assert call_cost_micros("house-model-that-nobody-prices", 1000, 500, {}) is None


def test_a_price_override_wins_over_genai_prices() -> None:
    settings = load_settings(
        _env_file=None, model_prices='{"gpt-4o-mini": {"input": "1", "output": "2"}}'
    )
    # 1000 x $1/M + 500 x $2/M = $0.002
    assert call_cost_micros("gpt-4o-mini", 1000, 500, settings.price_overrides) == 2000


def test_a_price_override_prices_a_model_genai_prices_does_not_know() -> None:
    settings = load_settings(
        _env_file=None, model_prices='{"llama3": {"input": "0.10", "output": "0.40"}}'
    )
    # 1,000,000 x $0.10/M + 500,000 x $0.40/M = $0.30
    assert call_cost_micros("llama3", 1_000_000, 500_000, settings.price_overrides) == 300_000
