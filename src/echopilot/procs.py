"""Which process is which, so that one EchoPilot process can tell whether another lives.

A pid alone is reused. A stamp names one process for good: its host, its pid, where that
pid means something (the boot and the pid namespace) and when it started, in clock ticks
since boot (not wall-clock time, which may be stepped). On the same host and in the same
pid namespace, the process table then answers exactly: the stamped process lives while
/proc shows its pid with that start time. Anywhere else the answer is unknown and the
caller falls back to a heartbeat.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HOST = socket.gethostname()
PROC = Path("/proc")
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Stamp:
    host: str
    pid: int
    space: str  # boot id and pid namespace: where `pid` names this process
    started: int  # start time in clock ticks since boot

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.space}@{self.started}"

    @classmethod
    def parse(cls, text: str | None) -> Stamp | None:
        """The stamp written by str(); None for anything else (older names: `host:pid`)."""
        host, _, rest = (text or "").partition(":")
        pid, _, mark = rest.partition(":")
        space, _, started = mark.partition("@")
        if not (host and pid.isdigit() and space and started.isdigit()):
            return None
        return cls(host, int(pid), space, int(started))


def own_stamp() -> Stamp:
    """This process's stamp (computed again after a fork: the pid differs)."""
    return _stamp(os.getpid())


@cache
def _stamp(pid: int) -> Stamp:
    try:
        started = _start_ticks(pid) or 0
    except (OSError, IndexError, ValueError):
        started = 0  # no process table (macOS): `alive` never judges by it
    return Stamp(HOST, pid, _space(), started)


@cache
def _space() -> str:
    """Where pids of this process mean something: the boot and the pid namespace."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = (PROC / "self/ns/pid").stat().st_ino
    except OSError:
        return "noproc"
    return f"{boot}.{namespace:x}"


def _start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot; None when it is gone or a zombie."""
    stat = (PROC / str(pid) / "stat").read_text()
    # The command name (in parentheses) may hold spaces: count fields after it.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(stamp: Stamp) -> bool | None:
    """Whether the stamped process still runs: True or False when this host can tell (same
    host, same boot and pid namespace), None when it cannot."""
    if stamp.host != HOST or stamp.space != _space() or stamp.space == "noproc":
        return None
    try:
        started = _start_ticks(stamp.pid)
    except FileNotFoundError:
        return False
    except (OSError, IndexError, ValueError):
        return None  # hidden from us (another user under hidepid): cannot tell
    return started == stamp.started


def running(pid: int) -> bool:
    """Whether `pid` exists and has not ended (a zombie awaiting its parent has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _start_ticks(pid) is not None
    except FileNotFoundError:
        return False
    except (OSError, IndexError, ValueError):
        return True  # no process table to read (macOS): it exists


def is_echopilot(pid: int) -> bool | None:
    """Whether `pid` runs EchoPilot (False for a pid reused by another program or gone;
    None when this host has no process table to tell)."""
    if not PROC.is_dir():
        return None
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    # A zombie's command line is empty.
    return b"echopilot" in cmdline


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def preload() -> None:
    """Load what die_with_parent needs, in a parent about to fork children that call it."""
    _libc()


def die_with_parent(signum: int, parent: int) -> None:
    """Have the kernel send `signum` to this process when its parent dies (Linux), and end
    at once if `parent` (its parent's pid when it started) is already gone."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
