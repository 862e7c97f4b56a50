"""Statistical anomaly detection on a daily series: a robust z-score against the days before.

A day is compared with the median of the previous WINDOW days, in units of their median
absolute deviation (MAD) scaled to a standard deviation (x 1.4826), so that one past
outlier does not hide the next. Days with no value (no jobs) are left out of both. A series
with fewer than MIN_HISTORY earlier values is not judged: the result says so instead of
guessing. When the past is flat (MAD 0), any change is a deviation of the size of the
change against the smallest step that matters (`floor`), never a division by zero.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 28
MIN_HISTORY = 14
THRESHOLD = 3.5  # |z| above this is an anomaly (Iglewicz and Hoaglin's cut-off)
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class Judgement:
    """How the last value of a series compares with the WINDOW values before it."""

    value: float | None
    median: float | None
    z: float | None  # None: not judged (see `note`)
    history: int  # earlier values used
    note: str | None = None

    @property
    def anomalous(self) -> bool:
        return self.z is not None and abs(self.z) > THRESHOLD

    @property
    def direction(self) -> str | None:
        if self.z is None or self.z == 0:
            return None
        return "up" if self.z > 0 else "down"


def judge(series: Sequence[float | None], *, floor: float = 1e-9) -> Judgement:
    """Judge the last value of `series` (oldest first) against up to WINDOW values before
    it. `floor` is the smallest deviation that counts when the past did not vary."""
    if not series:
        return Judgement(None, None, None, 0, "no data")
    value = series[-1]
    past = [v for v in series[-WINDOW - 1 : -1] if v is not None]
    if value is None:
        return Judgement(None, None, None, len(past), "no value on the last day")
    if len(past) < MIN_HISTORY:
        return Judgement(
            value,
            None,
            None,
            len(past),
            f"only {len(past)} earlier days with data; {MIN_HISTORY} are needed to judge",
        )
    median = statistics.median(past)
    mad = statistics.median(abs(v - median) for v in past) * MAD_TO_SD
    scale = mad if mad > 0 else max(floor, 1e-9)
    return Judgement(value, median, round((value - median) / scale, 2), len(past))
