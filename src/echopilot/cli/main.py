"""The `echopilot` command. Exit codes: 0 ok, 1 the operation failed, 2 bad usage or config."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from echopilot import __version__
from echopilot.ai.registry import provider_label
from echopilot.cli import demo, jobs, scheduler, serve, up
from echopilot.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    console,
    emit_json,
    output,
    print_error,
    runtime,
)
from echopilot.config import load_settings, masked
from echopilot.errors import ConfigError, ConflictError, InputError, NotFoundError

app = typer.Typer(
    help="EchoPilot: run an AI-services business on autopilot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(jobs.app, name="jobs")
app.add_typer(demo.app, name="demo")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("serve")(serve.serve)
app.command("up")(up.up)
app.add_typer(scheduler.app, name="scheduler")
app.command("retention")(scheduler.retention_command)
app.add_typer(config_app, name="config")


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=512,
            help="Jobs run at once (default ECHOPILOT_WORKER_CONCURRENCY).",
        ),
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit 0 once no job is runnable.")] = False,
) -> None:
    """Run jobs from the queue until SIGTERM/SIGINT (graceful: running jobs finish or go back)."""
    from echopilot.queue.worker import run_worker

    threads = concurrency or load_settings().worker_concurrency
    with runtime("worker", pool_size=threads + 4, console_logs=True) as rt:
        code = run_worker(rt, concurrency=threads, burst=burst)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    with runtime(migrate=False) as rt:
        before, after = rt.migrate()
    if before == after:
        console.print(f"database already at revision {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


@config_app.command("show")
def config_show(
    as_json: bool = JsonOption,
    brief: Annotated[
        bool, typer.Option("--brief", help="Only provider, database and queue.")
    ] = False,
) -> None:
    """Show the settings in effect (secrets masked)."""
    settings = load_settings()
    data: dict[str, Any] = masked(settings)
    data["effective"] = {
        "provider": settings.provider_name,
        "database": _safe_url(settings.resolved_database_url),
        "queue": _safe_url(settings.resolved_queue_url),
        "version": __version__,
    }
    for name in ("ECHOPILOT_DATABASE_URL", "ECHOPILOT_QUEUE_URL"):
        if data.get(name):
            data[name] = _safe_url(data[name])
    if brief:
        eff = data["effective"]
        provider = provider_label(eff["provider"])
        console.print(
            f"AI provider: {provider}\ndatabase:    {eff['database']}\nqueue:       {eff['queue']}",
            highlight=False,
        )
        return
    output(data, as_json, _print_settings)


def _print_settings(data: dict[str, Any]) -> None:
    table = Table("setting", "value")
    for key, value in data.items():
        if key != "effective":
            table.add_row(key, "" if value is None else str(value))
    console.print(table)
    for key, value in data["effective"].items():
        console.print(f"{key}: {value}", highlight=False)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


@app.command()
def version() -> None:
    """Print EchoPilot's version."""
    console.print(__version__)


def main() -> None:
    try:
        app(standalone_mode=True)
    except (ConfigError, InputError, NotFoundError) as exc:
        print_error(str(exc))
        sys.exit(EXIT_USAGE)
    except ConflictError as exc:
        print_error(str(exc))
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "emit_json", "main"]
