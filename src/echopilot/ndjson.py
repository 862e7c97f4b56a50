"""Append-only NDJSON event logs (`<home>/logs/<name>.log`) that operators grep and count.

Each line: `ts` (UTC ISO 8601), `event`, then the event's fields. Callers never pass
secrets or job inputs.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from echopilot.clock import utcnow

_lock = threading.Lock()


def log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def append(log_file: Path, event: str, *, now: datetime | None = None, **fields: Any) -> None:
    line = json.dumps(
        {"ts": (now or utcnow()).isoformat(), "event": event, **fields},
        default=str,
        ensure_ascii=False,
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with _lock, log_file.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
