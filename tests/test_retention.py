"""Retention keeps the newest files per pattern (by the stamp in the name) and prunes old
operational rows, never jobs, attempts or the audit log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from echopilot import audit, retention
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import AuditLog, Job, PaymentReconcile, ScheduleRun
from echopilot.jobs import intake
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from tests.conftest import run_cli

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_briefs(reports: Path, count: int) -> list[Path]:
    folder = reports / "briefs"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for day in range(count):
        stamp = (NOW - timedelta(days=day)).strftime("%Y%m%d_%H%M%S")
        path = folder / f"brief_{stamp}.json"
        path.write_text("{}" + " " * day)
        # mtimes deliberately the reverse of the names' order: names must win
        os.utime(path, (1_000_000 + day, 1_000_000 + day))
        made.append(path)
    return made


def test_it_keeps_the_newest_files_by_the_stamp_in_their_names(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(retention_keep=5)
    reports = rt.settings.home / "reports"
    files = make_briefs(reports, 12)
    (reports / "briefs" / "brief_notes.json").write_text("no stamp: never deleted")

    result = retention.run(rt, dry_run=False, now=NOW)

    left = sorted(p.name for p in (reports / "briefs").iterdir())
    assert left == sorted([f.name for f in files[:5]] + ["brief_notes.json"])
    briefs = next(p for p in result.patterns if p.pattern == "briefs/brief_*.json")
    assert (briefs.deleted, briefs.kept, briefs.unstamped) == (7, 6, 1)
    assert briefs.bytes_freed == sum(2 + day for day in range(5, 12))
    lines = [
        json.loads(x)
        for x in (rt.settings.home / "logs" / "retention.log").read_text().splitlines()
    ]
    deleted = [x for x in lines if x["event"] == "file_deleted"]
    assert len(deleted) == 7
    assert all({"ts", "event", "pattern", "path", "bytes"} <= set(x) for x in deleted)


def test_a_dry_run_deletes_nothing_and_says_what_it_would(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(retention_keep=3)
    files = make_briefs(rt.settings.home / "reports", 5)
    result = retention.run(rt, dry_run=True, now=NOW).as_dict()
    assert all(p.exists() for p in files)
    briefs = next(p for p in result["patterns"] if p["pattern"] == "briefs/brief_*.json")
    assert sorted(briefs["would_delete"]) == sorted(f"briefs/{p.name}" for p in files[3:])


def test_a_file_that_cannot_be_deleted_is_reported_and_the_rest_goes_on(
    make_runtime: Callable[..., Runtime],
) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a file undeletable, even for root")
    rt = make_runtime(retention_keep=1)
    files = make_briefs(rt.settings.home / "reports", 4)
    stuck = files[2]
    locked = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True)
    if locked.returncode != 0:
        pytest.skip(f"this file system cannot mark files immutable: {locked.stderr!r}")
    try:
        result = retention.run(rt, dry_run=False, now=NOW)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    briefs = next(p for p in result.patterns if p.pattern == "briefs/brief_*.json")
    assert briefs.deleted == 2
    assert len(briefs.errors) == 1 and stuck.name in briefs.errors[0]
    assert stuck.exists() and not files[1].exists() and not files[3].exists()
    assert files[0].exists()


def test_old_schedule_runs_are_pruned_but_jobs_and_audit_rows_never(
    offline: Runtime,
) -> None:
    rt = offline
    old, recent = NOW - timedelta(days=120), NOW - timedelta(days=5)
    for day in range(30):
        store.claim(
            rt.sessions,
            task="probe",
            slot=old + timedelta(hours=day),
            trigger="scheduled",
            scheduler_id=None,
            now=old,
            status="skipped",
        )
    store.claim(
        rt.sessions,
        task="probe",
        slot=recent,
        trigger="scheduled",
        scheduler_id=None,
        now=recent,
        status="skipped",
    )
    job = intake.submit(
        rt, intake.JobRequest(name="old", task_type="summary", input="x"), actor="test", now=old
    )
    with write_session(rt.sessions) as session:
        audit.record(session, actor="test", action="ancient", now=old)

    result = retention.run(rt, dry_run=False, now=NOW)

    assert result.rows["schedule_runs"] == 30
    with read_session(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 1
        assert session.get(Job, job.id) is not None
        assert session.scalar(select(func.count()).where(AuditLog.action == "ancient")) == 1


def test_the_cli_reports_per_pattern_and_exits_0(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(retention_keep=2)
    make_briefs(rt.settings.home / "reports", 4)
    env_keep = {"ECHOPILOT_RETENTION_KEEP": "2"}
    result = run_cli(rt.settings, "retention", "--json", extra_env=env_keep)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["deleted"] == 2
    assert len(list((rt.settings.home / "reports" / "briefs").iterdir())) == 2


def test_stamps_are_read_from_names() -> None:
    assert retention.name_stamp("brief_20251020_123556.json") == datetime(
        2025, 10, 20, 12, 35, 56, tzinfo=UTC
    )
    assert retention.name_stamp("daily_report_20251020.csv") == datetime(2025, 10, 20, tzinfo=UTC)
    assert retention.name_stamp("ingest_2025-10-20T12-35-56Z.json") == datetime(
        2025, 10, 20, 12, 35, 56, tzinfo=UTC
    )
    assert retention.name_stamp("notes.json") is None


def test_old_stripe_reconciliations_are_pruned_but_the_newest_good_one_stays(
    offline: Runtime,
) -> None:
    rt = offline
    old = NOW - timedelta(days=120)

    def runs(*oks: bool) -> list[int]:
        with write_session(rt.sessions) as session:
            rows = [
                PaymentReconcile(
                    started_at=old + timedelta(hours=n),
                    finished_at=old + timedelta(hours=n, seconds=5),
                    ok=ok,
                    actor="scheduler",
                    events_read=0,
                    events_applied=0,
                    links_created=0,
                )
                for n, ok in enumerate(oks)
            ]
            session.add_all(rows)
            session.flush()
            return [r.id for r in rows]

    good, newest_good, failed = runs(True, True, False)

    result = retention.run(rt, dry_run=False, now=NOW)

    # The freshness line still knows when Stripe was last reconciled, however long ago.
    assert result.rows["payment_reconciles"] == 1
    with read_session(rt.sessions) as session:
        left = set(session.scalars(select(PaymentReconcile.id)))
    assert left == {newest_good, failed}
    assert good not in left
