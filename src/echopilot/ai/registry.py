"""Pick the model provider that the settings ask for."""

from __future__ import annotations

from echopilot.ai.base import Provider
from echopilot.ai.offline import OfflineProvider
from echopilot.ai.retry import RetryPolicy
from echopilot.config import Settings

PROVIDER_LABELS = {
    "offline": "offline (no model: deterministic text, heuristic QA)",
    "openai": "openai-compatible API",
}


def provider_label(name: str | None) -> str | None:
    """How a provider is shown to people: "offline" always says it is not a model."""
    return PROVIDER_LABELS.get(name, name) if name else name


def build_provider(settings: Settings) -> Provider:
    if settings.provider_name == "offline":
        return OfflineProvider(latency_ms=settings.offline_latency_ms)
    # Imported here: the openai SDK takes half a second to import, and offline runs skip it.
    from echopilot.ai.openai_provider import OpenAIProvider

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIProvider(
        api_key=key, base_url=settings.openai_base_url, timeout=settings.ai_timeout_seconds
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.ai_max_retries,
        base_seconds=settings.ai_retry_base_seconds,
        max_seconds=settings.ai_retry_max_seconds,
    )


def stage_models(settings: Settings) -> tuple[str, str, str | None]:
    """(task model, QA model, escalation model) in effect; offline has only one."""
    if settings.provider_name == "offline":
        return "offline", "offline", None
    return settings.model, settings.qa_model, settings.escalation_model
