"""`echopilot demo seed|reset`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress

from echopilot.cli.common import JsonOption, console, output, runtime

app = typer.Typer(help="Sample history to explore EchoPilot with.", no_args_is_help=True)


@app.command()
def seed(
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Days of history.")] = 30,
    jobs_per_day: Annotated[
        int, typer.Option("--jobs-per-day", min=1, max=20_000, help="Average jobs a day.")
    ] = 20,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    as_json: bool = JsonOption,
) -> None:
    """Load demo history (replacing earlier demo rows; real rows are never touched)."""
    from echopilot import demo

    with runtime() as rt:
        if as_json:
            result = demo.seed(rt, days=days, jobs_per_day=jobs_per_day, random_seed=random_seed)
        else:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("seeding demo history", total=days)
                result = demo.seed(
                    rt,
                    days=days,
                    jobs_per_day=jobs_per_day,
                    random_seed=random_seed,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
    output(
        result.as_dict(),
        as_json,
        lambda d: console.print(
            f"demo history loaded: {d['jobs']} jobs over {d['days']} days for {d['clients']} "
            f"clients ({d['attempts']} attempts). Remove with: echopilot demo reset"
        ),
    )


@app.command()
def reset(as_json: bool = JsonOption) -> None:
    """Remove every demo row."""
    from echopilot import demo

    with runtime() as rt:
        counts = demo.reset(rt)
    output(
        counts,
        as_json,
        lambda c: console.print(
            f"removed {c['jobs']} demo jobs, {c['attempts']} attempts and {c['clients']} clients"
        ),
    )
