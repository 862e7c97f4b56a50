"""The brief's prose. The deterministic summary is always written; with a model configured,
the model may rewrite the summary and the wording of the actions from the analysis JSON
alone (never from raw data), asked for structured output. Its answer is kept only when it
has the requested shape and every number it states appears in what it was shown of the
analysis: a model that
invents (or recomputes, or rounds) a figure is discarded for the deterministic text, and
the brief says which was used and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from echopilot.config import Settings

MAX_SUMMARY = 2000
MAX_TASK = 300
MAX_TOKENS = 900
# A minus counts when it starts the number ("-12.50", "(-3"), not inside a date (2026-06-15).
_NUMBER = re.compile(r"(?:(?<![\w.-])-)?\d[\d,]*(?:\.\d+)?")

SYSTEM = (
    "You write the prose of a company's daily CEO brief. You are given the brief's analysis "
    "as JSON: its KPIs, anomalies with evidence, and actions. Write a summary of 2 to 5 "
    "sentences for the owner: what happened, what is wrong and why. Then reword each action "
    "as a clear instruction, keeping its id. Use only numbers that appear in the JSON, "
    "written exactly as they appear there; do not compute, round or estimate any number. "
    "Answer with JSON only."
)
SCHEMA: dict[str, Any] = {
    "name": "brief_narrative",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["summary", "actions"],
        "properties": {
            "summary": {"type": "string"},
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "task"],
                    "properties": {"id": {"type": "string"}, "task": {"type": "string"}},
                },
            },
        },
    },
}


@dataclass
class Narrative:
    source: str  # "model" | "deterministic"
    summary: str
    tasks: dict[str, str] = field(default_factory=dict)  # action id -> wording
    model: str | None = None
    reason: str | None = None  # why the deterministic text was used

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "reason": self.reason}


def numbers_in(value: Any) -> set[Decimal]:
    """Every number in a JSON value: numbers, numbers written in strings, and in keys."""
    found: set[Decimal] = set()
    if isinstance(value, bool) or value is None:
        return found
    if isinstance(value, int | float):
        found.add(_norm(str(value)))
    elif isinstance(value, str):
        found |= {_norm(m) for m in _NUMBER.findall(value)}
    elif isinstance(value, dict):
        for key, item in value.items():
            found |= numbers_in(str(key)) | numbers_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= numbers_in(item)
    return found


def _norm(text: str) -> Decimal:
    # Signed: a loss stated as a gain is a wrong number. Always a valid decimal: the
    # pattern's digits and commas, or a JSON number's text.
    return Decimal(text.replace(",", "")).normalize()


def unsupported(text: str, allowed: set[Decimal]) -> list[str]:
    """The numbers stated in `text` that are not in `allowed`."""
    return [m for m in _NUMBER.findall(text) if _norm(m) not in allowed]


def check(answer: Any, analysis: dict[str, Any]) -> tuple[str, dict[str, str]] | str:
    """The model's (summary, {action id: task}) when it passes, else why not."""
    if not isinstance(answer, dict) or not isinstance(answer.get("summary"), str):
        return "the model's answer was not the requested structure (no summary)"
    actions = answer.get("actions", [])
    if not isinstance(actions, list) or not all(
        isinstance(a, dict) and isinstance(a.get("id"), str) and isinstance(a.get("task"), str)
        for a in actions
    ):
        return "the model's answer was not the requested structure (actions)"
    summary = answer["summary"].strip()
    if not summary or len(summary) > MAX_SUMMARY:
        return f"the model's summary was empty or over {MAX_SUMMARY} characters"
    known = {a["id"] for a in analysis["actions"]}
    tasks = {a["id"]: a["task"].strip() for a in actions if a["id"] in known and a["task"].strip()}
    if any(len(t) > MAX_TASK for t in tasks.values()):
        return f"the model's wording of an action was over {MAX_TASK} characters"
    allowed = numbers_in(_for_model(analysis))  # only numbers the model was shown
    for text in (summary, *tasks.values()):
        wrong = unsupported(text, allowed)
        if wrong:
            return f"the model stated {wrong[0]}, which is not in the analysis"
    return summary, tasks


def write(analysis: dict[str, Any], settings: Settings, deterministic: str) -> Narrative:
    """The narrative of a brief: the model's when configured and it passes the check."""
    if settings.provider_name != "openai":
        return Narrative("deterministic", deterministic, reason="no model configured (offline)")
    model = settings.model
    try:
        answer = _ask(analysis, settings)
    except Exception as exc:  # any failure of the model call: the brief still goes out
        return Narrative(
            "deterministic", deterministic, model=model, reason=f"model call failed: {_short(exc)}"
        )
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    result = check(parsed, analysis)
    if isinstance(result, str):
        return Narrative("deterministic", deterministic, model=model, reason=result)
    summary, tasks = result
    return Narrative("model", summary, tasks, model=model)


def _ask(analysis: dict[str, Any], settings: Settings) -> str:
    # Imported here: the SDK takes half a second to import, and offline briefs skip it.
    import openai

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    client = openai.OpenAI(
        api_key=key or "not-needed",
        base_url=settings.openai_base_url,
        timeout=settings.ai_timeout_seconds,
        max_retries=1,
    )
    response = client.chat.completions.create(
        model=settings.model,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": json.dumps(_for_model(analysis), ensure_ascii=False)},
        ],
        max_tokens=MAX_TOKENS,
        response_format=cast(Any, {"type": "json_schema", "json_schema": SCHEMA}),
    )
    if not response.choices:
        raise ValueError("the model answered with no choices")
    return response.choices[0].message.content or ""


def _for_model(analysis: dict[str, Any]) -> dict[str, Any]:
    """What the model sees: the findings, not the raw statistics of every series."""
    return {
        "cutoff": analysis["cutoff"],
        "kpis": analysis["kpis"],
        "anomalies": analysis["anomalies"],
        "actions": [
            {k: a[k] for k in ("id", "owner", "priority", "task", "eta_hours")}
            for a in analysis["actions"]
        ],
        "freshness": analysis["freshness"]["line"],
    }


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
