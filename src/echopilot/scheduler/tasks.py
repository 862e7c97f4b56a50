"""The tasks the scheduler knows: built-in ones, and any from ECHOPILOT_TASK_MODULES.

A task is a plain function of a TaskContext returning a JSON-able summary. Features add
their tasks here when they land; a task is never registered before its feature exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from echopilot.config import Settings
from echopilot.runtime import Runtime

TaskFunc = Callable[["TaskContext"], dict[str, Any]]


@dataclass
class TaskContext:
    runtime: Runtime
    task: str
    slot: datetime
    now: datetime
    trigger: str


@dataclass(frozen=True)
class TaskDef:
    name: str
    func: TaskFunc
    default_schedule: str
    timeout: timedelta = timedelta(minutes=10)
    run_at_start: bool = False
    description: str = ""
    # A feature's own setting for its schedule (SCHED_SELFHEAL_EVERY_HOURS);
    # ECHOPILOT_SCHEDULE_<TASK> still wins over it.
    schedule_from: Callable[[Settings], str] | None = None

    def schedule_text(self, settings: Settings) -> str:
        if self.name in settings.schedules:
            return settings.schedules[self.name]
        if self.schedule_from is not None:
            return self.schedule_from(settings)
        return self.default_schedule


_REGISTRY: dict[str, TaskDef] = {}


def register(task: TaskDef) -> TaskDef:
    _REGISTRY[task.name] = task
    return task


def registry(extra_modules: tuple[str, ...] = ()) -> dict[str, TaskDef]:
    """Every registered task, after importing the built-ins and `extra_modules`."""
    importlib.import_module("echopilot.scheduler.builtin")
    for module in extra_modules:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))
