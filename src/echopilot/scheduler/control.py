"""Which processes run for a home, and controlling its scheduler: start, stop, status.

One home (ECHOPILOT_HOME) runs at most one `echopilot up` and one scheduler. Each holds an
exclusive flock on its file under `<home>/run/` (`up.pid`, `scheduler.pid`, holding its pid)
for its whole life. The kernel drops the lock when the process dies, even by SIGKILL, so a
leftover file never blocks anything: readers test the lock, never trust the file alone.

`scheduler start|stop|status` act on whichever scheduler holds this home's lock, whether
`scheduler start`, `echopilot up`, systemd or a person started it. `stop` leaves a marker
(`<home>/run/scheduler.stopped`) that tells a running `up` not to restart its scheduler;
`start` removes it, and `up` then starts its scheduler at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from echopilot import procs
from echopilot.clock import utcnow
from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.models import ScheduleRun
from echopilot.errors import ConflictError
from echopilot.homelock import PidLock, lock_holder
from echopilot.runtime import Runtime, prepare_home
from echopilot.scheduler import store
from echopilot.scheduler.table import build

START_WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05


def pid_path(settings: Settings) -> Path:
    return settings.home / "run" / "scheduler.pid"


def up_pid_path(settings: Settings) -> Path:
    return settings.home / "run" / "up.pid"


def stopped_marker(settings: Settings) -> Path:
    """Present while this home's scheduler was stopped with `scheduler stop`."""
    return settings.home / "run" / "scheduler.stopped"


# -- the lock files -------------------------------------------------------------------


def scheduler_pid(settings: Settings) -> int | None:
    """The pid of this home's scheduler, whoever started it; None when none runs."""
    return lock_holder(pid_path(settings))


def up_pid(settings: Settings) -> int | None:
    """The pid of the `echopilot up` running on this home, or None."""
    return lock_holder(up_pid_path(settings))


def hold_scheduler_lock(settings: Settings) -> PidLock:
    """For `scheduler run`, whoever started it: one scheduler per home."""
    prepare_home(settings.home)
    path = pid_path(settings)
    return PidLock.acquire(
        path,
        lambda pid: (
            f"a scheduler already runs on this home (pid {pid}, {path}); "
            "`echopilot scheduler stop` stops it"
        ),
    )


def hold_up_lock(settings: Settings) -> PidLock:
    """For `echopilot up`: one per home."""
    prepare_home(settings.home)
    home = settings.home.resolve()
    return PidLock.acquire(
        up_pid_path(settings),
        lambda pid: (
            f"EchoPilot already runs on this home (pid {pid}, {home}); stop it first "
            f"(Ctrl-C in its terminal, or kill -TERM {pid}) or set another ECHOPILOT_HOME"
        ),
    )


# -- start ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    started: bool  # a scheduler was started (as a daemon, or by `echopilot up`)
    pid: int | None
    message: str
    resumed: bool = False  # the pause flag was set and is now cleared
    by: str | None = None  # "daemon" | "up" when started


def start(
    runtime: Runtime, *, actor: str, launch: bool = True, env: dict[str, str] | None = None
) -> StartResult:
    """Resume if paused, then make sure this home's scheduler runs: the one that holds the
    lock, else the one `echopilot up` starts once the stop marker is gone, else a detached
    daemon. Return once it is registered and beating (so a status says running), or after
    START_WAIT_SECONDS. With `launch` False it only resumes."""
    settings = runtime.settings
    resumed = store.set_paused(runtime.sessions, False, actor)
    resumed_note = "; resumed" if resumed else ""
    if launch:
        # Wanted running from now on, even if a `stop` timed out and it is still there.
        stopped_marker(settings).unlink(missing_ok=True)
    holder = scheduler_pid(settings)
    if holder is not None:
        return StartResult(
            False, holder, f"scheduler already running (pid {holder}){resumed_note}", resumed
        )
    if not launch:
        return StartResult(False, None, "no scheduler runs on this home", resumed)
    supervisor = up_pid(settings)
    if supervisor is not None:
        pid = _wait_running(runtime, None)
        if pid is None:
            raise ConflictError(
                f"echopilot up (pid {supervisor}) did not start its scheduler within "
                f"{START_WAIT_SECONDS:.0f}s; see {settings.home / 'logs' / 'up.log'}"
            )
        message = f"scheduler started by echopilot up (pid {supervisor}): pid {pid}"
        return StartResult(True, pid, message + resumed_note, resumed, "up")
    process = _launch_daemon(settings, env)
    pid = _wait_running(runtime, process)
    if pid is None:
        return StartResult(
            True,
            process.pid,
            f"scheduler starting (pid {process.pid}); not beating yet after "
            f"{START_WAIT_SECONDS:.0f}s{resumed_note}",
            resumed,
            "daemon",
        )
    if pid != process.pid:  # another one took the lock first; ours refused and exited
        return StartResult(False, pid, f"scheduler already running (pid {pid})", resumed)
    return StartResult(True, pid, f"scheduler started (pid {pid}){resumed_note}", resumed, "daemon")


