"""Retries of transient model errors: exponential backoff with jitter; Retry-After wins
(up to ECHOPILOT_AI_RETRY_MAX_SECONDS)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from echopilot.ai.base import AIError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_seconds: float = 1.0
    max_seconds: float = 30.0

    def delay(self, retry_number: int, error: AIError) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_seconds)
        ceiling = min(self.base_seconds * 2 ** (retry_number - 1), self.max_seconds)
        # Jitter (half to all of the delay) keeps workers that failed together from
        # retrying together.
        return random.uniform(ceiling / 2, ceiling)


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[AIError, float], None] | None = None,
) -> T:
    """Run `call`, retrying transient AIErrors; re-raise the last error when retries run out."""
    retry = 0
    while True:
        try:
            return call()
        except AIError as error:
            if error.permanent or retry >= policy.max_retries:
                raise
            retry += 1
            wait = policy.delay(retry, error)
            if on_retry is not None:
                on_retry(error, wait)
            sleep(wait)
