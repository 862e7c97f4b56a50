"""`echopilot db upgrade`: idempotent, and safe when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from echopilot.config import Settings
from echopilot.db.migrate import current_revision, head_revision
from echopilot.db.models import PriceRule, TaskType
from echopilot.runtime import Runtime
from tests.conftest import env_for, run_cli


def test_a_second_upgrade_reports_the_database_is_already_at_head(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    head = head_revision()
    assert head
    first = run_cli(settings, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "upgraded" in first.stdout
    assert head in first.stdout
    second = run_cli(settings, "db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert "already at revision" in second.stdout
    assert head in second.stdout


def catalogue(rt: Runtime) -> tuple[list[str], list[str]]:
    with rt.sessions() as session:
        types = session.scalars(select(TaskType.name).order_by(TaskType.name))
        rules = session.scalars(select(PriceRule.task_type).order_by(PriceRule.task_type))
        return list(types), list(rules)


def test_two_upgrades_started_at_once_on_a_fresh_home_both_succeed(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    assert not settings.home.exists()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "echopilot", "db", "upgrade"],
            env=env_for(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=settings.home.parent,
        )
        for _ in range(2)
    ]
    for child in children:
        _out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err

    raced = Runtime(settings)
    reference = Runtime(make_settings(home=tmp_path / "reference"))
    try:
        assert current_revision(raced.engine) == head_revision()
        reference.migrate()
        types, rules = catalogue(raced)
        assert types, "the catalogue of task types was seeded"
        assert (types, rules) == catalogue(reference), "seeded once, as by a single upgrade"
    finally:
        raced.close()
        reference.close()