def _launch_daemon(settings: Settings, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "scheduler.out").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "echopilot", "scheduler", "run"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    # Whoever launched it (a long-lived API server) must reap it when it ends, or it stays
    # a zombie. The thread owns waiting: others read `returncode`, which it sets.
    threading.Thread(target=process.wait, name="reap-scheduler", daemon=True).start()
    return process


def _wait_running(runtime: Runtime, process: subprocess.Popen[bytes] | None) -> int | None:
    """Wait until this home's scheduler holds its lock and its instance row beats; return
    its pid (None on timeout). Raise ConflictError when `process` exits first with nobody
    holding the lock."""
    settings = runtime.settings
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        pid = scheduler_pid(settings)
        if pid is not None and _registered(runtime, pid):
            return pid
        if process is not None and process.returncode is not None and pid is None:
            raise ConflictError(
                f"the scheduler exited at start (code {process.returncode}); "
                f"see {settings.home / 'logs' / 'scheduler.out'}"
            )
        time.sleep(POLL_SECONDS)
    return None


def _registered(runtime: Runtime, pid: int) -> bool:
    stale_after = timedelta(seconds=runtime.settings.scheduler_stale_seconds)
    with read_session(runtime.sessions) as session:
        return store.live_instance(session, store.HOST, pid, utcnow(), stale_after) is not None


# -- stop -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StopResult:
    stopped: bool
    pid: int | None
    message: str


def stop(settings: Settings, timeout: float = 30.0) -> StopResult:
    """Stop this home's scheduler, whoever started it: leave the stop marker (so that a
    running `up` does not restart it), SIGTERM the lock holder's pid (never processes found
    by name), and wait until it has let go of the lock."""
    prepare_home(settings.home)
    marker = stopped_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"stopped by `echopilot scheduler stop` at {utcnow().isoformat()}\n")
    pid = scheduler_pid(settings)
    if pid is None:
        return StopResult(False, None, "no scheduler running on this home")
    if procs.is_echopilot(pid) is False:
        # The lock is held, but that pid is not an EchoPilot process here: the home is
        # shared with another machine or container, whose pids mean something else.
        raise ConflictError(
            f"this home's scheduler lock is held by pid {pid}, which is not an EchoPilot "
            "process on this machine; stop it where it runs"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # It lets go of the lock once its records are closed, then the process ends.
        if scheduler_pid(settings) != pid and not procs.running(pid):
            return StopResult(True, pid, f"scheduler (pid {pid}) stopped")
        time.sleep(POLL_SECONDS)
    return StopResult(False, pid, f"scheduler (pid {pid}) did not stop within {timeout:.0f}s")


# -- status ---------------------------------------------------------------------------


def status(runtime: Runtime, now: datetime | None = None) -> dict[str, Any]:
    """The automations status (shape in DESIGN.md: running, paused, pid, host,
    heartbeat_age_s, schedule). `running` means a live scheduler instance beats somewhere on
    this database; `daemon_pid` is this home's scheduler (from its lock), whoever started it.
    """
    now = now or utcnow()
    table = build(runtime.settings)
    local = scheduler_pid(runtime.settings)
    with read_session(runtime.sessions) as session:
        stale_after = timedelta(seconds=runtime.settings.scheduler_stale_seconds)
        live = store.live_instances(session, now, stale_after)
        newest = store.newest_heartbeat(session)
        rows = []
        for name, entry in table.items():
            last = store.last_run(session, name)
            following = entry.schedule.following(now)
            rows.append(
                {
                    "task": name,
                    "schedule": entry.schedule.text,
                    "catchup": entry.catchup,
                    "description": entry.task.description,
                    "next_run": following.isoformat() if following else None,
                    "last_run": None if last is None else run_dict(last),
                }
            )
    # This home's scheduler first, when it beats: it is the one `scheduler stop` acts on.
    live.sort(key=lambda i: not (i.host == store.HOST and i.pid == local))
    first = live[0] if live else None
    return {
        "running": bool(live),
        "paused": store.is_paused(runtime.sessions),
        "pid": first.pid if first else None,
        "host": first.host if first else None,
        "instances": [
            {
                "host": i.host,
                "pid": i.pid,
                "started_at": i.started_at.isoformat(),
                "heartbeat_age_s": round((now - i.heartbeat_at).total_seconds(), 1),
            }
            for i in live
        ],
        "uptime_s": round((now - first.started_at).total_seconds()) if first else None,
        "heartbeat_age_s": round((now - newest).total_seconds(), 1) if newest else None,
        "daemon_pid": local,
        "stopped_by_cli": stopped_marker(runtime.settings).exists(),
        "schedule": rows,
    }


def run_dict(run: ScheduleRun) -> dict[str, Any]:
    """A run as the API, the CLI and the status show it."""
    return {
        "id": run.id,
        "task": run.task,
        "slot": run.slot.isoformat(),
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "summary": run.summary,
        "error": run.error,
        "note": run.note,
        "host": run.host,
        "pid": run.pid,
    }
