"""`echopilot jobs submit|list|show|retry|cancel`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from echopilot.ai.registry import provider_label
from echopilot.cli.common import JsonOption, console, output, runtime
from echopilot.db.engine import read_session
from echopilot.errors import InputError
from echopilot.jobs import intake, views

app = typer.Typer(help="Submit, inspect, retry and cancel jobs.", no_args_is_help=True)
ACTOR = "cli"


@app.command()
def submit(
    name: Annotated[str, typer.Option("--name", help="A short name for the job.")],
    task_type: Annotated[str, typer.Option("--type", help="Task type, e.g. summary, research.")],
    input_text: Annotated[str | None, typer.Option("--input", help="The job's input text.")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="Read the input from this file.")
    ] = None,
    client: Annotated[str | None, typer.Option("--client", help="Client email.")] = None,
    qa_target: Annotated[
        int | None, typer.Option("--qa-target", help="QA pass mark 0-100 for this job.")
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="-100..100, higher first.")] = 0,
    as_json: bool = JsonOption,
) -> None:
    """Submit a job; prints the new job with its id."""
    text = _read_input(input_text, input_file)
    request = intake.JobRequest(
        name=name,
        task_type=task_type,
        input=text,
        client_email=client,
        qa_target=qa_target,
        priority=priority,
        source="cli",
    )
    with runtime() as rt:
        job = intake.submit(rt, request, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job.id)
    output(_brief(data), as_json, _print_job)


@app.command("list")
def list_jobs(
    status: Annotated[
        str | None, typer.Option("--status", help="Only jobs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-500).")] = 20,
    before: Annotated[
        int | None, typer.Option("--before", help="Continue after this job id.")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """List jobs, newest first."""
    with runtime() as rt, read_session(rt.sessions) as session:
        rows = views.listing(session, status=status, limit=limit, before_id=before)
    output(rows, as_json, _print_table)


@app.command()
def show(
    job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: bool = JsonOption
) -> None:
    """Show one job with its attempt log and result."""
    with runtime() as rt, read_session(rt.sessions) as session:
        data = views.show(session, job_id)
    output(data, as_json, _print_job)


@app.command()
def retry(
    job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: bool = JsonOption
) -> None:
    """Queue a failed, dead, cancelled or needs-review job again."""
    with runtime() as rt:
        intake.retry(rt, job_id, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


@app.command()
def cancel(
    job_id: Annotated[int, typer.Argument(help="Job id.")], as_json: bool = JsonOption
) -> None:
    """Cancel a job that has not finished."""
    with runtime() as rt:
        intake.cancel(rt, job_id, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


def _read_input(text: str | None, path: Path | None) -> str:
    if text is not None and path is not None:
        raise InputError("input", "give --input or --input-file, not both")
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError("input_file", f"cannot read {str(path)!r}: {exc}") from None
    if text is None:
        raise InputError("input", "give --input TEXT or --input-file PATH")
    return text


def _brief(data: dict[str, Any]) -> dict[str, Any]:
    """The job object without its (possibly long) result."""
    return {k: v for k, v in data.items() if k != "result"}


def _print_job(job: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key in (
        "id",
        "name",
        "task_type",
        "status",
        "provider",
        "model",
        "attempts",
        "qa_score",
        "qa_threshold",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "price_usd",
        "payment_status",
        "created_at",
        "finished_at",
        "error",
    ):
        value = job.get(key)
        if key == "cost_usd" and value is None and job.get("unpriced_models"):
            value = f"unknown (no price for {', '.join(job['unpriced_models'])})"
        if key == "provider":
            value = provider_label(value)
        table.add_row(key, Text("" if value is None else str(value)))
    console.print(table)
    attempts = job.get("attempt_log") or []
    if attempts:
        log = Table(title="attempts")
        for col in ("n", "status", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "error"):
            log.add_column(col)
        for a in attempts:
            log.add_row(
                *(
                    Text("" if a[c] is None else str(a[c]))
                    for c in (
                        "n",
                        "status",
                        "tokens_in",
                        "tokens_out",
                        "cost_usd",
                        "latency_ms",
                        "error",
                    )
                )
            )
        console.print(log)
    if job.get("result"):
        console.rule("result")
        console.print(job["result"], markup=False, highlight=False)


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table()
    for col in ("id", "name", "type", "status", "att", "qa", "cost", "price", "paid", "created"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            Text(r["name"]),  # user text: never read as Rich markup
            r["task_type"],
            r["status"],
            str(r["attempts"]),
            "" if r["qa_score"] is None else f"{r['qa_score']:.1f}",
            r["cost_usd"] or "unknown",
            r["price_usd"] or "",
            r["payment_status"],
            (r["created_at"] or "")[:19],
        )
    console.print(table)
    if not rows:
        console.print("no jobs")
