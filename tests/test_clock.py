"""The one settable clock: a clock file read by every process that names it, so a test moves
the whole platform's time at once; queue ETAs follow it; a broken clock file is a clear
error; without one the clock is the wall clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from echopilot import clock
from echopilot.clock import ClockFileError, _FileClock
from echopilot.queue.app import JobQueue

START = datetime(2027, 3, 1, 7, 59, 30, tzinfo=UTC)


def child_now(clock_file: Path | None) -> datetime:
    """What a fresh `python` process that imports echopilot reads as now."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOPILOT_")}
    if clock_file is not None:
        env[clock.CLOCK_FILE_ENV] = str(clock_file)
    out = subprocess.run(
        [sys.executable, "-c", "from echopilot.clock import utcnow; print(utcnow().isoformat())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return datetime.fromisoformat(out.stdout.strip())


def test_every_process_on_the_file_reads_its_time_and_follows_a_jump(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    clock.set_file(path, START)
    seen = child_now(path)
    assert START <= seen < START + timedelta(seconds=30)  # the file's time, flowing on
    clock.set_file(path, START + timedelta(days=3))
    assert child_now(path) >= START + timedelta(days=3)
    # The same reader sees the jump too (it re-reads the file when it changes).
    reader = _FileClock(path)
    before = reader.now()
    clock.set_file(path, START + timedelta(days=9))
    assert reader.now() - before > timedelta(days=5)
    assert clock.file_time(path) >= START + timedelta(days=9)


def test_without_a_clock_file_the_clock_is_the_wall_clock() -> None:
    seen = child_now(None)
    assert abs(seen - datetime.now(UTC)) < timedelta(seconds=30)
    assert not clock.simulated()  # the test process itself runs on wall time


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (None, "cannot read"),
        ("not json", "is not a clock file"),
        (json.dumps({"now": "2027-01-01T00:00:00", "written": 1}), "without a zone"),
        (json.dumps({"written": 1}), "is not a clock file"),
    ],
)
def test_a_broken_clock_file_is_named(tmp_path: Path, content: str | None, named: str) -> None:
    path = tmp_path / "clock.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ClockFileError) as caught:
        _FileClock(path).now()
    assert named in str(caught.value) and str(path) in str(caught.value)
    assert clock.CLOCK_FILE_ENV in str(caught.value)


def test_a_naive_time_is_refused_when_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set_file(tmp_path / "clock.json", datetime(2027, 1, 1))


def test_a_retry_eta_comes_due_on_the_clock_not_the_wall(
    tmp_path: Path, make_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Huey reads the time of a message's ETA from the one clock: a retry an hour away in
    simulated time is not due until the clock says so, and is due at once after a jump."""
    path = tmp_path / "clock.json"
    clock.set_file(path, START)
    monkeypatch.setattr(clock, "_file_clock", _FileClock(path))
    settings = make_settings(queue_url="memory://")  # type: ignore[operator]
    queue = JobQueue(settings)
    queue.enqueue(7, eta=START + timedelta(hours=1))
    message = queue.huey.dequeue()
    assert message.args == (7,)
    assert not queue.huey.ready_to_run(message)  # an hour early in simulated time
    queue.huey.add_schedule(message)  # as the consumer does with an early message
    clock.set_file(path, START + timedelta(hours=1, seconds=1))
    assert queue.huey.ready_to_run(message)
    assert [task.args for task in queue.huey.read_schedule()] == [(7,)]
