"""`echopilot up` and the scheduler's controls on one home: one `up` per home, `scheduler
stop|start|status` (and the API's start) act on the scheduler `up` supervises, and SIGTERM
leaves no process and no open record behind, even when a task ignores SIGTERM or the
scheduler hangs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import SchedulerInstance, ScheduleRun
from echopilot.runtime import Runtime
from tests.api_support import Child, assert_ok, start_child
from tests.conftest import run_cli, wait_for
from tests.test_up import STOP_WITHIN_SECONDS, child_pids, descendants, gone, role

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ROLES = ("api", "worker", "scheduler")
STUBBORN = {
    "ECHOPILOT_TASK_MODULES": "tests.fakes.probe_tasks",
    "PYTHONPATH": str(ROOT),
    "ECHOPILOT_SCHEDULE_STUBBORN": "every 1s",
    "ECHOPILOT_SCHEDULE_RECOVERY_SWEEP": "off",
    "ECHOPILOT_SCHEDULE_RETENTION": "off",
    "ECHOPILOT_SCHEDULE_SELF_HEAL": "off",
    "ECHOPILOT_SCHEDULE_ALERT_CHECK": "off",
}


def by_role(pid: int) -> dict[str, int]:
    return {r: p for p in child_pids(pid) if (r := role(p)) is not None}


def stat(pid: int | str) -> tuple[str, int] | None:
    """(state, process group) of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def survivors(pids: set[int], groups: set[int]) -> list[int]:
    """Live processes (zombies are dead) among `pids` or in one of `groups`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = stat(entry.name)
        if info and info[0] != "Z" and (int(entry.name) in pids or info[1] in groups):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def up(
    rt: Runtime, env: dict[str, str] | None = None, roles: tuple[str, ...] = ROLES
) -> Iterator[Child]:
    """A running `echopilot up` with its children (`roles`); whatever it left is killed after."""
    child = start_child(rt.settings, "up", env=env)
    seen: set[int] = set()
    try:
        child.wait_healthy()
        wait_for(lambda: set(by_role(child.process.pid)) == set(roles), timeout=30)
        yield child
    finally:
        seen.update(descendants(child.process.pid))
        child.stop(signal.SIGKILL)
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def key(rt: Runtime) -> dict[str, str]:
    return {"X-Dash-Key": (rt.settings.home / "dashboard.key").read_text().strip()}


def cli_json(rt: Runtime, *args: str) -> dict:
    result = run_cli(rt.settings, *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def up_log(rt: Runtime) -> str:
    path = rt.settings.home / "logs" / "up.log"
    return path.read_text() if path.exists() else ""


def test_a_second_up_on_one_home_is_refused_at_once_and_a_killed_ones_lock_does_not_block(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    home = rt.settings.home
    with up(rt) as first:
        kids = by_role(first.process.pid)
        second = start_child(rt.settings, "up")
        try:
            assert second.process.wait(timeout=20) == 2
        finally:
            for pid in descendants(second.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            second.stop(signal.SIGKILL)
        assert second.text() == (
            f"error: EchoPilot already runs on this home (pid {first.process.pid}, "
            f"{home.resolve()}); stop it first (Ctrl-C in its terminal, or kill -TERM "
            f"{first.process.pid}) or set another ECHOPILOT_HOME\n"
        ), "one line, no banner"
        assert by_role(first.process.pid) == kids, "the running one is untouched"

        # Killed outright, `up` leaves its lock file; the kernel released the lock.
        tree = descendants(first.process.pid)
        first.stop(signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        assert (home / "run" / "up.pid").exists()
    with up(rt) as again:
        assert "EchoPilot dashboard:" in again.text()
        again.stop(signal.SIGTERM)


def test_scheduler_stop_start_and_status_act_on_the_scheduler_up_runs(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with up(rt) as supervisor:
        pid = supervisor.process.pid
        scheduler = by_role(pid)["scheduler"]
        status = wait_for(lambda: (s := cli_json(rt, "scheduler", "status"))["running"] and s)
        assert (status["daemon_pid"], status["pid"]) == (scheduler, scheduler)

        again = cli_json(rt, "scheduler", "start")
        assert (again["started"], again["pid"]) == (False, scheduler)
        assert f"already running (pid {scheduler})" in again["message"]

        stopped = cli_json(rt, "scheduler", "stop")
        assert (stopped["stopped"], stopped["pid"]) == (True, scheduler)
        assert gone(scheduler)
        wait_for(lambda: "scheduler exited with code 0; not restarting it" in up_log(rt))
        assert "scheduler" not in by_role(pid)
        status = cli_json(rt, "scheduler", "status")
        assert status["running"] is False and status["daemon_pid"] is None
        assert status["stopped_by_cli"] is True

        started = cli_json(rt, "scheduler", "start")
        restarted = by_role(pid).get("scheduler")
        assert started["started"] is True and started["by"] == "up"
        assert restarted not in (None, scheduler) and started["pid"] == restarted
        status = cli_json(rt, "scheduler", "status")
        assert status["running"] is True and status["daemon_pid"] == restarted

        # The API's start undoes a CLI stop too, through `up`, and answers once it runs.
        assert cli_json(rt, "scheduler", "stop")["pid"] == restarted
        answer = httpx.post(supervisor.url + "/api/automations/start", headers=key(rt), timeout=60)
        api = assert_ok(answer)
        third = by_role(pid).get("scheduler")
        assert api["action"] == "started" and third not in (None, restarted)
        assert api["status"]["running"] is True and api["status"]["daemon_pid"] == third
        assert [r for r in (role(p) for p in descendants(pid)) if r == "scheduler"] == [
            "scheduler"
        ], "never a second scheduler"


def test_up_uses_a_scheduler_already_running_on_its_home(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    rt.settings.home.mkdir(parents=True, exist_ok=True)
    daemon = cli_json(rt, "scheduler", "start")
    assert daemon["started"] is True
    try:
        with up(rt, roles=("api", "worker")) as supervisor:
            wait_for(lambda: f"already running on this home (pid {daemon['pid']})" in up_log(rt))
            assert "scheduler" not in by_role(supervisor.process.pid)
            # Stopped, the daemon is not replaced: `scheduler stop` asked for no scheduler.
            assert cli_json(rt, "scheduler", "stop")["pid"] == daemon["pid"]
            started = cli_json(rt, "scheduler", "start")
            assert started["by"] == "up"
            assert started["pid"] == by_role(supervisor.process.pid)["scheduler"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon["pid"], signal.SIGKILL)


def runs(rt: Runtime) -> list[ScheduleRun]:
    with read_session(rt.sessions) as session:
        return list(session.scalars(select(ScheduleRun).where(ScheduleRun.status != "skipped")))


def instance_of(rt: Runtime, pid: int) -> SchedulerInstance:
    with read_session(rt.sessions) as session:
        return session.scalars(select(SchedulerInstance).where(SchedulerInstance.pid == pid)).one()


def task_pid(rt: Runtime) -> int | None:
    try:
        return int((rt.settings.home / "stubborn.pid").read_text())
    except (OSError, ValueError):
        return None


def stop_up_and_check_nothing_remains(rt: Runtime, supervisor: Child) -> int:
    """SIGTERM `up` while the stubborn task runs; everything under it is gone within 10 s
    and its records are closed. Return the scheduler's pid."""
    pid = supervisor.process.pid
    scheduler = by_role(pid)["scheduler"]
    task = wait_for(lambda: task_pid(rt), timeout=30)
    tree = {pid, task, *descendants(pid)}
    groups = set(by_role(pid).values())
    assert survivors(tree, groups), "the tree was found"
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    assert supervisor.process.wait(timeout=STOP_WITHIN_SECONDS + 5) == 0
    wait_for(
        lambda: not survivors(tree, groups), timeout=max(0.1, 10 - (time.monotonic() - started))
    )
    assert time.monotonic() - started <= STOP_WITHIN_SECONDS

    (run,) = runs(rt)
    assert run.status == "abandoned" and run.finished_at is not None
    assert instance_of(rt, scheduler).stopped_at is not None
    return scheduler


