"""`echopilot alerts check|list|silence|unsilence`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from echopilot.cli.common import JsonOption, console, output, runtime

app = typer.Typer(
    help="Alerts: check the rules, list alerts, silence a rule.", no_args_is_help=True
)


@app.command("check")
def check_command(as_json: bool = JsonOption) -> None:
    """Evaluate every alert rule now and send what fires (or resolves)."""
    from echopilot.alerts.channels import require_valid
    from echopilot.alerts.engine import check

    with runtime() as rt:
        require_valid(rt.settings)
        result = check(rt, actor="cli")
    output(result, as_json, _print_check)


def _print_check(result: dict[str, Any]) -> None:
    if not result["firing"]:
        console.print("No alert condition holds.")
    for finding in result["firing"]:
        console.print(f"[{finding['severity']}] {finding['title']}", highlight=False)
    for key in result["opened"]:
        console.print(f"opened: {key}", highlight=False)
    for key in result["resolved"]:
        console.print(f"resolved: {key}", highlight=False)
    for key in result["silenced"]:
        console.print(f"silenced (not sent): {key}", highlight=False)
    for sent in result["sent"]:
        for channel, state in sent["channels"].items():
            console.print(f"{sent['kind']} {sent['key']} -> {channel}: {state}", highlight=False)
    for error in result["rule_errors"]:
        console.print(f"rule {error['rule']} could not run: {error['error']}", highlight=False)
    if result["target"] == "log":
        console.print("No alert channel is set: alerts are recorded in var/logs/alerts.log only.")


@app.command("list")
def list_command(as_json: bool = JsonOption) -> None:
    """Open alerts, the last 7 days' resolved ones, and running silences."""
    from echopilot.alerts.views import listing

    with runtime() as rt:
        data = listing(rt)
    output(data, as_json, _print_list)


def _print_list(data: dict[str, Any]) -> None:
    table = Table("state", "severity", "alert", "since", "sent")
    for alert in data["open"] + data["recent"]:
        table.add_row(
            alert["status"],
            alert["severity"],
            alert["title"],
            (alert["since"] or "")[:16],
            (alert["last_sent_at"] or "-")[:16],
        )
    console.print(table if data["open"] or data["recent"] else "No alerts in the last 7 days.")
    for silence in data["silences"]:
        console.print(f"silenced: {silence['rule']} until {silence['until'][:16]}", highlight=False)
    console.print(
        "channels: " + (", ".join(data["channels"]) or "none (log only)"), highlight=False
    )
    for problem in data["channel_problems"]:
        console.print(f"not used: {problem}", highlight=False)


@app.command("silence")
def silence_command(
    rule: Annotated[str, typer.Argument(help="The rule to mute (see `alerts list --json`).")],
    length: Annotated[
        str, typer.Option("--for", help="How long: 30m, 2h, 1d (at most 30d).")
    ] = "1h",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Mute RULE for a while (maintenance); it ends by itself."""
    from echopilot.alerts.silences import check_rule, parse_duration, silence

    check_rule(rule)
    duration = parse_duration(length)
    with runtime() as rt:
        result = silence(rt, rule, duration, actor="cli", reason=reason)
    output(
        result,
        as_json,
        lambda r: console.print(f"{r['rule']} silenced until {r['until']}", highlight=False),
    )


@app.command("unsilence")
def unsilence_command(
    rule: Annotated[str, typer.Argument(help="The rule to unmute.")],
    as_json: bool = JsonOption,
) -> None:
    """End RULE's silence now."""
    from echopilot.alerts.silences import check_rule, lift

    check_rule(rule)
    with runtime() as rt:
        count = lift(rt, rule, actor="cli")
    output(
        {"rule": rule, "lifted": count},
        as_json,
        lambda r: console.print(f"{r['rule']} is no longer silenced", highlight=False),
    )
