"""The offline provider: deterministic text and a heuristic QA score, no model at all.

It lets a newcomer and the test suite run the whole platform with no key and no network.
It is labelled "offline" wherever a provider is shown and is never presented as a model:
its "answers" are extractive (sentences picked from the input) and its QA score is a
heuristic over length, overlap with the input and tone.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from functools import lru_cache

from echopilot.ai.base import Completion, ModelRequest

OFFLINE_MODEL = "offline"

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FILLERS = re.compile(r"\b(?:um+|uh+|erm|you know|i mean)\b[,]?\s*", re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an and are as at be been but by for from has have he her his i if in into is it its "
    "of on or our she so than that the their them then there these they this to was we were "
    "what when which who will with would you your not no can could should may might must do "
    "does did about over also just more most such only other any each all some very".split()
)


CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """About four characters a token, the usual rule of thumb for English."""
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


class OfflineProvider:
    name = "offline"

    def __init__(self, *, latency_ms: int = 0) -> None:
        self._latency_s = latency_ms / 1000

    def complete(self, request: ModelRequest) -> Completion:
        started = time.monotonic()
        if request.purpose == "qa":
            text = json.dumps(judge(request.input_text, request.answer_text or ""))
        else:
            text = perform(request.task_type, request.input_text)
        # Like a model, stop at the output limit and say so.
        truncated = estimate_tokens(text) > request.max_tokens
        if truncated:
            text = text[: request.max_tokens * CHARS_PER_TOKEN]
        if self._latency_s:
            time.sleep(self._latency_s)
        return Completion(
            text=text,
            model=OFFLINE_MODEL,
            tokens_in=estimate_tokens(request.system) + estimate_tokens(request.prompt),
            tokens_out=estimate_tokens(text),
            latency_ms=int((time.monotonic() - started) * 1000),
            truncated=truncated,
        )


def sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]


@lru_cache(maxsize=8)
def _weights(text: str) -> Counter[str]:
    """How often each meaningful word occurs in `text` (kept for the few texts in hand: the
    task call and the judge's call of one job read the same input)."""
    words = (w.lower() for w in _WORD.findall(text))
    return Counter(w for w in words if w not in _STOPWORDS and len(w) > 2)


def keywords(text: str, limit: int = 12) -> list[str]:
    return [w for w, _ in _weights(text).most_common(limit)]


def _top_sentences(text: str, count: int) -> list[str]:
    """The `count` sentences richest in the text's keywords, kept in their original order."""
    found = sentences(text)
    if len(found) <= count:
        return found
    weights = _weights(text)

    def score(sentence: str) -> float:
        words = [w.lower() for w in _WORD.findall(sentence)]
        return sum(weights[w] for w in words) / (len(words) ** 0.5 or 1)

    ranked = sorted(range(len(found)), key=lambda i: (-score(found[i]), i))[:count]
    return [found[i] for i in sorted(ranked)]


def perform(task_type: str, text: str) -> str:
    """A deterministic stand-in answer for `task_type`."""
    if task_type == "transcription":
        return _clean_transcript(text)
    if task_type == "data_transform":
        return _transform(text)
    if task_type == "drafting":
        body = " ".join(_top_sentences(text, 5))
        return f"Hello,\n\n{body}\n\nKind regards,\nThe EchoPilot team"
    if task_type == "research":
        points = "\n".join(f"- {s}" for s in _top_sentences(text, 5))
        terms = ", ".join(keywords(text, 8))
        return f"Key findings:\n{points}\n\nKey terms: {terms}."
    return " ".join(_top_sentences(text, 3))


def _clean_transcript(text: str) -> str:
    cleaned = _FILLERS.sub("", text)
    return " ".join(s[:1].upper() + s[1:] for s in sentences(cleaned))


def _transform(text: str) -> str:
    """CSV becomes JSON records and JSON becomes CSV; anything else becomes key points."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        out = io.StringIO()
        fields = sorted({key for row in data for key in row})
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
        return out.getvalue()
    rows = list(csv.DictReader(io.StringIO(stripped)))
    if rows and len(rows[0]) > 1:
        return json.dumps(rows, indent=2)
    return "\n".join(f"- {s}" for s in _top_sentences(text, 5))


def judge(input_text: str, answer: str) -> dict[str, object]:
    """Heuristic QA scores on the rubric (clarity 30, accuracy 30, completeness 20, tone 20)."""
    answer_sentences = sentences(answer) or [answer]
    words_per_sentence = len(answer.split()) / max(len(answer_sentences), 1)
    # Clear prose runs 8 to 28 words a sentence; lists and records score as clear too.
    structured = answer.lstrip().startswith(("-", "[", "{", "Hello")) or "\n" in answer
    clarity = 30.0 if structured or 8 <= words_per_sentence <= 28 else 22.0
    wanted = keywords(input_text, 10)
    present = {w.lower() for w in _WORD.findall(answer)}
    overlap = sum(1 for w in wanted if w in present) / len(wanted) if wanted else 1.0
    accuracy = 30.0 * min(1.0, 0.4 + overlap)
    ratio = len(answer) / max(len(input_text), 1)
    completeness = 20.0 if len(answer) >= 200 or ratio >= 0.15 else 20.0 * min(1.0, ratio / 0.15)
    shouting = sum(1 for w in answer.split() if len(w) > 3 and w.isupper())
    tone = max(0.0, 20.0 - 2.0 * answer.count("!") - 2.0 * shouting)
    breakdown = {
        "clarity": round(clarity, 1),
        "accuracy": round(accuracy, 1),
        "completeness": round(completeness, 1),
        "tone": round(tone, 1),
    }
    return {**breakdown, "reason": "offline heuristic score (no model judged this answer)"}
