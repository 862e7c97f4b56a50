"""The automations API: status in the DESIGN.md shape, stop (pause) and start (resume, or
launch a daemon when allowed), run-now, and retention with a dry run."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from echopilot.db.engine import read_session, write_session
from echopilot.db.models import AuditLog, ScheduleRun
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, api_client, assert_error, assert_ok, running
from tests.conftest import env_for, run_cli, wait_for

STATUS_FIELDS = {"running", "paused", "pid", "host", "heartbeat_age_s", "schedule"}
LAST_RUN_FIELDS = {"slot", "status", "started_at", "finished_at", "summary"}


def audit(rt: Runtime, action: str) -> list[dict]:
    with read_session(rt.sessions) as session:
        return [
            {"actor": row.actor, "details": row.details}
            for row in session.scalars(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        ]


def test_status_has_the_design_shape(offline: Runtime) -> None:
    with api_client(offline) as client:
        status = assert_ok(client.get("/api/automations/status"))
    assert set(status) >= STATUS_FIELDS, STATUS_FIELDS - set(status)
    assert status["running"] is False
    assert status["paused"] is False
    assert status["pid"] is None and status["host"] is None
    assert status["heartbeat_age_s"] is None
    tasks = {row["task"]: row for row in status["schedule"]}
    assert {"retention", "recovery_sweep"} <= set(tasks)
    for row in status["schedule"]:
        assert {"task", "schedule", "next_run", "last_run"} <= set(row), row
        assert row["last_run"] is None
        assert isinstance(row["schedule"], str) and row["schedule"]
    next_run = datetime.fromisoformat(tasks["retention"]["next_run"])
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)


def test_stop_pauses_idempotently_and_is_audited_and_start_resumes(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", allow_process_control=False)
    with api_client(rt) as client:
        first = assert_ok(client.post("/api/automations/stop"))
        assert first["action"] == "paused"
        assert first["status"]["paused"] is True
        assert assert_ok(client.get("/api/automations/status"))["paused"] is True

        second = assert_ok(client.post("/api/automations/stop"))
        assert second["action"] == "already paused"
        assert second["status"]["paused"] is True

        started = assert_ok(client.post("/api/automations/start"))
        assert started["action"].startswith("resumed")
        assert "process control is off" in started["action"]
        assert started["status"]["paused"] is False
        assert started["status"]["running"] is False
        assert assert_ok(client.get("/api/automations/status"))["paused"] is False
    assert _lock_holder(rt) is None, "no daemon without process control"

    assert audit(rt, "automations.stop") == [
        {"actor": "api", "details": {"result": "paused"}},
        {"actor": "api", "details": {"result": "already paused"}},
    ]
    assert [row["actor"] for row in audit(rt, "automations.start")] == ["api"]
    # The pause is in the database: another process sees it.
    status = run_cli(rt.settings, "scheduler", "status", "--json", check=True)
    assert '"paused": false' in status.stdout


def test_start_launches_a_daemon_when_process_control_is_allowed(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(ai_provider="offline", allow_process_control=True)
    # The daemon reads its settings from the environment it inherits from the server.
    for name, value in env_for(rt.settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(rt.settings.home.parent)
    pid = None
    try:
        with api_client(rt) as client:
            assert_ok(client.post("/api/automations/stop"))
            started = assert_ok(client.post("/api/automations/start"))
            assert started["action"] == "started", started
            pid = started["status"]["daemon_pid"]
            assert pid is not None and pid == _lock_holder(rt)
            # The answer comes once the new scheduler beats: it already says running.
            assert started["status"]["running"] is True
            assert started["status"]["pid"] == pid
            assert started["status"]["paused"] is False
            assert started["status"]["heartbeat_age_s"] < 20

            again = assert_ok(client.post("/api/automations/start"))
            assert again["action"] == "already running"
            assert again["status"]["daemon_pid"] == pid
    finally:
        stopped = run_cli(rt.settings, "scheduler", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert pid is not None and (not Path(f"/proc/{pid}").exists() or _zombie(pid))
    assert [row["details"]["pid"] for row in audit(rt, "automations.start")] == [pid, pid]


def test_a_daemon_started_by_the_server_is_reaped_when_it_ends(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    env = {"DASHBOARD_KEY": TEST_KEY, "ECHOPILOT_ALLOW_PROCESS_CONTROL": "true"}
    with running(rt.settings, "serve", env=env) as server:
        answer = httpx.post(
            server.url + "/api/automations/start", headers={"X-Dash-Key": TEST_KEY}, timeout=60
        )
        started = assert_ok(answer)
        assert started["action"] == "started" and started["status"]["running"] is True
        pid = started["status"]["daemon_pid"]
        assert pid in _children(server.process.pid)

        stopped = run_cli(rt.settings, "scheduler", "stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
        wait_for(lambda: pid not in _children(server.process.pid), timeout=10)
        assert _zombies(server.process.pid) == []


def _lock_holder(rt: Runtime) -> int | None:
    try:
        return int((rt.settings.home / "run" / "scheduler.pid").read_text())
    except (OSError, ValueError):
        return None


def _stat(pid: str) -> tuple[int, str] | None:
    """(parent pid, state) of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0]


