"""`echopilot up`: the API, a worker and the scheduler as supervised child processes.

A child that crashes is restarted with exponential backoff (reset once it has stayed up a
minute) and the crash is logged. A child may be held back for a reason (its gate): the
scheduler is not started while `echopilot scheduler stop` wants it stopped (the stop marker)
or while another scheduler holds this home's lock; it starts at once when the reason is
gone.

One SIGTERM, SIGINT or SIGHUP (the terminal closed) stops them all, and the kernel sends
each child SIGTERM if `up` itself is killed outright. Each gets SIGTERM (and its own
graceful shutdown, shortened to fit), and after STOP_SECONDS the process group of each
child (each leads its own) is killed, so nothing they started outlives `up`: the
scheduler's fork server and resource tracker are in the scheduler's group, and its task
processes die with the fork server. What a killed scheduler left open in the database is
closed by `up` itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from echopilot import procs
from echopilot.clock import utcnow
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

# Everything under `up` is gone within 10 s of SIGTERM: children get STOP_SECONDS, then
# their groups are killed.
STOP_SECONDS = 8.5
WORKER_GRACE_SECONDS = 6.0
# The scheduler's grace for running tasks; its shutdown then needs up to ~3 s more
# (executor.KILL_GRACE_SECONDS twice, and closing its records).
SCHEDULER_GRACE_SECONDS = 5.0
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0
HEALTHY_AFTER = 60.0
WATCH_EVERY_SECONDS = 0.5


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    # A reason not to run it now (None: run it); asked before every start.
    gate: Callable[[], str | None] | None = None
    # Called with its pid once its process has ended, whatever the cause.
    on_exit: Callable[[int], None] | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    held: str | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)

    def start(self) -> None:
        supervisor = os.getpid()
        procs.preload()  # the child only calls what is loaded here: no imports after a fork
        self.process = subprocess.Popen(
            [sys.executable, "-m", "echopilot", *self.args],
            env=self.env,
            start_new_session=True,  # terminal signals reach the supervisor only
            # Orphaned children would hold the port and the locks of a dead `up`.
            preexec_fn=lambda: procs.die_with_parent(signal.SIGTERM, supervisor),
        )
        self.started = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %s)", self.name, self.process.pid)

    def reason_to_wait(self) -> str | None:
        return self.gate() if self.gate is not None else None


def children(rt: Runtime, base_env: dict[str, str], *, scheduler: bool = True) -> list[Child]:
    env = dict(base_env)
    # Each child's own graceful stop must fit inside the supervisor's.
    settings = rt.settings
    env["ECHOPILOT_WORKER_SHUTDOWN_SECONDS"] = f"{WORKER_GRACE_SECONDS:g}"
    env["ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"] = (
        f"{min(settings.scheduler_shutdown_seconds, SCHEDULER_GRACE_SECONDS):g}"
    )
    made = [Child("api", ["serve", "--quiet"], env), Child("worker", ["worker"], env)]
    if scheduler:
        made.append(
            Child(
                "scheduler",
                ["scheduler", "run"],
                env,
                gate=scheduler_gate(rt),
                on_exit=closer_of_scheduler_records(rt),
            )
        )
    return made


def scheduler_gate(rt: Runtime) -> Callable[[], str | None]:
    """The scheduler child waits while `scheduler stop` wants it stopped, or while another
    scheduler (started by hand, by `scheduler start`, by systemd) runs on this home."""
    from echopilot.scheduler import control

    def gate() -> str | None:
        if control.stopped_marker(rt.settings).exists():
            return (
                "stopped with `echopilot scheduler stop`; `echopilot scheduler start` "
                "starts it again"
            )
        holder = control.scheduler_pid(rt.settings)
        if holder is not None:
            return f"using the scheduler already running on this home (pid {holder})"
        return None

    return gate


def closer_of_scheduler_records(rt: Runtime) -> Callable[[int], None]:
    """After the scheduler child ended: if it could not close its own records (killed,
    crashed), mark its instance stopped and its running runs abandoned."""
    from echopilot.scheduler import store

    def close(pid: int) -> None:
        try:
            abandoned = store.close_dead_scheduler(
                rt.sessions,
                now=utcnow(),
                reason=f"its scheduler (pid {pid}) ended before the run finished",
                pid=pid,
            )
        except Exception:  # the supervisor outlives a database hiccup
            log.exception("could not close the records of scheduler pid %s", pid)
            return
        if abandoned:
            log.warning("scheduler pid %s left runs %s running; abandoned them", pid, abandoned)

    return close


class Supervisor:
    def __init__(self, kids: list[Child]) -> None:
        self.kids = kids
        self._stop = threading.Event()

    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.request_stop)
        for kid in self.kids:
            self._start_unless_held(kid)
        while not self._stop.wait(WATCH_EVERY_SECONDS):
            self._watch(time.monotonic())
        self._stop_all()
        return 0

    def _start_unless_held(self, kid: Child) -> bool:
        reason = kid.reason_to_wait()
        if reason is not None:
            if reason != kid.held:
                log.info("not starting %s: %s", kid.name, reason)
            kid.held, kid.restart_at = reason, None
            return False
        kid.held = None
        kid.start()
        return True

    def _watch(self, now: float) -> None:
        for kid in self.kids:
            if kid.held is not None:
                # At once, without backoff: it waited for a reason, it did not crash.
                if self._start_unless_held(kid):
                    kid.backoff = BACKOFF_START
                continue
            if kid.restart_at is not None:
                if now >= kid.restart_at:
                    kid.restarts += 1
                    self._start_unless_held(kid)
                continue
            if kid.process is None or not _exited(kid):
                if now - kid.started > HEALTHY_AFTER:
                    kid.backoff = BACKOFF_START
                continue
            # What a crashed child started (say, `serve --workers`' server processes) must
            # not outlive it and hold its port: its group goes before the leader is reaped.
            _kill_group(kid)
            code = kid.process.wait()
            self._ended(kid, code, now)

    def _ended(self, kid: Child, code: int, now: float) -> None:
        kid.history.append(code)
        if kid.on_exit is not None and kid.process is not None:
            kid.on_exit(kid.process.pid)
        reason = kid.reason_to_wait()
        if reason is not None:
            log.info("%s exited with code %s; not restarting it: %s", kid.name, code, reason)
            kid.held = reason
            return
        log.error("%s exited with code %s; restarting in %.0fs", kid.name, code, kid.backoff)
        kid.restart_at = now + kid.backoff
        kid.backoff = min(kid.backoff * 2, BACKOFF_MAX)

    def _stop_all(self) -> None:
        running = []
        for kid in self.kids:
            if kid.process is None or kid.held is not None or kid.restart_at is not None:
                continue  # not started, or its end was handled already
            if kid.process.poll() is None:
                running.append(kid)
            elif kid.on_exit is not None:  # it ended since the last watch
                kid.on_exit(kid.process.pid)
        for kid in running:
            _signal(kid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        pending = list(running)
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
            pending = [k for k in pending if not _exited(k)]
        for kid in pending:
            log.warning("%s (pid %s) did not stop in time; killing it", kid.name, _pid(kid))
        for kid in running:
            # The whole group, before reaping the leader (its pid, the group's id, cannot be
            # reused until then): whatever the child started and left behind goes too.
            _kill_group(kid)
            assert kid.process is not None
            try:
                kid.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): go on
                log.error("%s (pid %s) survived SIGKILL", kid.name, kid.process.pid)
                continue
            if kid.on_exit is not None:
                kid.on_exit(kid.process.pid)


def _pid(kid: Child) -> int:
    assert kid.process is not None
    return kid.process.pid


def _exited(kid: Child) -> bool:
    """Whether the child has ended, without reaping it (WNOWAIT)."""
    try:
        found = os.waitid(os.P_PID, _pid(kid), os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return found is not None


def _signal(kid: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(_pid(kid), signum)


def _kill_group(kid: Child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(_pid(kid), signal.SIGKILL)
