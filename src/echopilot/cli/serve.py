"""`echopilot serve`: the HTTP API and dashboard under uvicorn."""

from __future__ import annotations

import stat
import sys
from typing import Annotated, Any

import typer

from echopilot import keys
from echopilot.cli.common import runtime
from echopilot.config import Settings, load_settings


def banner(settings: Settings, key: keys.DashboardKey, host: str, port: int) -> None:
    """What a user needs to get in; the key itself only when it was just generated."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    typer.echo(f"EchoPilot dashboard: http://{shown_host}:{port}/dashboard")
    if key.generated and sys.stdout.isatty():
        typer.echo(f"New dashboard key (shown once, kept in {key.source}): {key.value}")
    elif key.generated:
        # Output that goes to a file or a pipe is kept and shared: never put the key there.
        typer.echo(f"New dashboard key generated into {key.source} (mode 0600); read it there")
    else:
        where = "the DASHBOARD_KEY setting" if key.source == "DASHBOARD_KEY" else key.source
        typer.echo(f"Dashboard key: in {where}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"Listening on {host}: reachable from the network.")
    mode = stat.S_IMODE(settings.home.stat().st_mode)
    if mode & 0o077:  # a home made by an older release, or by hand
        typer.echo(
            f"Note: {settings.home} can be read by other users (mode {mode:o}) and holds client "
            f"data; `chmod 700 {settings.home}` keeps it private."
        )


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Bind address (ECHOPILOT_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (ECHOPILOT_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Server processes (ECHOPILOT_API_WORKERS)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No banner (used by `up`).")] = False,
) -> None:
    """Serve the HTTP API and the dashboard."""
    import uvicorn

    from echopilot.api.app import create_app
    from echopilot.api.pool import connections_needed
    from echopilot.api.server import uvicorn_options

    threads = load_settings().resolved_api_threads
    with runtime("api", console_logs=True, pool_size=connections_needed(threads)) as rt:
        settings = rt.settings
        key = keys.load_or_create(settings)
        bind_host, bind_port = host or settings.host, port or settings.port
        if not quiet:
            banner(settings, key, bind_host, bind_port)
        processes = workers or settings.api_workers
        options: dict[str, Any] = {
            **uvicorn_options(settings),
            "host": bind_host,
            "port": bind_port,
        }
        if processes == 1:
            uvicorn.run(create_app(rt, key.value), **options)
        else:
            # Several processes need an app factory each can import.
            uvicorn.run(
                "echopilot.api.app:app_from_environment", factory=True, workers=processes, **options
            )
