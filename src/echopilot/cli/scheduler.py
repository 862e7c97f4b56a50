"""`echopilot scheduler run|start|stop|status` and `echopilot retention`."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from rich.table import Table

from echopilot import audit, retention
from echopilot.cli.common import EXIT_FAILED, JsonOption, console, output, runtime
from echopilot.config import load_settings
from echopilot.db.engine import write_session
from echopilot.scheduler import control
from echopilot.scheduler.table import build

app = typer.Typer(help="The scheduler daemon that runs the automations.", no_args_is_help=True)


@app.command("run")
def run(
    pidfile: Annotated[
        bool, typer.Option("--pidfile", help="Hold <home>/run/scheduler.pid.")
    ] = False,
) -> None:
    """Run the scheduler in the foreground (systemd, containers, `echopilot up`)."""
    from echopilot.integrations.heartbeat import HeartbeatPinger
    from echopilot.scheduler.daemon import Scheduler
    from echopilot.scheduler.executor import ProcessRunner

    with runtime("scheduler", console_logs=True) as rt:
        settings = rt.settings
        table = build(settings)
        if pidfile:
            control.write_pid(settings)
        pinger = HeartbeatPinger(settings.heartbeat_url) if settings.heartbeat_url else None
        scheduler = Scheduler(rt, table, ProcessRunner(settings), pinger=pinger)

        def _stop(signum: int, _frame: Any) -> None:
            scheduler.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            scheduler.start()
            scheduler.run_forever()
        finally:
            abandoned = scheduler.shutdown(settings.scheduler_shutdown_seconds)
            if pidfile:
                control.remove_pid(settings)
        if abandoned:
            console.print(f"stopped; runs abandoned: {abandoned}")


@app.command()
def start(as_json: bool = JsonOption) -> None:
    """Start the scheduler as a background daemon (PID file <home>/run/scheduler.pid)."""
    settings = load_settings()
    with runtime() as rt:
        build(settings)  # a bad schedule stops here, with exit code 2
        result = control.start(settings)
        if result.started:
            with write_session(rt.sessions) as session:
                audit.record(
                    session, actor="cli", action="scheduler.start", details={"pid": result.pid}
                )
    output(vars(result), as_json, lambda r: console.print(r["message"]))


@app.command()
def stop(
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait.")] = 30,
    as_json: bool = JsonOption,
) -> None:
    """Stop the daemon started by `scheduler start` (SIGTERM to its PID only)."""
    settings = load_settings()
    result = control.stop(settings, timeout=timeout)
    output(vars(result), as_json, lambda r: console.print(r["message"]))
    if result.pid is not None and not result.stopped:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(as_json: bool = JsonOption) -> None:
    """Running, paused, heartbeat age, and every task's schedule, last and next run."""
    with runtime() as rt:
        data = control.status(rt)
    output(data, as_json, _print_status)


def _print_status(data: dict[str, Any]) -> None:
    state = "running" if data["running"] else "not running"
    if data["paused"]:
        state += " (paused)"
    console.print(f"scheduler: {state}", highlight=False)
    if data["running"]:
        console.print(
            f"pid {data['pid']} on {data['host']}, up {data['uptime_s']}s, "
            f"heartbeat {data['heartbeat_age_s']}s ago",
            highlight=False,
        )
    elif data["heartbeat_age_s"] is not None:
        console.print(f"last heartbeat {data['heartbeat_age_s']}s ago", highlight=False)
    table = Table("task", "schedule", "last run", "result", "next run")
    for row in data["schedule"]:
        last = row["last_run"] or {}
        table.add_row(
            row["task"],
            row["schedule"],
            (last.get("started_at") or "never")[:19],
            last.get("status", ""),
            (row["next_run"] or "off")[:19],
        )
    console.print(table)


def retention_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; delete nothing.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Keep the newest report files per pattern and prune old operational rows."""
    with runtime() as rt:
        result = retention.run_by(rt, actor="cli", dry_run=dry_run)
    output(result, as_json, _print_retention)
    if result["errors"]:
        raise typer.Exit(EXIT_FAILED)


def _print_retention(result: dict[str, Any]) -> None:
    verb = "would delete" if result["dry_run"] else "deleted"
    table = Table("pattern", "kept", verb, "bytes freed", "errors")
    for p in result["patterns"]:
        count = len(p["would_delete"]) if result["dry_run"] else p["deleted"]
        table.add_row(
            p["pattern"], str(p["kept"]), str(count), str(p["bytes_freed"]), "; ".join(p["errors"])
        )
    console.print(table)
    rows = ", ".join(f"{k}: {v}" for k, v in result["rows"].items())
    console.print(f"rows older than {result['row_cutoff'][:10]} {verb}: {rows}", highlight=False)
