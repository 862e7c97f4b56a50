"""`echopilot doctor`: what is misconfigured or unreachable, and how to fix it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from echopilot import __version__
from echopilot.cli.common import JsonOption, console, output

LABELS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "off": "off", "skip": "skip"}


def doctor_command(
    as_json: bool = JsonOption,
    send_test: Annotated[
        bool,
        typer.Option("--send-test", help="Also send each alert channel a test message."),
    ] = False,
) -> None:
    """Check every setting and reach every configured integration (database, queue, model,
    email, alert channels, Stripe, Notion), the home folder, the clock and the processes.
    Changes nothing. Exit 1 when something required fails."""
    from echopilot.doctor import run

    report = run(send_test=send_test)
    data = report.as_dict() | {"version": __version__}
    output(data, as_json, _print)
    if not report.ok:
        raise typer.Exit(1)


def _say(text: str) -> None:
    # Messages quote servers and settings: text, never Rich markup.
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _print(d: dict[str, Any]) -> None:
    width = max(len(c["check"]) for c in d["checks"])
    for c in d["checks"]:
        _say(f"{LABELS[c['status']]:<4}  {c['check']:<{width}}  {c['summary']}")
        if c["fix"]:
            _say(f"{'':<4}  {'':<{width}}  fix: {c['fix']}")
    verdict = "nothing required fails" if d["ok"] else f"{d['failed']} required check(s) failed"
    _say(f"echopilot {d['version']}: {verdict}, {d['warnings']} warning(s).")