def _children(parent: int) -> dict[int, str]:
    """Every child of `parent` (zombies included) with its state."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(entry.name)) and stat[0] == parent:
            found[int(entry.name)] = stat[1]
    return found


def _zombies(parent: int) -> list[int]:
    return [pid for pid, state in _children(parent).items() if state == "Z"]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_run_now_runs_a_task_and_returns_the_finished_manual_run(offline: Runtime) -> None:
    with api_client(offline) as client:
        run = assert_ok(client.post("/api/automations/run/retention"))
        status = assert_ok(client.get("/api/automations/status"))
    assert run["task"] == "retention"
    assert run["trigger"] == "manual"
    assert run["status"] == "ok", run
    assert run["finished_at"] is not None and run["duration_ms"] is not None
    assert run["error"] is None
    assert run["pid"] == os.getpid(), "the run is recorded under the server that claimed it"
    assert run["summary"]["dry_run"] is False

    [row] = [r for r in status["schedule"] if r["task"] == "retention"]
    assert set(row["last_run"]) >= LAST_RUN_FIELDS
    assert row["last_run"]["status"] == "ok"
    assert row["last_run"]["slot"] == run["slot"]
    with read_session(offline.sessions) as session:
        stored = session.scalars(select(ScheduleRun)).one()
        assert (stored.trigger, stored.status) == ("manual", "ok")
    assert [a["actor"] for a in audit(offline, "automations.run")] == ["api"]


def test_run_now_of_an_unknown_task_is_404_listing_the_tasks(offline: Runtime) -> None:
    with api_client(offline) as client:
        error = assert_error(client.post("/api/automations/run/nosuch"), 404, "not_found")
        tasks = [
            row["task"] for row in assert_ok(client.get("/api/automations/status"))["schedule"]
        ]
    assert "nosuch" in error["message"]
    for task in tasks:
        assert task in error["message"], error
    with read_session(offline.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 0


def test_retention_dry_run_deletes_nothing(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline", retention_keep=2, retention_row_days=30)
    briefs = rt.settings.home / "reports" / "briefs"
    briefs.mkdir(parents=True)
    names = [f"brief_202510{day:02d}_080000.json" for day in range(1, 6)]
    for name in names:
        (briefs / name).write_text("{}")
    old = datetime.now(UTC) - timedelta(days=200)
    with write_session(rt.sessions) as session:
        for n in range(3):
            session.add(
                ScheduleRun(
                    task="retention",
                    slot=old + timedelta(hours=n),
                    trigger="scheduled",
                    status="ok",
                    started_at=old + timedelta(hours=n),
                    finished_at=old + timedelta(hours=n, seconds=1),
                    host="h",
                    pid=1,
                )
            )

    def run_count() -> int:
        with read_session(rt.sessions) as session:
            return session.scalar(select(func.count()).select_from(ScheduleRun)) or 0

    with api_client(rt) as client:
        dry = assert_ok(client.post("/api/retention/run?dry_run=true"))
        assert dry["dry_run"] is True
        assert dry["deleted"] == 0 and dry["bytes_freed"] == 0
        [pattern] = [p for p in dry["patterns"] if p["pattern"] == "briefs/brief_*.json"]
        assert sorted(pattern["would_delete"]) == [f"briefs/{n}" for n in names[:3]]
        assert dry["rows"]["schedule_runs"] == 3
        assert sorted(p.name for p in briefs.iterdir()) == names
        assert run_count() == 3
        assert audit(rt, "retention.run") == []

        real = assert_ok(client.post("/api/retention/run"))
    assert real["dry_run"] is False and real["deleted"] == 3
    assert sorted(p.name for p in briefs.iterdir()) == names[3:]
    assert run_count() == 0
    assert len(audit(rt, "retention.run")) == 1
