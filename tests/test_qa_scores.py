"""Reading the QA judge's answer strictly, and which pass mark applies to a job."""

from __future__ import annotations

import json

import pytest

from echopilot.jobs.qa import RUBRIC, InvalidScore, effective_threshold, parse_score

GOOD = {"clarity": 27, "accuracy": 25.5, "completeness": 18, "tone": 19, "reason": "solid"}


def reply(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


def test_a_valid_score_is_the_sum_of_the_four_rubric_items() -> None:
    result = parse_score(reply())
    assert result.score == 89.5
    assert result.breakdown == {"clarity": 27, "accuracy": 25.5, "completeness": 18, "tone": 19}
    assert result.reason == "solid"


def test_the_top_of_every_rubric_item_adds_up_to_100() -> None:
    result = parse_score(json.dumps(dict(RUBRIC)))
    assert result.score == 100


def test_a_score_wrapped_in_prose_and_a_code_fence_is_accepted() -> None:
    text = f"Here is my assessment.\n```json\n{reply()}\n```\nLet me know if you need more."
    assert parse_score(text).score == 89.5


@pytest.mark.parametrize("item", sorted(RUBRIC))
def test_a_missing_rubric_item_is_rejected(item: str) -> None:
    data = dict(GOOD)
    del data[item]
    with pytest.raises(InvalidScore, match=item):
        parse_score(json.dumps(data))


@pytest.mark.parametrize(
    ("item", "value"),
    [("clarity", 31), ("accuracy", 30.5), ("completeness", 21), ("tone", -1)],
)
def test_a_rubric_item_outside_its_range_is_rejected(item: str, value: float) -> None:
    with pytest.raises(InvalidScore, match=item):
        parse_score(reply(**{item: value}))


@pytest.mark.parametrize("value", ["27", None, [27], {"value": 27}])
def test_a_rubric_item_that_is_not_a_number_is_rejected(value: object) -> None:
    with pytest.raises(InvalidScore, match="clarity"):
        parse_score(reply(clarity=value))


def test_a_boolean_rubric_item_is_rejected() -> None:
    with pytest.raises(InvalidScore, match="tone"):
        parse_score(reply(tone=True))


@pytest.mark.parametrize(
    "text",
    ["", "I would give it about 85.", "{clarity: 27, accuracy: 25}", "[27, 25, 18, 19]"],
)
def test_an_answer_that_is_not_a_json_object_is_rejected(text: str) -> None:
    with pytest.raises(InvalidScore):
        parse_score(text)


def test_the_jobs_own_target_wins_over_its_types_threshold_and_the_default() -> None:
    assert effective_threshold(95, 70, 80) == 95


def test_a_job_target_of_zero_still_wins() -> None:
    assert effective_threshold(0, 70, 80) == 0


def test_the_task_types_threshold_applies_when_the_job_sets_none() -> None:
    assert effective_threshold(None, 70, 80) == 70


def test_the_default_applies_when_neither_job_nor_type_sets_one() -> None:
    assert effective_threshold(None, None, 80) == 80
