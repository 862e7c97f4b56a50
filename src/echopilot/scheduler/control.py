"""Controlling scheduler processes: the PID file, start, stop, and status.

`scheduler start` launches `scheduler run --pidfile` detached; the PID file names that one
daemon, and `stop` signals that PID only (never processes found by name). A PID file whose
process is gone, or is no EchoPilot scheduler, is stale and replaced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from echopilot.clock import utcnow
from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.db.models import ScheduleRun
from echopilot.errors import ConflictError
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from echopilot.scheduler.table import build

START_WAIT_SECONDS = 15.0


def pid_path(settings: Settings) -> Path:
    return settings.home / "run" / "scheduler.pid"


def _is_scheduler(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [w.decode(errors="replace") for w in cmdline]
    return any("echopilot" in w for w in words) and "scheduler" in words


def read_pid(settings: Settings) -> int | None:
    """The daemon's PID if the PID file names a live scheduler, else None."""
    try:
        pid = int(pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_scheduler(pid) else None


def write_pid(settings: Settings) -> None:
    """Claim the PID file for this process; refuse when a live scheduler holds it."""
    path = pid_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = read_pid(settings)
    if holder is not None and holder != os.getpid():
        raise ConflictError(f"a scheduler already runs (pid {holder}, {path})")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def remove_pid(settings: Settings) -> None:
    path = pid_path(settings)
    try:
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


@dataclass(frozen=True)
class StartResult:
    started: bool
    pid: int
    message: str


def start(settings: Settings, env: dict[str, str] | None = None) -> StartResult:
    """Launch a detached scheduler daemon unless one already runs."""
    holder = read_pid(settings)
    if holder is not None:
        return StartResult(False, holder, f"a scheduler already runs (pid {holder})")
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / "scheduler.out").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "scheduler", "run", "--pidfile"],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        close_fds=True,
    )
    out.close()
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConflictError(
                f"the scheduler exited at start (code {process.returncode}); "
                f"see {logs / 'scheduler.out'}"
            )
        if read_pid(settings) == process.pid:
            return StartResult(True, process.pid, f"scheduler started (pid {process.pid})")
        time.sleep(0.1)
    return StartResult(True, process.pid, f"scheduler starting (pid {process.pid})")


@dataclass(frozen=True)
class StopResult:
    stopped: bool
    pid: int | None
    message: str


def stop(settings: Settings, timeout: float = 30.0) -> StopResult:
    """SIGTERM the PID file's scheduler and wait for it to exit."""
    pid = read_pid(settings)
    if pid is None:
        try:
            pid_path(settings).unlink()
            return StopResult(False, None, "no scheduler running (removed a stale PID file)")
        except FileNotFoundError:
            return StopResult(False, None, "no scheduler running")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            pid_path(settings).unlink(missing_ok=True)
            return StopResult(True, pid, f"scheduler (pid {pid}) stopped")
        time.sleep(0.1)
    return StopResult(False, pid, f"scheduler (pid {pid}) did not stop within {timeout:.0f}s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


def status(runtime: Runtime, now: datetime | None = None) -> dict[str, Any]:
    """The automations status (shape in DESIGN.md: running, paused, pid, host,
    heartbeat_age_s, schedule)."""
    now = now or utcnow()
    table = build(runtime.settings)
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
        "daemon_pid": read_pid(runtime.settings),
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
