"""`echopilot db upgrade`: idempotent, and safe when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from sqlalchemy import func, select

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


def test_two_upgrades_started_at_once_on_a_fresh_home_both_succeed(
    make_settings: Callable[..., Settings],
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
    outcomes = [(child.wait(timeout=120), *child.communicate()) for child in children]
    for code, _out, err in outcomes:
        assert code == 0, err
    rt = Runtime(settings)
    try:
        assert current_revision(rt.engine) == head_revision()
        with rt.sessions() as session:
            task_types = session.scalar(select(func.count()).select_from(TaskType))
            rules = session.scalar(select(func.count()).select_from(PriceRule))
        assert task_types == rules == 6, "the catalogue was seeded exactly once"
    finally:
        rt.close()
