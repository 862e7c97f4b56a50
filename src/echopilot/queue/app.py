"""The Huey queue that carries job ids, built from ECHOPILOT_QUEUE_URL.

A message holds a job id and nothing else; the jobs table decides what happens to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huey import MemoryHuey, PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.storage import SqliteStorage

from echopilot.clock import utcnow
from echopilot.config import Settings

RUN_JOB = "echopilot.run_job"
REVOKE_PREFIX = "r:"  # Huey's key of a task's revocation: "r:<task id>"
# Filled in by the worker; an enqueuing process never runs the task body.
_executor: Callable[[int], None] | None = None


def set_executor(executor: Callable[[int], None] | None) -> None:
    global _executor
    _executor = executor


def _run_job(job_id: int) -> None:
    if _executor is None:
        raise RuntimeError("no job executor in this process; start one with `echopilot worker`")
    _executor(job_id)


class _QueuedSqliteStorage(SqliteStorage):  # type: ignore[misc]
    """SQLite storage whose threads take turns on a Python lock before the file lock, and
    whose commits do not wait for the disk (synchronous=NORMAL).

    Every dequeue is a write transaction; with dozens of worker threads, SQLite's busy
    handler (sleeps of up to 100 ms) turns contention into idle workers. A Python lock
    hands the turn over at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn = threading.Lock()

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        # The database, not the queue, is the record of every job (a lost message is found
        # again by the recovery sweep): the queue need not wait for the disk on each commit.
        conn.execute("pragma synchronous=NORMAL")
        return conn

    def dequeue(self) -> Any:
        with self._turn:
            return super().dequeue()

    def enqueue(self, data: Any, priority: Any = None) -> Any:
        with self._turn:
            return super().enqueue(data, priority)


class _NoRevocations:
    """EchoPilot never revokes a queued message: a job is cancelled in the database, and its
    message then finds nothing to run. So each task skips Huey's revocation check (a read)
    and the clearing of its revocation key (a write)."""

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> Any:
        if key.startswith(REVOKE_PREFIX):
            return None
        return super().delete(key)  # type: ignore[misc]


class _OnTheClock:
    """Huey tells the time of a message's ETA by the one clock (echopilot.clock), so a
    retry's delay follows simulated time too."""

    def _get_timestamp(self) -> datetime:
        return utcnow().replace(tzinfo=None)  # Huey in UTC mode: naive UTC


class _SqliteHuey(_OnTheClock, _NoRevocations, SqliteHuey):  # type: ignore[misc]
    storage_class = _QueuedSqliteStorage


class _RedisHuey(_OnTheClock, _NoRevocations, PriorityRedisHuey):  # type: ignore[misc]
    pass


class _MemoryHuey(_OnTheClock, _NoRevocations, MemoryHuey):  # type: ignore[misc]
    pass


def build_huey(settings: Settings) -> tuple[Huey, Any]:
    """The Huey instance for ECHOPILOT_QUEUE_URL and its run-job task wrapper."""
    url = settings.resolved_queue_url
    scheme = urlsplit(url).scheme
    common: dict[str, Any] = {"results": False, "utc": True}
    huey: Huey
    if scheme == "sqlite":
        path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        if path is None:
            raise ValueError("ECHOPILOT_QUEUE_URL: sqlite queue URLs look like sqlite:///path")
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = _SqliteHuey(settings.queue_name, filename=str(path), timeout=30, **common)
    elif scheme in ("redis", "rediss"):
        huey = _RedisHuey(settings.queue_name, url=url, **common)
    elif scheme == "memory":
        huey = _MemoryHuey(settings.queue_name, **common)
    else:
        raise ValueError(f"ECHOPILOT_QUEUE_URL: unsupported scheme {scheme!r}")
    return huey, huey.task(name=RUN_JOB)(_run_job)


class JobQueue:
    """Enqueue job ids and look at what the queue holds."""

    def __init__(self, settings: Settings) -> None:
        self.huey, wrapper = build_huey(settings)
        self._task_class = wrapper.task_class

    def enqueue(self, job_id: int, *, priority: int = 0, eta: datetime | None = None) -> None:
        # Huey in UTC mode wants naive UTC datetimes.
        naive_eta = eta.astimezone(UTC).replace(tzinfo=None) if eta else None
        task = self._task_class((job_id,), {}, priority=priority or None, eta=naive_eta)
        self.huey.enqueue(task)

    def depth(self) -> int:
        return int(self.huey.pending_count()) + int(self.huey.scheduled_count())

    def job_ids(self, limit: int) -> set[int] | None:
        """Job ids in the queue (waiting or scheduled), or None when there are more than
        `limit` messages to read."""
        if self.depth() > limit:
            return None
        tasks = list(self.huey.pending()) + list(self.huey.scheduled())
        return {int(t.args[0]) for t in tasks if isinstance(t, self._task_class) and t.args}
