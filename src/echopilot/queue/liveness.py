"""Is the worker that holds a job's lease still alive?

A worker is named `host:pid` and beats a heartbeat row every few seconds. On this host
the process table answers at once (a worker killed with -9 is known dead immediately);
on another host a heartbeat silent for STALE_AFTER means dead. A process that merely
reuses a dead worker's pid is told apart by its start time.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

HOST = socket.gethostname()
BEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=30)
# A heartbeat row is written a moment after its process starts.
START_TOLERANCE = timedelta(seconds=5)
PRUNE_AFTER = timedelta(days=1)
PROC = Path("/proc")


class Holder(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # no heartbeat to judge by: only the lease's expiry tells


def beat_seconds(lease_seconds: float) -> float:
    """How often a worker beats and renews: often enough that a lease never lapses."""
    return max(0.5, min(BEAT_SECONDS, lease_seconds / 3))


def identity(pid: int | None = None) -> str:
    return f"{HOST}:{os.getpid() if pid is None else pid}"


def holder_state(
    owner: str | None,
    heartbeat_at: datetime | None,
    started_at: datetime | None,
    now: datetime,
) -> Holder:
    """Judge the lease holder `owner` by its heartbeat row (None when it has none)."""
    if not owner or heartbeat_at is None or started_at is None:
        return Holder.UNKNOWN
    host, _, pid_text = owner.rpartition(":")
    if host == HOST and pid_text.isdigit():
        return Holder.ALIVE if _runs_here(int(pid_text), started_at) else Holder.DEAD
    return Holder.DEAD if now - heartbeat_at > STALE_AFTER else Holder.ALIVE


def _runs_here(pid: int, registered_at: datetime) -> bool:
    """Whether `pid` is still the EchoPilot process that registered at `registered_at`."""
    if not PROC.is_dir():  # no process table to read (macOS): the pid's existence must do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if b"echopilot" not in cmdline:
        return False
    # Fields after the command name (which may hold spaces): state is the 1st, start the 20th.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    started = _boot_time() + timedelta(seconds=int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    return started <= registered_at + START_TOLERANCE


def _boot_time() -> datetime:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), UTC)
    return datetime.fromtimestamp(0, UTC)
