"""What every command shares: the runtime, output in JSON or tables, and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from echopilot import logsetup
from echopilot.config import load_settings
from echopilot.runtime import Runtime, prepare_home

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

console = Console()

JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")
# Ids are 64-bit integers in every database: a larger number is a usage error, not a crash.
MAX_ID = 2**63 - 1
JobIdArgument = typer.Argument(min=1, max=MAX_ID, help="Job id.")


@dataclass
class Invocation:
    """What the failure handler of `main` needs to know about the running command."""

    log_file: Path | None = None
    database_url: str | None = None


invocation = Invocation()


@contextmanager
def runtime(
    component: str = "cli", *, migrate: bool = True, pool_size: int = 10, console_logs: bool = False
) -> Iterator[Runtime]:
    settings = load_settings()
    prepare_home(settings.home)
    invocation.database_url = settings.resolved_database_url
    invocation.log_file = logsetup.setup(
        settings.home, component, settings.log_level, console=console_logs
    )
    rt = Runtime(settings, pool_size=pool_size)
    try:
        if migrate:
            rt.migrate()
        yield rt
    finally:
        rt.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def output(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        emit_json(data)
    else:
        render(data)


def print_error(message: str) -> None:
    """One line on stderr, never wrapped (scripts grep it)."""
    sys.stderr.write("error: " + " ".join(str(message).split()) + "\n")
