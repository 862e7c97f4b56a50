"""Scheduled tasks for bench/scheduler.py, registered through
ECHOPILOT_TASK_MODULES=bench.sched_tasks (with the repository root on PYTHONPATH).

bench_task_00 .. bench_task_19 each append one line to <home>/bench_runs.log:
`<task> <slot ISO> <trigger> <pid> <unix time when the task body ran>`. The file is
opened with O_APPEND and written with one write() per line, so the task processes of
several schedulers can share it (as tests/fakes/probe_tasks.py does). Their default
schedule is off: the benchmark turns them on with ECHOPILOT_SCHEDULE_BENCH_TASK_NN.
"""

from __future__ import annotations

import os
import time
from typing import Any

from echopilot.scheduler.tasks import TaskContext, TaskDef, register

TASK_COUNT = 20
RUNS_FILE = "bench_runs.log"


def task_name(index: int) -> str:
    return f"bench_task_{index:02d}"


def _append_slot(ctx: TaskContext) -> dict[str, Any]:
    ran_at = time.time()
    path = ctx.runtime.settings.home / RUNS_FILE
    line = f"{ctx.task} {ctx.slot.isoformat()} {ctx.trigger} {os.getpid()} {ran_at:.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return {"slot": ctx.slot.isoformat()}


for _index in range(TASK_COUNT):
    register(
        TaskDef(
            name=task_name(_index),
            func=_append_slot,
            default_schedule="off",
            description="bench/scheduler.py: append the slot to <home>/bench_runs.log",
        )
    )
