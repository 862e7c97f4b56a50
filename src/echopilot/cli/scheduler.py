"""`echopilot scheduler run|start|stop|status` and `echopilot retention`."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from echopilot import audit, ndjson, retention
from echopilot.cli.common import EXIT_FAILED, JsonOption, console, output, print_error, runtime
from echopilot.cli.failures import explain
from echopilot.config import load_settings
from echopilot.db.engine import write_session
from echopilot.scheduler import control
from echopilot.scheduler.table import build

app = typer.Typer(help="The scheduler daemon that runs the automations.", no_args_is_help=True)


def report_alert_channels(settings: Any) -> None:
    """Name a malformed alert channel setting at start-up; the other channels still work."""
    from echopilot.alerts.channels import configured

    found = configured(settings)
    shown = ", ".join(found.names) or "none (alerts are recorded in the log only)"
    console.print(f"Alert channels: {shown}", highlight=False, soft_wrap=True)
    for problem in found.problems:
        console.print(f"Alert channel not used: {problem}", highlight=False, soft_wrap=True)


@app.command("run")
def run(
    pidfile: Annotated[
        bool,
        typer.Option("--pidfile", hidden=True, help="Accepted for compatibility; does nothing."),
    ] = False,
) -> None:
    """Run the scheduler in the foreground (systemd, containers, `echopilot up`); one per home:
    it holds <home>/run/scheduler.pid while it runs."""
    from echopilot.integrations.heartbeat import HeartbeatPinger
    from echopilot.scheduler.daemon import Scheduler
    from echopilot.scheduler.executor import ProcessRunner

    # Before anything else: a second scheduler on this home is refused (exit 2).
    with (
        control.hold_scheduler_lock(load_settings()),
        runtime("scheduler", console_logs=True) as rt,
    ):
        settings = rt.settings
        table = build(settings)
        report_alert_channels(settings)
        pinger = HeartbeatPinger(settings.heartbeat_url) if settings.heartbeat_url else None
        scheduler = Scheduler(rt, table, ProcessRunner(settings), pinger=pinger)

        def _stop(signum: int, _frame: Any) -> None:
            scheduler.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            scheduler.start()
            tasks = ", ".join(f"{name} ({entry.schedule.text})" for name, entry in table.items())
            console.print(
                f"scheduler started (pid {os.getpid()}); tasks: {tasks}\n"
                f"runs are logged to {ndjson.log_path(settings.home, 'scheduler')}; "
                "SIGTERM or Ctrl-C stops it",
                highlight=False,
                soft_wrap=True,
            )
            scheduler.run_forever()
        finally:
            abandoned = scheduler.shutdown(settings.scheduler_shutdown_seconds)
    if abandoned:
        console.print(f"stopped; runs abandoned: {abandoned}")


@app.command()
def start(as_json: bool = JsonOption) -> None:
    """Resume if paused, and start this home's scheduler unless one runs (under `echopilot
    up`, up starts it); waits until it runs."""
    with runtime() as rt:
        build(rt.settings)  # a bad schedule stops here, with exit code 2
        result = control.start(rt, actor="cli")
        with write_session(rt.sessions) as session:
            audit.record(
                session,
                actor="cli",
                action="scheduler.start",
                details={"pid": result.pid, "started": result.started, "result": result.message},
            )
    output(vars(result), as_json, lambda r: console.print(r["message"], highlight=False))


@app.command()
def stop(
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait.")] = 30,
    as_json: bool = JsonOption,
) -> None:
    """Stop this home's scheduler, whoever started it (SIGTERM to the pid in its lock file
    only); `echopilot up` does not restart it until `scheduler start`."""
    # Stopped and reported first: the audit record must not stand between the user and the
    # stop (the database may be what is down).
    result = control.stop(load_settings(), timeout=timeout)
    output(vars(result), as_json, lambda r: console.print(r["message"], highlight=False))
    try:
        with runtime() as rt, write_session(rt.sessions) as session:
            audit.record(
                session,
                actor="cli",
                action="scheduler.stop",
                details={"pid": result.pid, "stopped": result.stopped, "result": result.message},
            )
    except Exception as exc:
        print_error(f"the stop was not audited: {explain(exc).message}")
        raise typer.Exit(EXIT_FAILED) from None
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
    if data["daemon_pid"] is not None:
        console.print(f"this home's scheduler: pid {data['daemon_pid']}", highlight=False)
    elif data["stopped_by_cli"]:
        console.print(
            "this home's scheduler: stopped by `echopilot scheduler stop` "
            "(`echopilot scheduler start` starts it again)",
            highlight=False,
        )
    else:
        console.print("this home's scheduler: none", highlight=False)
    # Fits 80 columns: times without their year, a long schedule ends in an ellipsis.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task", no_wrap=True)
    table.add_column("schedule", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("last run (UTC)", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("next run (UTC)", no_wrap=True)
    for row in data["schedule"]:
        last = row["last_run"] or {}
        table.add_row(
            row["task"],
            row["schedule"],
            _short_time(last.get("started_at")) or "never",
            last.get("status", ""),
            _short_time(row["next_run"]) or "off",
        )
    console.print(table)


def _short_time(iso: str | None) -> str | None:
    """2026-12-03T14:05:33.120+00:00 -> 12-03 14:05:33."""
    return iso[5:19].replace("T", " ") if iso else None


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
