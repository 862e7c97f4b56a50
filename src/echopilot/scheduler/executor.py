"""Running one task run, with a timeout that is really enforced.

Each run executes in a child process from a fork server (forked from a clean,
single-threaded process with EchoPilot preloaded, so a start costs milliseconds). A run
that outlives its timeout is terminated, then killed: a stuck task never keeps running
in the background.

A task process leads its own process group, so stopping it stops whatever it started too,
and dies with the fork server (Linux: a parent-death signal). The fork server exits when
no process holds its keep-alive pipe any more; task processes inherit that pipe and let go
of it at once, so the scheduler alone keeps the fork server alive: a scheduler killed
outright leaves no task running unsupervised.
`InlineRunner` runs tasks in the calling thread, for tests that control time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, Protocol

from echopilot import procs
from echopilot.config import Settings
from echopilot.runtime import Runtime
from echopilot.scheduler.tasks import TaskContext, registry

# Between SIGTERM and SIGKILL to a task's process group. Short: a scheduler's shutdown must
# fit inside `echopilot up`'s own stop budget.
KILL_GRACE_SECONDS = 1.5


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | failed (| abandoned, set by the daemon at shutdown)
    summary: dict[str, Any] | None = None
    error: str | None = None


class Runner(Protocol):
    def run(
        self, task: str, slot: datetime, now: datetime, trigger: str, timeout: timedelta
    ) -> Outcome: ...

    def warm(self) -> None: ...

    def stop_all(self) -> None: ...


def _child(
    settings: Settings, task: str, slot: datetime, now: datetime, trigger: str, conn: Connection
) -> None:
    _die_with_parent()
    runtime = Runtime(settings, pool_size=2)
    try:
        func = registry(settings.task_module_list)[task].func
        summary = func(TaskContext(runtime, task, slot, now, trigger))
        conn.send(Outcome("ok", summary=summary))
    except BaseException as exc:  # report every failure, whatever it is, to the parent
        conn.send(Outcome("failed", error=f"{type(exc).__name__}: {exc}"))
    finally:
        runtime.close()
        conn.close()


def _die_with_parent() -> None:
    """Lead a process group of our own and get SIGKILL when the fork server (our parent)
    dies; exit at once if it died before the signal was armed."""
    parent = os.getppid()
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    procs.die_with_parent(signal.SIGKILL, parent)
    _release_fork_server()
    if parent == 1:
        os._exit(1)


def _release_fork_server() -> None:
    """Close our copy of the fork server's keep-alive pipe: while any task held it, the
    fork server (and so the tasks) would outlive a scheduler killed outright."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if server is not None and isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


class ProcessRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(
            ["echopilot.scheduler.builtin", *settings.task_module_list]
        )
        _main_by_name()
        self._children: set[Any] = set()
        self._lock = threading.Lock()

    def run(
        self, task: str, slot: datetime, now: datetime, trigger: str, timeout: timedelta
    ) -> Outcome:
        receiver, sender = self._ctx.Pipe(duplex=False)
        child = self._ctx.Process(
            target=_child,
            args=(self.settings, task, slot, now, trigger, sender),
            name=f"echopilot-task-{task}",
            daemon=True,
        )
        child.start()
        sender.close()
        with self._lock:
            self._children.add(child)
        try:
            deadline = time.monotonic() + timeout.total_seconds()
            outcome: Outcome | None = None
            while outcome is None and time.monotonic() < deadline:
                if receiver.poll(min(0.5, max(0.0, deadline - time.monotonic()))):
                    try:
                        outcome = receiver.recv()
                    except EOFError:
                        break
                elif not child.is_alive() and not receiver.poll(0):
                    break
            if outcome is None:
                timed_out = time.monotonic() >= deadline
                _stop(child)
                if timed_out:
                    return Outcome("failed", error=f"timed out after {timeout} and was killed")
                return Outcome("failed", error=f"task process died (exit code {child.exitcode})")
            child.join(KILL_GRACE_SECONDS)
            if child.is_alive():
                _stop(child)
            return outcome
        finally:
            receiver.close()
            with self._lock:
                self._children.discard(child)

    def warm(self) -> None:
        """Start the fork server now, so that the first slot is not late."""
        child = self._ctx.Process(target=_noop, daemon=True)
        child.start()
        child.join(60)

    def stop_all(self) -> None:
        """Stop every running task at once (one grace period for all, not one each)."""
        with self._lock:
            children = list(self._children)
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
        for child in children:
            _signal_group(child, signal.SIGKILL)
        for child in children:
            child.join(KILL_GRACE_SECONDS)


def _main_by_name() -> None:
    """Started as the `echopilot` console script, __main__ has a path but no module name,
    and multiprocessing then re-runs that script (importing the whole CLI, ~0.5 s) in every
    child. Naming it as `python -m echopilot` makes children skip that step."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.util.find_spec("echopilot.__main__")


def _noop() -> None:
    pass


def _stop(child: Any) -> None:
    """SIGTERM the task's process group, then SIGKILL it (which also reaches what the task
    started and left behind when it exited)."""
    _signal_group(child, signal.SIGTERM)
    child.join(KILL_GRACE_SECONDS)
    _signal_group(child, signal.SIGKILL)
    child.join(KILL_GRACE_SECONDS)


def _signal_group(child: Any, signum: int) -> None:
    if child.pid is None:
        return
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        # Not yet in a group of its own (just forked): the process alone, while it lives.
        if child.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)
    except PermissionError:
        pass  # the group is gone and its id belongs to someone else now


class InlineRunner:
    """Runs the task in the calling thread with the caller's runtime (tests only)."""

    def __init__(
        self, runtime: Runtime, on_run: Callable[[str, datetime], None] | None = None
    ) -> None:
        self.runtime = runtime
        self.on_run = on_run

    def run(
        self, task: str, slot: datetime, now: datetime, trigger: str, timeout: timedelta
    ) -> Outcome:
        if self.on_run is not None:
            self.on_run(task, slot)
        try:
            func = registry(self.runtime.settings.task_module_list)[task].func
            return Outcome("ok", summary=func(TaskContext(self.runtime, task, slot, now, trigger)))
        except Exception as exc:
            return Outcome("failed", error=f"{type(exc).__name__}: {exc}")

    def warm(self) -> None:
        pass

    def stop_all(self) -> None:
        pass
