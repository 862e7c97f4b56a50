"""`echopilot finance`: revenue, cost, profit, margin and ROI, exact to the cent."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from echopilot.cli.common import JsonOption, console, output, runtime
from echopilot.errors import InputError
from echopilot.finance.metrics import MAX_DAYS, WINDOWS


def finance_command(
    days: Annotated[
        int | None,
        typer.Option(
            "--days", help=f"One window of this many days (1-{MAX_DAYS}) instead of 7 and 30."
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Finance over the last 7 and 30 days: by task type, client and model; money owed."""
    from echopilot.finance.metrics import finance

    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InputError("--days", f"a whole number of days from 1 to {MAX_DAYS}; got {days}")
    with runtime() as rt, rt.engine.connect() as conn:
        result = finance(conn, days=WINDOWS if days is None else (days,))
    output(result, as_json, _print_finance)


def _print_finance(result: dict[str, Any]) -> None:
    for window in result["windows"].values():
        console.print(
            f"[bold]Last {window['days']} days[/bold] (to {window['to']}): {window['jobs']} jobs "
            f"finished, {window['submitted']} submitted",
            highlight=False,
        )
        console.print(
            f"  revenue billed ${window['revenue']}  paid ${window['revenue_paid']}  "
            f"cost ${window['cost']}  profit ${window['profit']}  "
            f"margin {_or_dash(window['margin_pct'], '%')}  ROI {_or_dash(window['roi'])}",
            highlight=False,
        )
        console.print(
            f"  average QA {_or_dash(window['avg_qa'])}  failure rate "
            f"{_or_dash(window['failure_rate_pct'], '%')}  latency p50 "
            f"{_or_dash(window['latency']['p50_ms'], ' ms')} p95 "
            f"{_or_dash(window['latency']['p95_ms'], ' ms')}",
            highlight=False,
        )
        for dim, rows in window["breakdown"].items():
            if rows:
                console.print(_table(dim, rows))
    owed = result["owed"]
    ageing = owed["ageing"]
    console.print(
        f"Owed: ${owed['amount']} on {owed['jobs']} jobs (0-7 days ${ageing['0_7d']}, "
        f"8-30 days ${ageing['8_30d']}, over 30 days ${ageing['over_30d']})",
        highlight=False,
    )
    for note in result["notes"]:
        console.print(f"- {note}", highlight=False)


def _table(dim: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"by {dim.replace('_', ' ')}", title_justify="left")
    for column in ("", "jobs", "revenue", "cost", "profit", "margin", "ROI", "QA"):
        table.add_column(column, justify="left" if not column else "right")
    for row in rows:
        table.add_row(
            (row.get("name") or row["key"] or "(none)").split(" <")[0],
            str(row["jobs"]),
            row["revenue"],
            row["cost"],
            _cents(row["profit"]),
            _or_dash(row["margin_pct"], "%"),
            _or_dash(row["roi"]),
            _or_dash(row["avg_qa"]),
        )
    return table


def _cents(amount: str) -> str:
    """A table's profit to the cent (the JSON keeps it to the micro-dollar)."""
    return str(Decimal(amount).quantize(Decimal("0.01")))


def _or_dash(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"
