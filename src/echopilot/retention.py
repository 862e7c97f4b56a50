"""Retention: keep the newest report files of each pattern and prune old operational rows.

Files are judged by the timestamp in their name (brief_20251020_123556.json,
daily_report_20251020.csv), never by mtime, which copies and restores change. A file with
no timestamp in its name is never deleted. Rows pruned: schedule runs, stale process
heartbeats, alert events, resolved alerts and Stripe reconciliation runs (but the newest
good one) older than ECHOPILOT_RETENTION_ROW_DAYS. Jobs, attempts, job events, payments,
Stripe events, briefs and the audit log are never deleted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from echopilot import audit, ndjson
from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import (
    Alert,
    AlertEvent,
    NotionPage,
    PaymentReconcile,
    SchedulerInstance,
    ScheduleRun,
    WorkerHeartbeat,
)
from echopilot.runtime import Runtime

_STAMP = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T_-]?(\d{2})[:-]?(\d{2})[:-]?(\d{2}))?")
ROW_BATCH = 1000
_NEWEST_GOOD_RECONCILE = (
    select(func.max(PaymentReconcile.id)).where(PaymentReconcile.ok.is_(True)).scalar_subquery()
)


@dataclass
class PatternResult:
    pattern: str
    kept: int = 0
    deleted: int = 0
    bytes_freed: int = 0
    unstamped: int = 0
    errors: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)


@dataclass
class RetentionResult:
    dry_run: bool
    keep: int
    patterns: list[PatternResult] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    row_cutoff: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "keep": self.keep,
            "patterns": [vars(p) for p in self.patterns],
            "rows": self.rows,
            "row_cutoff": self.row_cutoff,
            "deleted": sum(p.deleted for p in self.patterns),
            "bytes_freed": sum(p.bytes_freed for p in self.patterns),
            "errors": sum(len(p.errors) for p in self.patterns),
        }


def name_stamp(name: str) -> datetime | None:
    """The timestamp in a file name, or None."""
    for match in _STAMP.finditer(name):
        year, month, day, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                tzinfo=UTC,
            )
        except ValueError:
            continue
    return None


def run(
    runtime: Runtime,
    *,
    dry_run: bool,
    now: datetime | None = None,
) -> RetentionResult:
    now = now or utcnow()
    settings = runtime.settings
    log = ndjson.log_path(settings.home, "retention")
    result = RetentionResult(dry_run=dry_run, keep=settings.retention_keep)
    reports = settings.home / "reports"
    for pattern in settings.retention_pattern_list:
        result.patterns.append(
            _prune_files(reports, pattern, settings.retention_keep, dry_run, log, now)
        )
    cutoff = now - timedelta(days=settings.retention_row_days)
    result.row_cutoff = cutoff.isoformat()
    result.rows = _prune_rows(runtime, cutoff, dry_run, log, now)
    ndjson.append(
        log,
        "retention_finished",
        now=now,
        **{k: v for k, v in result.as_dict().items() if k != "patterns"},
    )
    return result


def run_by(runtime: Runtime, *, actor: str, dry_run: bool) -> dict[str, Any]:
    """Retention asked for by a person (CLI or API): run it and audit what it deleted."""
    result = run(runtime, dry_run=dry_run).as_dict()
    if not dry_run:
        with write_session(runtime.sessions) as session:
            audit.record(
                session,
                actor=actor,
                action="retention.run",
                details={k: result[k] for k in ("deleted", "bytes_freed", "errors")},
            )
    return result


def _prune_files(
    root: Path, pattern: str, keep: int, dry_run: bool, log: Path, now: datetime
) -> PatternResult:
    result = PatternResult(pattern=pattern)
    stamped: list[tuple[datetime, str, Path]] = []
    for path in root.glob(pattern) if root.exists() else []:
        if not path.is_file():
            continue
        stamp = name_stamp(path.name)
        if stamp is None:
            result.unstamped += 1
            continue
        stamped.append((stamp, path.name, path))
    stamped.sort(reverse=True)
    result.kept = min(keep, len(stamped)) + result.unstamped
    for _, _, path in stamped[keep:]:
        relative = str(path.relative_to(root))
        if dry_run:
            result.would_delete.append(relative)
            ndjson.append(log, "file_would_delete", now=now, pattern=pattern, path=relative)
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError as exc:
            result.errors.append(f"{relative}: {exc.strerror or exc}")
            result.kept += 1
            ndjson.append(
                log, "file_error", now=now, pattern=pattern, path=relative, error=str(exc)
            )
            continue
        result.deleted += 1
        result.bytes_freed += size
        ndjson.append(log, "file_deleted", now=now, pattern=pattern, path=relative, bytes=size)
    return result


def _prune_rows(
    runtime: Runtime, cutoff: datetime, dry_run: bool, log: Path, now: datetime
) -> dict[str, int]:
    targets: list[tuple[str, Any, list[Any]]] = [
        (
            "schedule_runs",
            ScheduleRun.id,
            [ScheduleRun.started_at < cutoff, ScheduleRun.status != "running"],
        ),
        ("scheduler_instances", SchedulerInstance.id, [SchedulerInstance.heartbeat_at < cutoff]),
        ("worker_heartbeats", WorkerHeartbeat.worker, [WorkerHeartbeat.heartbeat_at < cutoff]),
        ("alert_events", AlertEvent.id, [AlertEvent.at < cutoff]),
        ("alerts", Alert.id, [Alert.status == "resolved", Alert.resolved_at < cutoff]),
        (
            "payment_reconciles",
            PaymentReconcile.id,
            # The newest good one stays: it says how fresh the payment figures are.
            [PaymentReconcile.started_at < cutoff, PaymentReconcile.id < _NEWEST_GOOD_RECONCILE],
        ),
        # Taken Notion pages with nothing left to write: a stale read of one is minutes old,
        # never weeks, so its record is no longer needed to refuse a second job.
        (
            "notion_pages",
            NotionPage.id,
            [NotionPage.settled.is_(True), NotionPage.updated_at < cutoff],
        ),
    ]
    counts: dict[str, int] = {}
    for table, key, conditions in targets:
        total = 0
        while True:
            if dry_run:
                with read_session(runtime.sessions) as session:
                    total = session.scalar(select(func.count(key)).where(*conditions)) or 0
                break
            with read_session(runtime.sessions) as session:
                ids = list(session.scalars(select(key).where(*conditions).limit(ROW_BATCH)))
            if not ids:
                break
            with write_session(runtime.sessions) as session:
                session.execute(delete(key.class_).where(key.in_(ids)))
            total += len(ids)
        counts[table] = total
        if total:
            ndjson.append(
                log,
                "rows_would_prune" if dry_run else "rows_pruned",
                now=now,
                table=table,
                count=total,
                cutoff=cutoff.isoformat(),
            )
    return counts
