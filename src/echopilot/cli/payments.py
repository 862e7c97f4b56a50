"""`echopilot payments status|list|show|mark-paid|reconcile`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from echopilot.cli.common import JobIdArgument, JsonOption, console, output, runtime
from echopilot.errors import OperationFailed

app = typer.Typer(
    help="Payments: Stripe links and events, money recorded by hand, reconciliation.",
    no_args_is_help=True,
)


@app.command("status")
def status_command(as_json: bool = JsonOption) -> None:
    """Jobs by payment status, money in over 7 and 30 days, and when Stripe was reconciled."""
    from echopilot.payments.service import overview

    with runtime() as rt:
        data = overview(rt)
    output(data, as_json, _print_status)


def _print_status(d: dict[str, Any]) -> None:
    state = "on" if d["configured"] else "off (set STRIPE_SECRET_KEY)"
    hook = "on" if d["webhook_configured"] else "off (set STRIPE_WEBHOOK_SECRET)"
    console.print(f"Stripe: {state}; webhook: {hook}", highlight=False, markup=False)
    counts = ", ".join(f"{k} {v}" for k, v in d["by_status"].items() if v) or "no billed job yet"
    console.print(f"Billed jobs: {counts}", highlight=False, markup=False)
    for days in (7, 30):
        m = d[f"paid_{days}d"]
        console.print(
            f"Last {days} days: received ${m['received']}, refunded ${m['refunded']}, "
            f"disputed ${m['disputed']}, reinstated ${m['reinstated']}, net ${m['net']}",
            highlight=False,
            markup=False,
        )
    console.print(
        f"Open disputes: {d['open_disputes']}; events waiting for their job: {d['events_waiting']}",
        highlight=False,
        markup=False,
    )
    if d["reconciled_at"]:
        console.print(f"Last reconciled: {d['reconciled_at']}", highlight=False, markup=False)
    if d["freshness"]:
        console.print(f"- {d['freshness']}", highlight=False, markup=False)


@app.command("list")
def list_command(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only this payment status (unpaid, paid, refunded, ...), or 'owed' for every "
            "job that still owes.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-1000).")] = 50,
    as_json: bool = JsonOption,
) -> None:
    """Billed jobs, newest first, with price, money received and payment link."""
    from echopilot.payments.service import list_jobs

    with runtime() as rt:
        data = list_jobs(rt, status=status, limit=limit)
    output(data, as_json, _print_list)


def _print_list(d: dict[str, Any]) -> None:
    if not d["jobs"]:
        shown = f" is {d['status']}" if d["status"] else " yet"
        console.print(f"No billed job{shown}.", highlight=False, markup=False)
        return
    table = Table("job", "status", "price", "received", "client", "finished", "link / problem")
    for j in d["jobs"]:
        # Names, clients and Stripe's messages are text, never Rich markup.
        cells = (
            f"{j['id']} {j['name'][:30]}",
            j["payment_status"],
            j["price"] or "-",
            j["net_received"],
            j["client"] or "-",
            (j["finished_at"] or "-")[:16],
            j["problem"] or j["payment_link"] or "-",
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


@app.command("show")
def show_command(job_id: Annotated[int, JobIdArgument], as_json: bool = JsonOption) -> None:
    """One job's money: its link, every payment, refund and dispute, and Stripe's events."""
    from echopilot.payments.service import job_detail

    with runtime() as rt:
        data = job_detail(rt, job_id)
    output(data, as_json, _print_show)


def _print_show(d: dict[str, Any]) -> None:
    console.print(
        f"Job {d['job_id']}: {d['payment_status']}; price ${d['price'] or '-'}; "
        f"received net ${d['net_received']}",
        highlight=False,
        markup=False,
    )
    if d["payment_link"]:
        console.print(f"Link: {d['payment_link']}", highlight=False, markup=False)
    link = d["link"] or {}
    for label in ("error", "failure"):
        if link.get(label):
            console.print(f"Last {label}: {link[label]}", highlight=False, markup=False)
    for e in d["ledger"]:
        who = e["actor"] or e["stripe_object"] or ""
        console.print(
            f"  {e['moved_at'][:16]}  {e['kind']:<12} {e['amount']:>10} {e['currency']}  "
            f"{e['method']} {who}" + (f"  ({e['note']})" if e["note"] else ""),
            highlight=False,
            markup=False,
        )
    for disp in d["disputes"]:
        console.print(
            f"  dispute {disp['id']}: {disp['status']} ${disp['amount']} ({disp['reason']})",
            highlight=False,
            markup=False,
        )


@app.command("mark-paid")
def mark_paid_command(
    job_id: Annotated[int, JobIdArgument],
    amount: Annotated[
        str | None,
        typer.Option("--amount", help="USD received, e.g. 12.50 (default: the job's price)."),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="How it was paid (bank transfer, cash...).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Record a payment made outside Stripe (audited); the job is then paid."""
    from echopilot.payments.service import mark_paid

    with runtime() as rt:
        data = mark_paid(rt, job_id, actor="cli", amount=amount, note=note)
    output(data, as_json, _print_mark_paid)


def _print_mark_paid(r: dict[str, Any]) -> None:
    console.print(
        f"Job {r['job_id']}: ${r['amount']} recorded; payment status {r['payment_status']}",
        highlight=False,
        markup=False,
    )
    if r["link"]:
        console.print(f"Stripe link: {r['link']}", highlight=False, markup=False)


@app.command("reconcile")
def reconcile_command(as_json: bool = JsonOption) -> None:
    """Read Stripe's recent events now, apply any the webhook missed, make pending links."""
    from echopilot.clock import utcnow
    from echopilot.db.engine import write_session
    from echopilot.payments import reconcile
    from echopilot.scheduler.store import record_manual

    with runtime() as rt:
        started = utcnow()
        data = reconcile.run(rt, actor="cli", now=started)
        if data["ok"] and not data.get("skipped"):
            with write_session(rt.sessions) as session:
                record_manual(
                    session, "payment_reconcile", started=started, summary=data, actor="cli"
                )
    if not data["ok"]:
        raise OperationFailed(f"Stripe not reconciled: {data['error']}")
    output(data, as_json, _print_reconcile)


def _print_reconcile(d: dict[str, Any]) -> None:
    if d.get("skipped"):
        console.print(d["notes"][0], highlight=False, markup=False)
        return
    console.print(
        f"Read {d['events_read']} events since {d['read_from']}; applied {d['events_applied']} "
        f"the webhook missed; resolved {d.get('pending_resolved', 0)} waiting; made "
        f"{d['links_created']} links ({d.get('links_waiting', 0)} still waiting).",
        highlight=False,
        markup=False,
    )
