"""`echopilot up`: everything on one machine (API, worker, scheduler), supervised."""

from __future__ import annotations

import os

import typer

from echopilot import keys
from echopilot.ai.registry import provider_label
from echopilot.cli.common import runtime
from echopilot.cli.scheduler import report_alert_channels
from echopilot.cli.serve import banner
from echopilot.config import load_settings
from echopilot.scheduler import control


def up() -> None:
    """Run the API, a worker and the scheduler; Ctrl-C or SIGTERM stops them all."""
    from echopilot.supervisor import Supervisor, children

    # One `up` per home, refused before anything is printed or started (exit 2). The lock
    # is held for up's whole life; the kernel drops it if up is killed.
    with control.hold_up_lock(load_settings()), runtime("up", console_logs=True) as rt:
        settings = rt.settings
        # A new `up` runs everything, even if a scheduler was stopped under the last one.
        control.stopped_marker(settings).unlink(missing_ok=True)
        key = keys.load_or_create(settings)  # before the API child, so it is printed here
        banner(settings, key, settings.host, settings.port)
        typer.echo(f"Database: {rt.engine.url.render_as_string(hide_password=True)}")
        typer.echo(f"Queue: {settings.resolved_queue_url.split('@')[-1]}")
        typer.echo(f"AI provider: {provider_label(settings.provider_name)}")
        report_alert_channels(settings)
        typer.echo("Ctrl-C stops everything.")
        code = Supervisor(children(rt, dict(os.environ))).run()
    raise typer.Exit(code)
