"""What the benchmark scripts share."""

from __future__ import annotations

import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import httpx


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


START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0


class SetupError(RuntimeError):
    """The benchmark could not be set up (not a slow machine: something is broken)."""


def start_server(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m echopilot serve --port <port>`, returned once /health answers 200."""
    out = (cwd / "serve.out").open("ab")  # appended: a restarted server keeps the first's
    process = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "serve", "--port", str(port), "--quiet"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (cwd / "serve.out").read_text(errors="replace")[-2000:]
                raise SetupError(f"the server exited at start ({process.returncode}): {tail}")
            try:
                if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    stop_server(process)
    raise SetupError(f"the server did not answer /health within {START_TIMEOUT_SECONDS:.0f} s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)
