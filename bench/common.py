"""What the benchmark scripts share."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """The figures' context: cores available, Python, platform."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 0
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"nproc {cpus}, {python}, {platform.platform(terse=True)}"
