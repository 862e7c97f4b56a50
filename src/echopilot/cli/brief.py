"""`echopilot brief [--email [--resend]] [--json]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from echopilot.cli.common import JsonOption, console, output, runtime


def brief_command(
    email: Annotated[
        bool,
        typer.Option(
            "--email", help="Also email it to ALERT_TO (and a short version to the alert channels)."
        ),
    ] = False,
    resend: Annotated[
        bool,
        typer.Option("--resend", help="With --email: send even if this brief was sent before."),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Make the CEO brief now: KPIs, anomalies with their evidence, actions for the next
    24 hours and 7 days; written as JSON, HTML and Markdown under reports/briefs/."""
    from echopilot.briefs.service import run_by

    if resend and not email:
        raise typer.BadParameter("--resend needs --email", param_hint="--resend")
    with runtime() as rt:
        result = run_by(rt, actor="cli", send=email, resend=resend)
    output(result, as_json, _print_brief)


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
