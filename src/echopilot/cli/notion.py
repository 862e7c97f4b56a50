"""`echopilot notion check|sync|status`."""

from __future__ import annotations

from typing import Any

import typer

from echopilot.cli.common import JsonOption, console, output, runtime

app = typer.Typer(
    help="The Notion connector: tasks from a Notion queue, results written back.",
    no_args_is_help=True,
)


def _say(text: str) -> None:
    # Database names, property names and Notion's messages are text, never Rich markup.
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("check")
def check_command(as_json: bool = JsonOption) -> None:
    """Check the token and both databases' properties; turns a stopped connector back on
    when everything passes. Exit 1 when something is wrong."""
    from echopilot.notion import service

    with runtime() as rt:
        data = service.check(rt, actor="cli")
    output(data, as_json, _print_check)
    if not data["ok"]:
        raise typer.Exit(1)


def _print_check(d: dict[str, Any]) -> None:
    if d["ok"]:
        queue = d["queue"]
        _say(f"Notion connector on: the queue database is usable (title {queue['title']!r}).")
        optional = sorted(queue["types"])
        _say("Queue properties found: " + ", ".join(optional))
        if d["joblog"]:
            _say("The Job Log database is usable.")
        return
    _say(f"Notion connector {d['status']}:")
    for problem in d["problems"]:
        _say(f"- {problem}")


@app.command("sync")
def sync_command(as_json: bool = JsonOption) -> None:
    """Poll now: take ticked pages, write jobs back (pending writes too) and wait for
    Notion to show the writes (up to ECHOPILOT_NOTION_CONFIRM_SECONDS)."""
    from echopilot.notion import service

    with runtime() as rt:
        data = service.sync_by(rt, actor="cli")
    output(data, as_json, _print_sync)


def _print_sync(d: dict[str, Any]) -> None:
    _say(
        f"Read {d['seen']} ticked pages: took {d['taken']} as jobs, refused "
        f"{len(d['refused'])}, {d['already_taken']} already taken."
    )
    for refused in d["refused"]:
        _say(f"- page {refused['page_id']}: {refused['why']}")
    lag = d["worst_lag_seconds"]
    _say(
        f"Wrote {d['written']} pages; Notion showed {d['confirmed']}"
        + (f" (worst lag {lag} s)" if lag is not None else "")
        + f"; {d['went_pending']} not shown in time (pending); {d['joblog_rows']} Job Log rows."
    )
    for error in d["errors"]:
        _say(f"- {error}")


@app.command("status")
def status_command(as_json: bool = JsonOption) -> None:
    """The connector's state, last poll, pages taken, pending write-backs and worst lag."""
    from echopilot.clock import utcnow
    from echopilot.notion import service

    with runtime() as rt:
        data = service.status(rt, now=utcnow())
    output(data, as_json, _print_status)


def _print_status(d: dict[str, Any]) -> None:
    _say(f"Notion connector: {d['status']}" + (f" ({d['reason']})" if d["reason"] else ""))
    if not d["enabled"]:
        return
    lag = d["worst_lag_seconds_24h"]
    _say(
        f"Last poll: {d['polled_at'] or 'never'}"
        + (f" (failed: {d['poll_error']})" if d["poll_error"] else "")
    )
    _say(
        f"Pages taken: {d['pages_taken']} ({d['pages_taken_24h']} in 24 h); write-backs "
        f"pending: {d['pending_writes']}, being confirmed: {d['verifying_writes']}; worst lag "
        f"in 24 h: {'-' if lag is None else f'{lag} s'}"
    )
