"""What the one clock costs: `echopilot.clock.utcnow()` without a clock file (every real
deployment) against `datetime.now(UTC)` (the baseline), and on a clock file (simulations).

    .venv/bin/python bench/clock.py            # about 5 s
"""

from __future__ import annotations

import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path

from echopilot import clock

CALLS = 200_000
REPEATS = 7


def per_call_ns(func: object) -> float:
    best = min(timeit.repeat(func, number=CALLS, repeat=REPEATS))  # type: ignore[arg-type]
    return best / CALLS * 1e9


def main() -> None:
    assert not clock.simulated(), "unset ECHOPILOT_CLOCK_FILE to measure the wall clock"
    baseline = per_call_ns(lambda: datetime.now(UTC))
    unset = per_call_ns(clock.utcnow)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clock.json"
        clock.set_file(path, datetime(2027, 1, 1, tzinfo=UTC))
        clock._file_clock = clock._FileClock(path)  # as if started with ECHOPILOT_CLOCK_FILE
        try:
            on_file = per_call_ns(clock.utcnow)
        finally:
            clock._file_clock = None
    print(f"clock: best of {REPEATS} x {CALLS:,} calls")
    print(f"  datetime.now(UTC) (baseline)   {baseline:8.0f} ns")
    print(f"  utcnow(), no clock file        {unset:8.0f} ns  ({unset / baseline:.2f}x baseline)")
    print(
        f"  utcnow(), on a clock file      {on_file:8.0f} ns  ({on_file / baseline:.2f}x baseline)"
    )


if __name__ == "__main__":
    main()
