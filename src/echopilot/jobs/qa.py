"""The QA judge: rubric, prompt, and strict parsing of the judge's answer.

Rubric (from the original system): clarity and coherence 30, accuracy and relevance 30,
completeness 20, professional tone 20; the score is their sum, 0-100.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RUBRIC: dict[str, int] = {"clarity": 30, "accuracy": 30, "completeness": 20, "tone": 20}

QA_SYSTEM = (
    "You are a strict quality reviewer for a professional AI-services business. Score the "
    "ANSWER to the TASK on this rubric: clarity (clarity and coherence, 0-30), accuracy "
    "(accuracy and relevance to the input, 0-30), completeness (0-20), tone (professional "
    "tone, 0-20). Reply with one JSON object and nothing else, for example: "
    '{"clarity": 27, "accuracy": 25, "completeness": 18, "tone": 19, "reason": "one sentence"}'
)


class InvalidScore(ValueError):
    """The judge's answer is not a valid rubric score."""


@dataclass(frozen=True)
class QAResult:
    score: float
    breakdown: dict[str, float]
    reason: str


def qa_prompt(instructions: str, input_text: str, answer: str) -> str:
    return f"TASK:\n{instructions}\n\nINPUT:\n{input_text}\n\nANSWER:\n{answer}"


def parse_score(reply: str) -> QAResult:
    """Read the judge's reply; raise InvalidScore if a rubric item is missing or out of range."""
    data = _first_json_object(reply or "")
    if data is None:
        raise InvalidScore(f"no JSON object in the judge's reply: {_excerpt(reply)}")
    breakdown: dict[str, float] = {}
    for item, top in RUBRIC.items():
        value = data.get(item)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidScore(f"rubric item {item!r} missing or not a number")
        if not 0 <= value <= top:
            raise InvalidScore(f"rubric item {item!r} = {value} is outside 0-{top}")
        breakdown[item] = float(value)
    reason = data.get("reason")
    return QAResult(
        score=round(sum(breakdown.values()), 1),
        breakdown=breakdown,
        reason=str(reason)[:1000] if reason else "",
    )


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (models wrap JSON in prose or code fences)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def effective_threshold(job_target: int | None, type_threshold: int | None, default: int) -> int:
    """A job's own target wins, then its task type's, then the global default."""
    if job_target is not None:
        return job_target
    if type_threshold is not None:
        return type_threshold
    return default


def _excerpt(text: str | None, limit: int = 120) -> str:
    flat = " ".join((text or "").split())
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))
