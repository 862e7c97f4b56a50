"""`echopilot clients budget`: a client's monthly limit on model spend."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from sqlalchemy import select

from echopilot import audit
from echopilot.cli.common import JsonOption, console, output, runtime
from echopilot.db.engine import write_session
from echopilot.db.models import Client
from echopilot.errors import InputError, NotFoundError
from echopilot.money import micros_text, usd_to_micros

app = typer.Typer(help="Clients.", no_args_is_help=True)


def parse_budget(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InputError("--monthly-usd", f"{text!r} is not an amount in USD") from None
    if not amount.is_finite() or amount <= 0 or amount > 1_000_000:
        raise InputError("--monthly-usd", "must be more than 0 and at most 1000000")
    return amount


@app.command("budget")
def budget_command(
    email: Annotated[str, typer.Argument(help="The client's email address.")],
    monthly_usd: Annotated[
        str | None,
        typer.Option("--monthly-usd", help="Limit on model spend per UTC month, in USD."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the limit.")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Set (or clear) a client's monthly budget: at the limit their jobs wait."""
    if (monthly_usd is None) == (not clear):
        raise InputError("--monthly-usd", "give an amount, or --clear (not both)")
    micros = None if clear else usd_to_micros(parse_budget(str(monthly_usd)))
    with runtime() as rt, write_session(rt.sessions) as session:
        client = session.scalars(select(Client).where(Client.email == email.strip())).first()
        if client is None:
            raise NotFoundError("client", email, "clients appear when a job names them")
        client.monthly_budget_micros = micros
        audit.record(
            session,
            actor="cli",
            action="clients.budget",
            target=f"client:{client.id}",
            details={"monthly_budget_usd": None if micros is None else micros_text(micros)},
        )
        result: dict[str, Any] = {
            "client": client.email,
            "monthly_budget_usd": None if micros is None else micros_text(micros),
        }
    output(
        result,
        as_json,
        lambda r: console.print(
            f"{r['client']}: monthly budget {r['monthly_budget_usd'] or 'none'}", highlight=False
        ),
    )
