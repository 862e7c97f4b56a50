"""Real scheduler processes: several on one database (each on a home of its own, as on
separate machines), one per home, start/stop, signals, kill -9."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog, SchedulerInstance, ScheduleRun
from echopilot.runtime import Runtime
from tests.conftest import builtin_tasks_off, env_for, wait_for

pytestmark = pytest.mark.slow
PROBES = "tests.fakes.probe_tasks"
QUIET = builtin_tasks_off()


def scheduler_env(rt: Runtime, **schedules: str) -> dict[str, str]:
    env = env_for(rt.settings)
    env["ECHOPILOT_TASK_MODULES"] = PROBES
    env["ECHOPILOT_SCHEDULER_STALE_SECONDS"] = "3"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    for task, schedule in {**QUIET, **schedules}.items():
        env[f"ECHOPILOT_SCHEDULE_{task.upper()}"] = schedule
    return env


def elsewhere(env: dict[str, str], home: Path) -> dict[str, str]:
    """`env` for another home on the same database and queue (another machine)."""
    settings_home = Path(env["ECHOPILOT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "ECHOPILOT_HOME": str(home),
        "ECHOPILOT_DATABASE_URL": env.get(
            "ECHOPILOT_DATABASE_URL", f"sqlite:///{settings_home / 'echopilot.db'}"
        ),
        "ECHOPILOT_QUEUE_URL": env.get(
            "ECHOPILOT_QUEUE_URL", f"sqlite:///{settings_home / 'queue.db'}"
        ),
    }


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    Path(env["ECHOPILOT_HOME"]).mkdir(parents=True, exist_ok=True)
    log = open(Path(env["ECHOPILOT_HOME"]) / f"sched-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "echopilot", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(env["ECHOPILOT_HOME"]).parent,
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "echopilot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(env["ECHOPILOT_HOME"]).parent,
    )


def runs(rt: Runtime, task: str = "probe") -> list[ScheduleRun]:
    with read_session(rt.sessions) as session:
        return list(
            session.scalars(
                select(ScheduleRun).where(ScheduleRun.task == task).order_by(ScheduleRun.slot)
            )
        )


def probe_lines(*homes: Path) -> list[str]:
    paths = [home / "probe.log" for home in homes]
    return [line for path in paths if path.exists() for line in path.read_text().splitlines()]


def holder(home: Path, name: str = "scheduler.pid") -> int | None:
    """The pid in a lock file of `home`, while its process runs."""
    try:
        pid = int((home / "run" / name).read_text())
    except (OSError, ValueError):
        return None
    return pid if _process_alive(pid) else None


def audit(rt: Runtime, action: str) -> list[dict]:
    with read_session(rt.sessions) as session:
        return [
            {"actor": row.actor, "details": row.details}
            for row in session.scalars(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        ]


def instances(rt: Runtime) -> list[SchedulerInstance]:
    with read_session(rt.sessions) as session:
        return list(session.scalars(select(SchedulerInstance)))


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_three_schedulers_on_one_database_run_every_slot_exactly_once(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt, probe="every 1s")
    homes = [rt.settings.home.parent / f"machine-{n}" for n in range(3)]
    procs = [spawn(elsewhere(env, home), "scheduler", "run") for home in homes]
    try:
        wait_for(lambda: len([i for i in instances(rt) if i.stopped_at is None]) == 3, timeout=60)
        time.sleep(6)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]

    slots = [line.split()[0] for line in probe_lines(*homes)]
    counts = Counter(slots)
    assert counts and max(counts.values()) == 1, f"slots run twice: {counts.most_common(3)}"
    seconds = sorted(datetime.fromisoformat(s) for s in counts)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(seconds)]
    assert len(seconds) >= 5
    assert set(gaps) == {1.0}, f"missed slots: {gaps}"
    recorded = runs(rt)
    assert len(recorded) == len({r.slot for r in recorded})
    assert {r.status for r in recorded} == {"ok"}
    assert len({r.pid for r in recorded}) > 1  # the work was shared, not one winner


def test_start_refuses_a_second_daemon_and_stop_stops_it(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt)
    home = rt.settings.home
    first = cli(env, "scheduler", "start", "--json")
    assert first.returncode == 0, first.stderr
    pid = holder(home)
    assert pid is not None and f'"pid": {pid}' in first.stdout
    # start returns once the scheduler beats, so the status right after says so.
    status = json.loads(cli(env, "scheduler", "status", "--json").stdout)
    assert status["running"] is True and status["daemon_pid"] == pid
    second = cli(env, "scheduler", "start", "--json")
    assert second.returncode == 0
    assert f"already running (pid {pid})" in second.stdout
    assert holder(home) == pid

    stopped = cli(env, "scheduler", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}" in stopped.stdout
    assert not _process_alive(pid)
    assert not (home / "run" / "scheduler.pid").exists()
    assert [row["details"]["pid"] for row in audit(rt, "scheduler.stop")] == [pid]
    assert audit(rt, "scheduler.stop")[0]["actor"] == "cli"
    assert json.loads(cli(env, "scheduler", "status", "--json").stdout)["running"] is False


def test_a_second_scheduler_on_one_home_is_refused_naming_the_first(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt)
    first = spawn(env, "scheduler", "run")
    try:
        pid = wait_for(lambda: holder(rt.settings.home), timeout=30)
        assert pid == first.pid
        second = cli(env, "scheduler", "run", "--pidfile")  # the old option: accepted
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stderr.startswith(
            f"error: a scheduler already runs on this home (pid {pid}, "
        ), second.stderr
        assert len(second.stderr.splitlines()) == 1
        # The stop reaches a scheduler started by hand too.
        stopped = cli(env, "scheduler", "stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout) == {
            "stopped": True,
            "pid": pid,
            "message": f"scheduler (pid {pid}) stopped",
        }
        assert first.wait(timeout=10) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_a_lock_left_by_a_killed_scheduler_or_a_stale_file_never_blocks(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt)
    path = rt.settings.home / "run" / "scheduler.pid"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")  # a live process, but no lock: stale
    assert "no scheduler running" in cli(env, "scheduler", "stop").stdout
    assert json.loads(cli(env, "scheduler", "status", "--json").stdout)["daemon_pid"] is None

    killed = spawn(env, "scheduler", "run")
    wait_for(lambda: holder(rt.settings.home) == killed.pid, timeout=30)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    assert path.exists(), "a process killed -9 leaves its file behind"

    started = cli(env, "scheduler", "start", "--json")
    assert started.returncode == 0, started.stderr
    pid = holder(rt.settings.home)
    assert pid not in (None, killed.pid)
    assert json.loads(started.stdout)["pid"] == pid
    assert cli(env, "scheduler", "stop").returncode == 0


def test_sigterm_lets_a_running_task_finish(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    (rt.settings.home / "slow.seconds").write_text("3")
    env = scheduler_env(rt, slow="every 5s")
    env["ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"] = "20"
    proc = spawn(env, "scheduler", "run")
    wait_for(lambda: (rt.settings.home / "slow.started").exists(), timeout=20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert [r.status for r in runs(rt, "slow")] == ["ok"]


def test_sigterm_past_the_grace_period_abandons_the_run_and_kills_the_task(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    (rt.settings.home / "slow.seconds").write_text("60")
    env = scheduler_env(rt, slow="every 2s")
    env["ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"] = "1"
    proc = spawn(env, "scheduler", "run")
    wait_for(lambda: (rt.settings.home / "slow.started").exists(), timeout=20)
    task_pid = int((rt.settings.home / "slow.started").read_text())
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 10
    statuses = [r.status for r in runs(rt, "slow") if r.status != "skipped"]
    assert statuses == ["abandoned"]
    wait_for(lambda: not _process_alive(task_pid), timeout=10)


def test_a_task_past_its_timeout_is_failed_and_killed(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    (rt.settings.home / "slow.seconds").write_text("60")
    env = scheduler_env(rt, slow_short="every 1h")
    result = subprocess.run(
        [sys.executable, "-c", _RUN_NOW.format(task="slow_short")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (run,) = runs(rt, "slow_short")
    assert run.status == "failed"
    assert "timed out" in (run.error or "")
    task_pid = int((rt.settings.home / "slow.started").read_text())
    assert not _process_alive(task_pid)


def test_kill_9_during_a_run_then_restart_abandons_it_and_never_runs_the_slot_twice(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    (rt.settings.home / "slow.seconds").write_text("4")
    env = scheduler_env(rt, slow="every 5s")
    proc = spawn(env, "scheduler", "run")
    wait_for(lambda: (rt.settings.home / "slow.started").exists(), timeout=20)
    (killed,) = [r for r in runs(rt, "slow") if r.status == "running"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    again = spawn(env, "scheduler", "run")
    try:
        wait_for(
            lambda: {r.slot: r.status for r in runs(rt, "slow")}.get(killed.slot) == "abandoned",
            timeout=30,
        )
        (rt.settings.home / "slow.seconds").write_text("0")
        # The task is eligible again: its next slot runs.
        wait_for(lambda: any(r.status == "ok" for r in runs(rt, "slow")), timeout=30)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    slots = [r.slot for r in runs(rt, "slow")]
    assert len(slots) == len(set(slots))
    assert [r.status for r in runs(rt, "slow") if r.slot == killed.slot] == ["abandoned"]


def test_a_scheduler_killed_9_takes_its_running_task_with_it(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    home = rt.settings.home
    home.mkdir(parents=True, exist_ok=True)
    env = scheduler_env(rt, stubborn="every 1s")
    proc = spawn(env, "scheduler", "run")
    try:
        task_pid = wait_for(lambda: _pid_in(home / "stubborn.pid"), timeout=30)
        assert _process_alive(task_pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # Its timeout is two minutes: only the scheduler's death can end it this soon.
        wait_for(lambda: not _process_alive(task_pid), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_whose_scheduler_died_on_this_host_is_reclaimed_without_the_stale_wait(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt, slow="every 1s")
    env["ECHOPILOT_SCHEDULER_STALE_SECONDS"] = "60"
    env["ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"] = "1"
    home_a, home_b = rt.settings.home, rt.settings.home.parent / "machine-b"
    for home in (home_a, home_b):
        home.mkdir(parents=True, exist_ok=True)
        (home / "slow.seconds").write_text("60")
    a = spawn(env, "scheduler", "run")
    b = None
    try:
        wait_for(lambda: _pid_in(home_a / "slow.started"), timeout=30)
        (killed,) = [r for r in runs(rt, "slow") if r.status == "running"]
        b = spawn(elsewhere(env, home_b), "scheduler", "run")
        # B runs and sees A's run go on: while A lives, that is drift.
        wait_for(lambda: any(f"run {killed.id} still running (drift)" in n for n in _notes(rt)))
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        killed_at = datetime.now(UTC)
        wait_for(lambda: _pid_in(home_b / "slow.started"), timeout=10)
        assert datetime.now(UTC) - killed_at < timedelta(seconds=10), "no 60 s stale wait"

        rows = {r.id: r for r in runs(rt, "slow")}
        assert rows[killed.id].status == "abandoned"
        assert rows[killed.id].finished_at is not None
        assert f"its scheduler (pid {a.pid}) died" in (rows[killed.id].error or "")
        (running,) = [r for r in rows.values() if r.status == "running"]
        assert running.pid == b.pid
        late_drift = [
            r
            for r in rows.values()
            if r.status == "skipped"
            and r.slot > killed_at + timedelta(seconds=1)
            and f"run {killed.id} " in (r.note or "")
        ]
        assert late_drift == [], "a dead owner's run is not drift"
        (a_instance,) = [i for i in instances(rt) if i.pid == a.pid]
        assert a_instance.stopped_at is not None
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def _notes(rt: Runtime) -> list[str]:
    return [r.note or "" for r in runs(rt, "slow")]


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


# A manual run from a separate process, as the API does it.
_RUN_NOW = """
from echopilot.config import load_settings
from echopilot.runtime import Runtime
from echopilot.scheduler.daemon import Scheduler
from echopilot.scheduler.executor import ProcessRunner
from echopilot.scheduler.table import build
settings = load_settings()
rt = Runtime(settings)
table = build(settings)
Scheduler(rt, table, ProcessRunner(settings)).run_manual(table[{task!r}])
"""


def test_the_fork_servers_keep_alive_pipe_is_where_task_processes_close_it(
    make_settings: Callable[..., Settings],
) -> None:
    # Task processes close their copy of this private pipe so that the fork server, and
    # with it every task, ends when the scheduler is killed: a Python that moves it must
    # fail here rather than leave tasks behind silently.
    import multiprocessing.forkserver

    from echopilot.scheduler.executor import ProcessRunner

    ProcessRunner(make_settings()).warm()
    server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    assert isinstance(server._forkserver_alive_fd, int)
