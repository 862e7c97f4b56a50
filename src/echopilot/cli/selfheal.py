"""`echopilot self-heal`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from echopilot.cli.common import JsonOption, console, output, runtime


def self_heal_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Re-queue stuck and failed jobs, end hopeless ones, list follow-ups."""
    from echopilot.selfheal.heal import run_by

    with runtime() as rt:
        result = run_by(rt, actor="cli", dry_run=dry_run)
    output(result, as_json, _print_heal)


def _print_heal(result: dict[str, Any]) -> None:
    head = "Self-heal (dry run: nothing changed)" if result["dry_run"] else "Self-heal"
    console.print(
        f"{head}: retried {result['retried_count']}, recovered {result['recovered_stuck']} "
        f"stuck, {result['dead']} made dead, {len(result['eligible_unpaid'])} unpaid to "
        "follow up",
        highlight=False,
    )
    for note in result["notes"]:
        console.print(f"- {note}", highlight=False)
