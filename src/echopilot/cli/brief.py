"""`echopilot brief [--email [--resend]] [--json]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from echopilot.cli.common import EXIT_FAILED, JsonOption, console, output, runtime


def brief_command(
    email: Annotated[
        bool,
        typer.Option(
            "--email", help="Also email it to ALERT_TO (and a short version to the alert channels)."
        ),
    ] = False,
    stamp: Annotated[
        str | None,
        typer.Option(
            "--stamp",
            metavar="STAMP",
            help="With --email: email this earlier brief instead of making a new one.",
        ),
    ] = None,
    resend: Annotated[
        bool,
        typer.Option(
            "--resend",
            help="With --email: send an earlier brief (--stamp, default the newest) again.",
        ),
    ] = False,
    as_json: bool = JsonOption,
) -> int:
    """Make the CEO brief now: KPIs, anomalies with their evidence, actions for the next
    24 hours and 7 days; written as JSON, HTML and Markdown under reports/briefs/."""
    from echopilot.briefs import files
    from echopilot.briefs.service import email_by, run_by

    if (resend or stamp) and not email:
        raise typer.BadParameter("needs --email", param_hint="--resend" if resend else "--stamp")
    if stamp is not None and not files.STAMP.match(stamp):
        raise typer.BadParameter("a brief's stamp looks like 20261203_080000", param_hint="--stamp")
    with runtime() as rt:
        if stamp or resend:
            sent = email_by(rt, actor="cli", stamp=stamp, resend=resend)
            output(sent, as_json, _print_email)
            return 0 if sent["sent"] else EXIT_FAILED  # asked only to send: it did not
        result = run_by(rt, actor="cli", send=email)
    output(result, as_json, _print_brief)
    # A mail server that failed is a failure a cron job must see; mail not set up is a
    # choice, said in the output.
    return EXIT_FAILED if (result.get("email") or {}).get("status") == "failed" else 0


def _print_email(sent: dict[str, Any]) -> None:
    if sent["sent"]:
        text = f"Brief {sent['stamp']} emailed to {', '.join(sent['to'])}."
    else:
        text = f"Brief {sent['stamp']} not emailed: {sent['reason']}"
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _print_brief(b: dict[str, Any]) -> None:
    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(b["headline"])
    say(b["summary"])
    say(f"Freshness: {b['freshness']['line']}")
    say(
        f"Confidence: {b['confidence']['level']} ({b['confidence']['score']}); "
        f"summary: {b['narrative']['source']}; provider: {b['provider']}"
    )
    for risk in b["top_risks"]:
        say(f"- {risk['severity'].upper()}: {risk['title']}")
    for title, key in (("Next 24 hours", "actions_next_24h"), ("Next 7 days", "actions_next_7d")):
        if b[key]:
            say(f"{title}:")
            for a in b[key]:
                say(f"  [{a['priority']}] {a['task']} ({a['owner']}, {a['eta_hours']} h)")
    for kind in ("html", "md", "json"):
        say(f"{kind}: {b['paths'][kind]}")
    sent = b.get("email") or {}
    status = sent.get("status")
    if status == "sent":
        say(f"Emailed to {', '.join(sent['to'])}.")
    elif status in ("failed", "not_configured"):
        say(f"Not emailed: {sent.get('reason')}")
