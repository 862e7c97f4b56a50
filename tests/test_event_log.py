"""The NDJSON event logs on a disk that fills: the work goes on, and every line stays whole."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from echopilot import ndjson
from tests.services import fill, small_disk

WRITER = """
import sys
from pathlib import Path
from echopilot import ndjson
path, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
written = sum(ndjson.append(path, "tick", who=who, n=n, pad="x" * 60) for n in range(count))
print(written)
"""


def test_a_log_on_a_full_disk_drops_lines_with_one_warning_and_says_when_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs"
    with small_disk(logs, 1):
        log = logs / "events.log"
        assert ndjson.append(log, "before")
        filler = fill(logs / "filler.bin")
        caplog.set_level(logging.INFO, logger="echopilot.ndjson")
        dropped = [ndjson.append(log, "during", n=n, pad="x" * 4096) for n in range(3)]
        filler.unlink()
        assert ndjson.append(log, "after")
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert dropped == [False, False, False]
    assert events == ["before", "after"]
    said = [r.getMessage() for r in caplog.records if r.name == "echopilot.ndjson"]
    assert len(said) == 2, said
    assert said[0].startswith(f"cannot write the event log {log} (No space left on device)")
    assert said[1] == f"the event log {log} is written again"


def test_processes_sharing_a_log_as_the_disk_fills_keep_every_line_they_were_told_of(
    tmp_path: Path,
) -> None:
    """Two processes append to one log until the disk is full. Each line whose append said
    True is there, whole; no line is torn or lost to another's clean-up."""
    logs = tmp_path / "logs"
    with small_disk(logs, 1):
        room = logs / "room.bin"
        room.write_bytes(b"\0" * 96 * 1024)
        fill(logs / "filler.bin")
        room.unlink()  # 96 KiB left: about 900 lines, for 2 x 1,000 wanted
        log = logs / "shared.log"
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(log), who, "1000"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for who in ("a", "b")
        ]
        told = {
            who: int(w.communicate(timeout=120)[0]) for who, w in zip("ab", writers, strict=True)
        }
        lines = log.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # each line one JSON object
    for who in "ab":
        mine = [e["n"] for e in events if e["who"] == who]
        assert len(mine) == told[who]
        assert mine == sorted(set(mine))
    assert 0 < told["a"] + told["b"] < 2000, told
