"""The brief's files: `<home>/reports/briefs/{ingest,analysis,brief}_<UTC stamp>.*`.

A stamp is the UTC second the brief was asked for (`20261203_080000`), with `-2`, `-3`
added when that second is taken, so two briefs never share files. Files are written whole
and renamed into place (echopilot.reports.files), the brief's JSON last: it is the record
that the brief exists on disk.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

FOLDER = ("reports", "briefs")
BRIEF_KINDS = ("html", "md", "json")  # written in this order: JSON last
STAMP = re.compile(r"^\d{8}_\d{6}(?:-\d{1,4})?$")


def folder(home: Path) -> Path:
    return home.joinpath(*FOLDER)


def path(home: Path, step: str, stamp: str, kind: str = "json") -> Path:
    return folder(home) / f"{step}_{stamp}.{kind}"


def brief_paths(home: Path, stamp: str) -> dict[str, Path]:
    return {kind: path(home, "brief", stamp, kind) for kind in BRIEF_KINDS}


def new_stamp(home: Path, now: datetime, taken: set[str]) -> str:
    """A stamp for `now` no file and no brief in `taken` uses (call with the folder locked)."""
    base = now.strftime("%Y%m%d_%H%M%S")
    stamp, n = base, 1
    while stamp in taken or any(path(home, step, stamp).exists() for step in _STEPS):
        n += 1
        stamp = f"{base}-{n}"
    return stamp


_STEPS = ("ingest", "analysis", "brief")


def read(home: Path, step: str, stamp: str) -> dict[str, Any] | None:
    """A step's saved document, or None when it is missing or unreadable."""
    if not STAMP.match(stamp):
        return None
    try:
        data = json.loads(path(home, step, stamp).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
