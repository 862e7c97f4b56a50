"""`echopilot optimize [--dry-run|--apply|--rollback TYPE]`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from echopilot.cli.common import JsonOption, console, output, runtime
from echopilot.errors import InputError

ROLLBACK_OPTION = "--rollback"


def optimize_command(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the proposal and change nothing (the default)."),
    ] = False,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Write the proposed rates as new versions (new jobs only)."),
    ] = False,
    rollback: Annotated[
        str | None,
        typer.Option(ROLLBACK_OPTION, metavar="TYPE", help="Restore TYPE's previous rate."),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Propose (or apply) each task type's price from its recent QA and margin."""
    from echopilot.finance import optimizer

    if dry_run + apply + (rollback is not None) > 1:
        raise InputError("optimize", "use one of --dry-run, --apply and --rollback TYPE")
    with runtime() as rt:
        if rollback is not None:
            restored = optimizer.rollback(rt, rollback, actor="cli", field=ROLLBACK_OPTION)
            output(restored, as_json, _print_rollback)
            return
        result = optimizer.run_by(rt, actor="cli", dry_run=not apply)
    output(result, as_json, _print_run)


def _print_run(result: dict[str, Any]) -> None:
    head = "Price optimiser (dry run: nothing changed)" if result["dry_run"] else "Price optimiser"
    console.print(head, highlight=False)
    table = Table("type", "rate", "change", "decision", "30 days", box=None, pad_edge=False)
    for p in result["proposals"]:
        effect = p["last_30d"]
        table.add_row(
            p["task_type"],
            f"{_usd(p['old_rate_usd'])} -> {_usd(p['new_rate_usd'])}",
            f"{p['change_pct']}%",
            p["decision"],
            f"{_signed(effect['difference_usd'])} ({effect['jobs']} jobs)",
        )
    console.print(table)
    for p in result["proposals"]:
        console.print(f"- {p['task_type']}: {p['reason']}", highlight=False)
    for note in result["notes"]:
        console.print(note, highlight=False)


def _print_rollback(result: dict[str, Any]) -> None:
    console.print(
        f"{result['task_type']}: rate {_usd(result['from_rate_usd'])} -> "
        f"{_usd(result['to_rate_usd'])} (version {result['restored_version']} of "
        f"{result['restored_version_at'][:16]} restored); new jobs are priced at it",
        highlight=False,
    )


def _usd(text: str) -> str:
    """A rate string ("25.000000") as $25.00, keeping digits past the cent that matter."""
    amount = Decimal(text)
    cents = amount.quantize(Decimal("0.01"))
    return f"${cents}" if cents == amount else f"${amount.normalize()}"


def _signed(text: str) -> str:
    amount = Decimal(text)
    return ("+" if amount >= 0 else "-") + f"${abs(amount):.2f}"
