"""Settings: a bad value is named by its environment variable; secrets never show."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from echopilot.config import Settings, load_settings, masked
from echopilot.errors import ConfigError


def load() -> Settings:
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ECHOPILOT_QA_THRESHOLD", "101"),
        ("ECHOPILOT_QA_THRESHOLD", "-1"),
        ("ECHOPILOT_QA_THRESHOLD", "high"),
        ("ECHOPILOT_LEASE_SECONDS", "abc"),
        ("ECHOPILOT_LEASE_SECONDS", "1"),
        ("ECHOPILOT_AI_PROVIDER", "gpt"),
        ("ECHOPILOT_AI_TIMEOUT_SECONDS", "0"),
        ("ECHOPILOT_MAX_ATTEMPTS", "0"),
        ("ECHOPILOT_WORKER_CONCURRENCY", "many"),
        ("ECHOPILOT_DATABASE_URL", "mysql://db.example/echopilot"),
        ("ECHOPILOT_QUEUE_URL", "amqp://broker.example"),
        ("ECHOPILOT_QUEUE_NAME", "has spaces"),
        ("ECHOPILOT_LOG_LEVEL", "loud"),
        ("ECHOPILOT_TRUSTED_PROXIES", "10.0.0.1, proxy.example"),
        # Host bits set: the server would match nobody against it, trusting no proxy.
        ("ECHOPILOT_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.5/8"),
    ],
)
def test_a_bad_value_raises_a_config_error_that_starts_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load()
    message = str(caught.value)
    assert message.startswith(f"{variable}:"), message
    assert "\n" not in message


def test_a_bad_value_given_by_field_name_is_still_named_by_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, qa_threshold=101)
    assert str(caught.value).startswith("ECHOPILOT_QA_THRESHOLD:")


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        '["gpt-4o"]',
        '{"llama3": {"input": "-0.10", "output": "0.40"}}',
        '{"llama3": {"input": "0.10", "output": "-1"}}',
        '{"llama3": {"input": "cheap", "output": "0.40"}}',
        '{"llama3": {"input": "NaN", "output": "0.40"}}',
        '{"llama3": {"input": "0.10"}}',
        '{"llama3": "0.10"}',
    ],
)
def test_bad_model_prices_are_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ECHOPILOT_MODEL_PRICES", value)
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value).startswith("ECHOPILOT_MODEL_PRICES:")


def test_good_model_prices_are_read_as_usd_per_million_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ECHOPILOT_MODEL_PRICES",
        '{"llama3": {"input": "0.10", "output": 0.4}, "free": {"input": 0, "output": 0}}',
    )
    assert load().price_overrides == {
        "llama3": (Decimal("0.10"), Decimal("0.4")),
        "free": (Decimal(0), Decimal(0)),
    }


def test_auto_uses_the_offline_provider_when_no_model_server_is_configured() -> None:
    assert load().provider_name == "offline"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OPENAI_API_KEY", "sk-test-123456"), ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")],
)
def test_auto_picks_openai_when_a_key_or_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert load().provider_name == "openai"


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_auto_treats_a_blank_key_or_base_url_as_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "")
    assert load().provider_name == "offline"


def test_an_explicit_provider_wins_over_auto_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123456")
    monkeypatch.setenv("ECHOPILOT_AI_PROVIDER", "offline")
    assert load().provider_name == "offline"


@pytest.mark.parametrize(
    "secret",
    ["sk-Xq9", "sk-Xq9Lm2Vb7", "sk-Xq9Lm2Vb7Tz", "sk-proj-Xq9Lm2Vb7TzRw4Ny8Kp3Hs6Jd1Fg5"],
)
def test_masked_settings_never_contain_the_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    shown = masked(load())
    flat = json.dumps(shown)
    assert secret not in flat
    assert secret[:-2] not in flat, "at most the last two characters may show"
    assert shown["OPENAI_API_KEY"], "the key is shown as set"


def test_masked_settings_show_an_unset_key_as_unset() -> None:
    assert masked(load())["OPENAI_API_KEY"] is None


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = load_settings(_env_file=None, trusted_proxies="127.0.0.1, 10.0.0.0/8, ::1")
    assert settings.trusted_proxies == "127.0.0.1, 10.0.0.0/8, ::1"
