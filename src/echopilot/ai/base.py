"""What every model provider offers, and the one error type they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    # False when the server reported no token usage (then cost cannot be computed).
    usage_reported: bool = True
    # True when the model stopped at the output limit rather than at the answer's end.
    truncated: bool = False


class AIError(Exception):
    """A model call failed.

    `permanent` errors (bad request, auth, unknown model) are not retried;
    transient ones (rate limit, 5xx, timeout, connection) are, honouring `retry_after`.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status

    @property
    def kind(self) -> str:
        return "permanent" if self.permanent else "transient"


@dataclass(frozen=True)
class ModelRequest:
    """One model call. Chat servers read `system` and `prompt`; the offline provider, which
    cannot read prose, works from the structured fields that the prompt was made of."""

    purpose: Literal["task", "qa"]
    model: str
    system: str
    prompt: str
    max_tokens: int
    task_type: str
    input_text: str
    answer_text: str | None = None


class Provider(Protocol):
    """A source of completions. `name` is shown wherever the provider is ("offline", "openai")."""

    name: str

    def complete(self, request: ModelRequest) -> Completion:
        """Return one completion or raise AIError."""
        ...


def storable(text: str) -> str:
    """`text` from a model server made safe to store: without NUL characters (PostgreSQL
    refuses them) and with unpaired surrogates (not encodable as UTF-8) replaced."""
    cleaned = text.replace("\0", "")
    return cleaned.encode("utf-8", "replace").decode("utf-8")
