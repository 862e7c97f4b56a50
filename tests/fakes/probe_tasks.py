"""Scheduled tasks for tests, registered through ECHOPILOT_TASK_MODULES.

`probe` appends its slot to <home>/probe.log (O_APPEND, so several processes can share
it); `slow` sleeps for the seconds in <home>/slow.seconds; `boom` raises; `stubborn` ignores
SIGTERM, writes its pid to <home>/stubborn.pid and sleeps for five minutes.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from typing import Any

from echopilot.scheduler.tasks import TaskContext, TaskDef, register


def _probe(ctx: TaskContext) -> dict[str, Any]:
    path = ctx.runtime.settings.home / "probe.log"
    line = f"{ctx.slot.isoformat()} {ctx.trigger} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"slot": ctx.slot.isoformat()}


def _slow(ctx: TaskContext) -> dict[str, Any]:
    seconds = float((ctx.runtime.settings.home / "slow.seconds").read_text())
    marker = ctx.runtime.settings.home / "slow.started"
    marker.write_text(str(os.getpid()))
    time.sleep(seconds)
    return {"slept": seconds}


def _stubborn(ctx: TaskContext) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (ctx.runtime.settings.home / "stubborn.pid").write_text(str(os.getpid()))
    time.sleep(300)
    return {}


def _boom(ctx: TaskContext) -> dict[str, Any]:
    raise RuntimeError("the probe task failed on purpose")


def _nul(ctx: TaskContext) -> dict[str, Any]:
    raise ValueError("a message PostgreSQL cannot store: \x00")


register(TaskDef(name="probe", func=_probe, default_schedule="off"))
register(TaskDef(name="slow", func=_slow, default_schedule="off", timeout=timedelta(seconds=60)))
register(TaskDef(name="boom", func=_boom, default_schedule="off"))
register(TaskDef(name="nul", func=_nul, default_schedule="off"))
register(
    TaskDef(name="slow_short", func=_slow, default_schedule="off", timeout=timedelta(seconds=2))
)
register(
    TaskDef(name="stubborn", func=_stubborn, default_schedule="off", timeout=timedelta(seconds=120))
)
