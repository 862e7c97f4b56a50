"""`echopilot jobs submit|list|show|retry|cancel|approve|reject`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from echopilot.ai.registry import provider_label
from echopilot.cli.common import JobIdArgument, JsonOption, console, output, runtime
from echopilot.config import load_settings
from echopilot.db.engine import read_session
from echopilot.errors import InputError
from echopilot.jobs import intake, views

app = typer.Typer(
    help="Submit, inspect, retry, cancel, approve and reject jobs.", no_args_is_help=True
)
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
    with runtime() as rt, rt.engine.connect() as conn:
        rows = views.listing(conn, status=status, limit=limit, before_id=before)
    output(rows, as_json, _print_table)


@app.command()
def show(
    job_id: Annotated[int, JobIdArgument],
    full_input: Annotated[
        bool,
        typer.Option(
            "--full-input", help=f"The whole input, not its first {views.INPUT_PREVIEW:,} chars."
        ),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Show one job with its input, attempt log and result."""
    with runtime() as rt, read_session(rt.sessions) as session:
        data = views.show(session, job_id, full_input=full_input)
    output(data, as_json, _print_job)


@app.command()
def retry(job_id: Annotated[int, JobIdArgument], as_json: bool = JsonOption) -> None:
    """Queue a failed, dead, cancelled or needs-review job again."""
    with runtime() as rt:
        intake.retry(rt, job_id, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


@app.command()
def cancel(job_id: Annotated[int, JobIdArgument], as_json: bool = JsonOption) -> None:
    """Cancel a job that has not finished."""
    with runtime() as rt:
        intake.cancel(rt, job_id, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


@app.command()
def approve(job_id: Annotated[int, JobIdArgument], as_json: bool = JsonOption) -> None:
    """Accept a needs-review job's answer: it becomes done and is billed."""
    with runtime() as rt:
        intake.approve(rt, job_id, actor=ACTOR)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


@app.command()
def reject(
    job_id: Annotated[int, JobIdArgument],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the job).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Refuse a needs-review job's answer: it ends cancelled and unbilled."""
    with runtime() as rt:
        intake.reject(rt, job_id, actor=ACTOR, reason=reason)
        with read_session(rt.sessions) as session:
            data = views.show(session, job_id)
    output(_brief(data), as_json, _print_job)


INPUT_FILE = "input-file"


def _read_input(text: str | None, path: Path | None) -> str:
    if text is not None and path is not None:
        raise InputError("input", "give --input or --input-file, not both")
    if path is not None:
        return _read_input_file(path, load_settings().max_input_chars)
    if text is None:
        raise InputError("input", "give --input TEXT or --input-file PATH")
    return text


def _read_input_file(path: Path, max_chars: int) -> str:
    """The file's text; refused by its size before it is read whole (UTF-8 takes at most
    4 bytes a character), and refused when it is not UTF-8 text."""
    limit = max_chars * 4
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size > limit:
                raise InputError(
                    INPUT_FILE,
                    f"{str(path)!r} is {size:,} bytes; inputs are limited to {max_chars:,} "
                    "characters (ECHOPILOT_MAX_INPUT_CHARS)",
                )
            data = handle.read(limit + 1)  # devices and pipes report no size
    except IsADirectoryError:
        raise InputError(INPUT_FILE, f"{str(path)!r} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(INPUT_FILE, f"cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(
            INPUT_FILE,
            f"{str(path)!r} holds more than {max_chars:,} characters (ECHOPILOT_MAX_INPUT_CHARS)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            INPUT_FILE, f"{str(path)!r} is not UTF-8 text (byte {exc.start:,} is not valid)"
        ) from None


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
        "payment_link",
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
    if "input" in job:
        _print_input(job)
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


def _print_input(job: dict[str, Any]) -> None:
    total = job["input_chars"]
    if job.get("input_truncated"):
        title = f"input (first {len(job['input']):,} of {total:,} characters; --full-input for all)"
    else:
        title = f"input ({total:,} characters)"
    console.rule(title)
    console.print(job["input"], markup=False, highlight=False)


def _print_table(rows: list[dict[str, Any]]) -> None:
    """One line per job, readable at 80 columns: long names and types end in an ellipsis;
    ids, statuses, money and times are never cut. Below 100 columns the billing column is
    left out (see `jobs show`) and times drop their year."""
    if not rows:
        console.print("no jobs")
        return
    wide = console.width >= WIDE_TABLE
    headers = ["id", "name", "type", "status", "qa", "price", "billing", "created (UTC)"]
    cells = [
        [
            str(r["id"]),
            r["name"],
            r["task_type"],
            r["status"],
            "" if r["qa_score"] is None else f"{r['qa_score']:.0f}",
            r["price_usd"] or "",
            _PAID.get(r["payment_status"], r["payment_status"]),
            (r["created_at"] or "")[:16].replace("T", " ")[0 if wide else 5 :],
        ]
        for r in rows
    ]
    if not wide:
        del headers[6]
        for row in cells:
            del row[6]
    # Rich counts a column's one-space padding inside its width.
    widths = [1 + max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    # Name and type share what the other columns leave.
    fixed = sum(w for h, w in zip(headers, widths, strict=True) if h not in ("name", "type"))
    room = max(14, console.width - fixed - len(headers) - 1)
    widths[2] = min(widths[2], max(7, room // 3))
    widths[1] = min(widths[1], max(7, room - widths[2]))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for header, width in zip(headers, widths, strict=True):
        right = header in ("id", "qa", "price")
        table.add_column(
            header,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if right else "left",
        )
    for row in cells:
        # Names are user text: never read as Rich markup.
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


WIDE_TABLE = 100
_PAID = {"na": "not billed"}
