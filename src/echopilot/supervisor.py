"""`echopilot up`: the API, a worker and the scheduler as supervised child processes.

A child that crashes is restarted with exponential backoff (reset once it has stayed up a
minute) and the crash is logged. One SIGTERM or SIGINT stops them all: each gets SIGTERM
(and its own graceful shutdown, shortened to fit), and whatever still runs after
STOP_SECONDS is killed.
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
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STOP_SECONDS = 9.0
CHILD_GRACE_SECONDS = "6"
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0
HEALTHY_AFTER = 60.0


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "echopilot", *self.args],
            env=self.env,
            start_new_session=True,  # terminal signals reach the supervisor only
        )
        self.started = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %s)", self.name, self.process.pid)


def children(base_env: dict[str, str], *, scheduler: bool = True) -> list[Child]:
    env = dict(base_env)
    # Each child's own graceful stop must fit inside the supervisor's.
    env["ECHOPILOT_WORKER_SHUTDOWN_SECONDS"] = CHILD_GRACE_SECONDS
    env["ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"] = CHILD_GRACE_SECONDS
    made = [Child("api", ["serve", "--quiet"], env), Child("worker", ["worker"], env)]
    if scheduler:
        made.append(Child("scheduler", ["scheduler", "run"], env))
    return made


class Supervisor:
    def __init__(self, kids: list[Child]) -> None:
        self.kids = kids
        self._stop = threading.Event()

    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        for kid in self.kids:
            kid.start()
        while not self._stop.wait(0.5):
            self._watch(time.monotonic())
        self._stop_all()
        return 0

    def _watch(self, now: float) -> None:
        for kid in self.kids:
            if kid.restart_at is not None:
                if now >= kid.restart_at:
                    kid.restarts += 1
                    kid.start()
                continue
            code = kid.process.poll() if kid.process else None
            if code is None:
                if now - kid.started > HEALTHY_AFTER:
                    kid.backoff = BACKOFF_START
                continue
            kid.history.append(code)
            log.error("%s exited with code %s; restarting in %.0fs", kid.name, code, kid.backoff)
            kid.restart_at = now + kid.backoff
            kid.backoff = min(kid.backoff * 2, BACKOFF_MAX)

    def _stop_all(self) -> None:
        running = [k.process for k in self.kids if k.process and k.process.poll() is None]
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %s did not stop in time; killing it", process.pid)
                _signal(process, signal.SIGKILL)
                process.wait(timeout=5)


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)