def test_sigterm_to_up_with_a_task_that_ignores_sigterm_leaves_nothing_behind(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    env = {**STUBBORN, "ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS": "1"}
    with up(rt, env) as supervisor:
        stop_up_and_check_nothing_remains(rt, supervisor)


def test_up_kills_a_hung_scheduler_and_closes_what_it_left_open(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with up(rt, STUBBORN) as supervisor:
        scheduler = by_role(supervisor.process.pid)["scheduler"]
        wait_for(lambda: task_pid(rt), timeout=30)
        os.kill(scheduler, signal.SIGSTOP)  # hung: it will never act on SIGTERM
        stop_up_and_check_nothing_remains(rt, supervisor)
    (run,) = runs(rt)
    assert f"its scheduler (pid {scheduler}) ended before the run finished" == run.error


def test_sighup_to_up_as_when_its_terminal_closes_stops_everything(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with up(rt) as supervisor:
        pid = supervisor.process.pid
        tree = {pid, *descendants(pid)}
        groups = set(by_role(pid).values())
        os.kill(pid, signal.SIGHUP)
        assert supervisor.process.wait(timeout=STOP_WITHIN_SECONDS + 5) == 0
        wait_for(lambda: not survivors(tree, groups), timeout=STOP_WITHIN_SECONDS)


def test_up_killed_9_takes_its_children_with_it_and_can_start_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with up(rt) as supervisor:
        pid = supervisor.process.pid
        kids = by_role(pid)
        tree = {pid, *descendants(pid)}
        os.kill(pid, signal.SIGKILL)
        supervisor.process.wait(timeout=10)
        # The kernel tells each child its parent died (SIGTERM): each stops gracefully.
        wait_for(lambda: not survivors(set(kids.values()), set()), timeout=20)
        wait_for(lambda: not survivors(tree, set(kids.values())), timeout=10)
    with up(rt) as again:
        assert "EchoPilot dashboard:" in again.text()
        assert set(by_role(again.process.pid)) == set(ROLES)
        again.stop(signal.SIGTERM)
