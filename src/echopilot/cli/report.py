"""`echopilot report daily [--date YYYY-MM-DD] [--json]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from echopilot.cli.common import JsonOption, console, output, runtime

DATE_OPTION = "--date"
app = typer.Typer(help="Reports: the daily report.", no_args_is_help=True)


@app.command("daily")
def daily_command(
    day: Annotated[
        str | None,
        typer.Option(
            DATE_OPTION,
            metavar="YYYY-MM-DD",
            help="The UTC day to report on (default yesterday; today gives a partial day).",
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Write a UTC day's report (JSON, HTML, CSV; a second run replaces that day's files)
    and send its summary line to the alert channels."""
    from echopilot.clock import utcnow
    from echopilot.reports.day import choose
    from echopilot.reports.service import run_by

    # Checked before anything is opened or written.
    chosen = choose(day, utcnow(), field=DATE_OPTION)
    with runtime() as rt:
        result = run_by(rt, actor="cli", day=chosen)
    output(result, as_json, _print_report)


def _print_report(result: dict[str, Any]) -> None:
    def say(text: str) -> None:
        # Paths and the summary line stay whole on one line: scripts read them.
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    state = "" if result["day_complete"] else " (partial: the day is not over)"
    again = " (replaced that day's earlier report)" if result["replaced"] else ""
    say(f"Daily report {result['date']}{state}{again}")
    say(result["summary_line"])
    say(f"Data cut-off: {result['cutoff']}")
    for item in result["late_sources"]:
        say(f"- late: {item['detail']}")
    for kind in ("html", "csv", "json"):
        say(f"{kind}: {result['paths'][kind]}")
    if result["target"] == "log":
        say("No alert channel is set: the summary is recorded in logs/reports.log only.")
    for channel, outcome in result["sent"].items():
        if result["target"] != "log":
            say(f"sent to {channel}: {outcome}")
