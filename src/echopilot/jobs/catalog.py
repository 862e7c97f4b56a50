"""What EchoPilot sells, as the worker needs it on every claim: each task type's
instructions, QA pass mark and price rule, read from the database at most once a second
per process rather than once a job. A changed rule applies to jobs claimed from a second
later on."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, select

from echopilot.db.models import PriceRule, TaskType

REFRESH_SECONDS = 1.0

_READ = select(
    TaskType.name,
    TaskType.instructions,
    TaskType.qa_threshold,
    PriceRule.unit,
    PriceRule.rate_micros,
    PriceRule.min_cents,
    PriceRule.max_cents,
).join(PriceRule, PriceRule.task_type == TaskType.name)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instructions: str
    qa_threshold: int | None  # None: the global ECHOPILOT_QA_THRESHOLD
    unit: str
    rate_micros: int
    min_cents: int | None
    max_cents: int | None


class Catalog:
    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._refresh_seconds = refresh_seconds
        self._specs: dict[str, TaskSpec] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def spec(self, conn: Connection, task_type: str) -> TaskSpec | None:
        """The task type's spec, read through `conn` when the copy is over a second old, or
        when it does not know the type (one added a moment ago); None when there is none."""
        if time.monotonic() - self._read_at >= self._refresh_seconds:
            self._read(conn, stale_after=self._refresh_seconds)
        found = self._specs.get(task_type)
        if found is None:
            self._read(conn, stale_after=0.0)
            found = self._specs.get(task_type)
        return found

    def _read(self, conn: Connection, *, stale_after: float) -> None:
        with self._lock:
            if time.monotonic() - self._read_at >= stale_after:
                self._specs = {row.name: TaskSpec(*row) for row in conn.execute(_READ)}
                self._read_at = time.monotonic()
