"""The `echopilot` command. Exit codes: 0 ok, 1 the operation failed, 2 bad usage or config."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from echopilot import __version__
from echopilot.ai.registry import provider_label
from echopilot.cli import (
    alerts,
    brief,
    clients,
    demo,
    doctor,
    finance,
    jobs,
    notion,
    optimize,
    payments,
    report,
    scheduler,
    selfheal,
    serve,
    up,
)
from echopilot.cli.common import (
    EXIT_FAILED,
    JsonOption,
    console,
    emit_json,
    invocation,
    output,
    print_error,
    runtime,
)
from echopilot.cli.failures import explain
from echopilot.config import load_settings, masked
from echopilot.logsetup import CONSOLE

log = logging.getLogger("echopilot.cli")
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
app.command("self-heal")(selfheal.self_heal_command)
app.command("finance")(finance.finance_command)
app.command("brief")(brief.brief_command)
app.command("optimize")(optimize.optimize_command)
app.command("doctor")(doctor.doctor_command)
app.add_typer(alerts.app, name="alerts")
app.add_typer(report.app, name="report")
app.add_typer(payments.app, name="payments")
app.add_typer(notion.app, name="notion")
app.add_typer(clients.app, name="clients")
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


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"echopilot {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """EchoPilot: run an AI-services business on autopilot."""


def main() -> None:
    # Everything EchoPilot writes (database, queue, logs, key, reports) holds client data:
    # readable by its owner only.
    os.umask(0o077)
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.TyperException as exc:  # bad usage: the parser's own message
        if _wants_json():
            sys.exit(_fail(exc))
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print_error(exc.format_message())
        sys.exit(exc.exit_code)
    except Exception as exc:  # every failure ends in one line, never a traceback
        sys.exit(_fail(exc))
    sys.exit(result if isinstance(result, int) else 0)


def _wants_json() -> bool:
    return "--json" in sys.argv[1:]


def _fail(exc: Exception) -> int:
    failure = explain(exc, database_url=invocation.database_url)
    if invocation.log_file is not None and logging.getLogger().handlers:
        log.error(
            "%s failed: %s",
            " ".join(["echopilot", *sys.argv[1:2]]),
            failure.message,
            exc_info=exc,
            extra={CONSOLE: False},
        )
    message = failure.message
    if not failure.expected and invocation.log_file is not None:
        message += f"; the details are in {invocation.log_file}"
    if _wants_json():
        emit_json({"ok": False, "data": None, "error": {"code": failure.code, "message": message}})
    else:
        print_error(message)
    return failure.exit_code


__all__ = ["app", "emit_json", "main"]
