"""The robust z-score the brief's statistical detection uses, on series with known answers."""

from __future__ import annotations

import pytest

from echopilot.briefs.detect import MIN_HISTORY, THRESHOLD, WINDOW, judge


def steady(n: int, level: float = 100.0) -> list[float | None]:
    """A series that wobbles a little around `level` (never flat)."""
    return [level + (i % 5) - 2 for i in range(n)]


def test_a_day_far_below_a_steady_month_is_an_anomaly_pointing_down() -> None:
    found = judge([*steady(WINDOW), 40.0])
    assert found.anomalous and found.direction == "down"
    assert found.median == 100.0 and found.history == WINDOW
    assert found.z is not None and found.z < -THRESHOLD


def test_an_ordinary_day_is_not_an_anomaly() -> None:
    found = judge([*steady(WINDOW), 101.0])
    assert not found.anomalous
    assert found.z is not None and abs(found.z) < 1


def test_one_past_outlier_does_not_hide_the_next_one() -> None:
    past = steady(WINDOW)
    past[5] = 10_000.0  # a freak day three weeks ago
    assert judge([*past, 40.0]).anomalous


def test_only_the_last_window_of_days_counts() -> None:
    # Two months ago the level was 10; the last four weeks it is 100: 100 is normal now.
    series = [*steady(30, level=10.0), *steady(WINDOW, level=100.0), 100.0]
    found = judge(series)
    assert found.median == 100.0 and not found.anomalous


def test_days_without_data_are_left_out_not_counted_as_zero() -> None:
    series: list[float | None] = []
    for value in steady(WINDOW):
        series += [value, None]  # every other day had no jobs
    found = judge([*series[-WINDOW:], 99.0])
    assert found.history == WINDOW // 2
    assert not found.anomalous and found.median is not None and found.median > 90


@pytest.mark.parametrize("known", [0, 1, MIN_HISTORY - 1])
def test_too_short_a_history_is_not_judged_and_says_why(known: int) -> None:
    found = judge([*steady(known), 5.0])
    assert found.z is None and not found.anomalous
    assert found.note is not None and str(MIN_HISTORY) in found.note


def test_a_flat_past_judges_a_change_by_the_smallest_step_that_matters() -> None:
    flat: list[float | None] = [0.0] * WINDOW
    assert not judge([*flat, 0.0]).anomalous
    assert judge([*flat, 3.0], floor=0.5).anomalous  # 3 failures where there were none
    assert not judge([*flat, 1.0], floor=0.5).anomalous


def test_an_empty_series_or_a_missing_last_day_is_not_judged() -> None:
    assert judge([]).note == "no data"
    found = judge([*steady(WINDOW), None])
    assert found.z is None and found.note == "no value on the last day"
