"""What the benchmark scripts share."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

# A client's text of five sentences: the offline summary keeps three of them, and the
# offline judge scores it 100.
PROSE = (
    "EchoPilot runs AI jobs for a small services business from intake to invoice. "
    "Each job is claimed by a worker, answered by a model and scored by a QA judge before "
    "it is priced. Jobs that pass the quality threshold are marked done and billed to the "
    "client at the agreed rate. Jobs that fall short are held for review so that a person "
    "can approve, edit or retry the answer. Every model call is recorded with its tokens, "
    "latency and cost, so margins stay visible per job."
)


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (its threads included), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_problems(home: Path, shown: int = 8) -> list[str]:
    """Warnings, errors and tracebacks in the server's log, alike ones counted once."""
    path = home / "logs" / "api.log"
    if not path.exists():
        return []
    problems: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                problems[line[:200]] += 1
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            event = " ".join(str(entry.get("event", line)).split())
            event = re.sub(r"\(request \w+\)", "(request ...)", event)
            exception = str(entry.get("exception") or "").strip().splitlines()
            if exception:
                event += f": {exception[-1]}"
            problems[f"{entry.get('level')}: {event[:240]}"] += 1
    lines = [f"x{count} {text}" for text, count in problems.most_common(shown)]
    if len(problems) > shown:
        lines.append(f"... and {len(problems) - shown} other kinds")
    return lines


def answers(url: str, default_port: int) -> bool:
    """Whether the server of a database or queue URL takes a TCP connection."""
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False
