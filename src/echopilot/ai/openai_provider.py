"""Any OpenAI-compatible server through the official SDK.

OpenAI, Azure OpenAI, Ollama, vLLM and llama.cpp servers all speak this API.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import openai

from echopilot.ai.base import AIError, Completion, ModelRequest, storable
from echopilot.clock import ensure_utc, utcnow

# Status codes that a later try may get past; every other 4xx is the request's own fault.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout: float) -> None:
        self._key = api_key
        # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=0,  # retries are EchoPilot's, with its own policy and records
        )

    def complete(self, request: ModelRequest) -> Completion:
        started = time.monotonic()
        try:
            response = self._client.chat.completions.create(
                model=request.model,
                messages=[
                    {"role": "system", "content": request.system},
                    {"role": "user", "content": request.prompt},
                ],
                max_tokens=request.max_tokens,
            )
        except openai.APIStatusError as exc:
            raise _status_error(exc, self._key) from None
        except openai.APITimeoutError:
            raise AIError("model call timed out", permanent=False) from None
        except openai.APIConnectionError as exc:
            raise AIError(f"cannot reach the model server: {exc}", permanent=False) from None
        except openai.APIError as exc:  # malformed answer and the like
            raise AIError(f"model server error: {exc}", permanent=False) from None
        latency_ms = int((time.monotonic() - started) * 1000)
        if not response.choices:
            raise AIError("model answered with no choices", permanent=False)
        choice = response.choices[0]
        text = storable(choice.message.content or "")
        usage = response.usage
        return Completion(
            text=text,
            model=storable(response.model or request.model)[:200],
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            latency_ms=latency_ms,
            usage_reported=usage is not None,
            truncated=choice.finish_reason == "length",
        )


def _status_error(exc: openai.APIStatusError, key: str | None) -> AIError:
    status = exc.status_code
    transient = status >= 500 or status in TRANSIENT_STATUSES
    detail = storable(_error_message(exc.body) or exc.message)
    if key:  # a server that repeats the refused key must not get it into the job's error
        detail = detail.replace(key, "****")
    return AIError(
        f"model server answered {status}: {detail}"[:500],
        permanent=not transient,
        retry_after=_retry_after(exc.response.headers.get("retry-after")),
        status=status,
    )


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (ensure_utc(when) - utcnow()).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
