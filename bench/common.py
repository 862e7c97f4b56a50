"""What the benchmark scripts share."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from typing import TypeVar


def machine() -> str:
    """The figures' context: cores available, Python, platform."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 0
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"nproc {cpus}, {python}, {platform.platform(terse=True)}"


Number = TypeVar("Number", int, float)


def percentile(values: Sequence[Number], q: float) -> Number | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
