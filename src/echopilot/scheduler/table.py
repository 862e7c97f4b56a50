"""The schedule table: each registered task with its schedule and catch-up policy."""

from __future__ import annotations

from dataclasses import dataclass

from echopilot.config import Settings
from echopilot.errors import ConfigError
from echopilot.scheduler.spec import Schedule, ScheduleError, parse
from echopilot.scheduler.tasks import TaskDef, registry

CATCHUP_POLICIES = ("once", "skip")


@dataclass(frozen=True)
class Entry:
    task: TaskDef
    schedule: Schedule
    catchup: str

    @property
    def name(self) -> str:
        return self.task.name


def build(settings: Settings) -> dict[str, Entry]:
    """Raise ConfigError naming the setting when an override is bad or names no task."""
    try:
        tasks = registry(settings.task_module_list)
    except ImportError as exc:
        raise ConfigError(f"ECHOPILOT_TASK_MODULES: cannot import {exc.name!r}") from None
    for name in settings.schedules:
        if name not in tasks:
            raise ConfigError(
                f"ECHOPILOT_SCHEDULE_{name.upper()}: no task {name!r}; tasks: {', '.join(tasks)}"
            )
    for name, policy in settings.catchup.items():
        if name not in tasks:
            raise ConfigError(
                f"ECHOPILOT_CATCHUP_{name.upper()}: no task {name!r}; tasks: {', '.join(tasks)}"
            )
        if policy.strip().lower() not in CATCHUP_POLICIES:
            raise ConfigError(
                f"ECHOPILOT_CATCHUP_{name.upper()}: must be once or skip (got {policy!r})"
            )
    entries = {}
    for name, task in tasks.items():
        text = task.schedule_text(settings)
        try:
            schedule = parse(text)
        except ScheduleError as exc:
            raise ConfigError(f"ECHOPILOT_SCHEDULE_{name.upper()}: {exc}") from None
        policy = settings.catchup.get(name, "once").strip().lower()
        entries[name] = Entry(task=task, schedule=schedule, catchup=policy)
    return entries
