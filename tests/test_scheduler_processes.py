"""Real scheduler processes: several on one database, start/stop, signals, kill -9."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import ScheduleRun
from echopilot.runtime import Runtime
from echopilot.scheduler import control
from tests.conftest import env_for, wait_for

pytestmark = pytest.mark.slow
PROBES = "tests.fakes.probe_tasks"
QUIET = {"recovery_sweep": "off", "retention": "off"}


def scheduler_env(rt: Runtime, **schedules: str) -> dict[str, str]:
    env = env_for(rt.settings)
    env["ECHOPILOT_TASK_MODULES"] = PROBES
    env["ECHOPILOT_SCHEDULER_STALE_SECONDS"] = "3"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    for task, schedule in {**QUIET, **schedules}.items():
        env[f"ECHOPILOT_SCHEDULE_{task.upper()}"] = schedule
    return env


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
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


def probe_lines(rt: Runtime) -> list[str]:
    path = rt.settings.home / "probe.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_three_schedulers_on_one_database_run_every_slot_exactly_once(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    env = scheduler_env(rt, probe="every 1s")
    procs = [spawn(env, "scheduler", "run") for _ in range(3)]
    try:
        wait_for(lambda: len(control.status(rt)["instances"]) == 3, timeout=60)
        time.sleep(6)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]

    slots = [line.split()[0] for line in probe_lines(rt)]
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
    first = cli(env, "scheduler", "start", "--json")
    assert first.returncode == 0, first.stderr
    pid = control.read_pid(rt.settings)
    assert pid is not None
    second = cli(env, "scheduler", "start", "--json")
    assert second.returncode == 0
    assert "already runs" in second.stdout
    assert control.read_pid(rt.settings) == pid

    status = cli(env, "scheduler", "status", "--json")
    assert '"running": true' in status.stdout

    stopped = cli(env, "scheduler", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}" in stopped.stdout
    assert not control.pid_path(rt.settings).exists()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_stale_pid_file_is_replaced(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    env = scheduler_env(rt)
    path = control.pid_path(rt.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")  # a live process, but not a scheduler
    result = cli(env, "scheduler", "start")
    assert result.returncode == 0, result.stderr
    pid = control.read_pid(rt.settings)
    assert pid is not None and pid != os.getpid()
    assert cli(env, "scheduler", "stop").returncode == 0

    path.write_text("999999\n")  # a process that does not exist
    assert "stale" in cli(env, "scheduler", "stop").stdout
    assert not path.exists()


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
