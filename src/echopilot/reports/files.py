"""The daily report's files: `<home>/reports/daily/daily_report_<YYYYMMDD>.{json,html,csv}`.

Each file is written whole to a hidden temporary file in the same folder, flushed to disk
and renamed over the old one, so a reader (or a crash) never sees half a file. The JSON
goes last: it is the record that the day has a report (the API and the listing read it),
so a crash before it leaves the day's previous report in place. One report run at a time
per home (a lock file in the folder), from reading the data to writing the files: two runs
for one day never mix their files, and an older reading never replaces a newer one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from echopilot.reports.day import stamp

FOLDER = ("reports", "daily")
PREFIX = "daily_report_"
KINDS = ("html", "csv", "json")  # the order they are written in: JSON last
_NAME = re.compile(rf"^{PREFIX}(\d{{8}})\.json$")
LOCK_NAME = ".write.lock"  # hidden: retention's patterns never match it


def folder(home: Path) -> Path:
    return home.joinpath(*FOLDER)


def paths(home: Path, day: date) -> dict[str, Path]:
    """The three files of `day`, by kind."""
    base = folder(home)
    return {kind: base / f"{PREFIX}{stamp(day)}.{kind}" for kind in KINDS}


def writing(home: Path) -> contextlib.AbstractContextManager[Path]:
    """Hold the daily reports folder's lock (waiting for another run to finish) for the block."""
    return locked(folder(home))


@contextlib.contextmanager
def locked(base: Path) -> Iterator[Path]:
    """Create `base` if needed and hold its lock file for the block."""
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(base / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield base
    finally:
        os.close(fd)  # closing drops the lock


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (mode 0600: reports hold client data)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sync_folder(base: Path) -> None:
    """Make the renames durable (a power cut must not bring the old files back)."""
    fd = os.open(base, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def days_with_reports(home: Path) -> list[date]:
    """The days that have a report, newest first."""
    base = folder(home)
    found = []
    for path in base.glob(f"{PREFIX}*.json") if base.is_dir() else []:
        match = _NAME.match(path.name)
        if match is None:
            continue
        try:
            found.append(date(int(match[1][:4]), int(match[1][4:6]), int(match[1][6:])))
        except ValueError:
            continue
    return sorted(found, reverse=True)


def read(home: Path, day: date) -> dict[str, Any] | None:
    """The report of `day`, or None when it has none (or its JSON cannot be read)."""
    try:
        data = json.loads(paths(home, day)["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
