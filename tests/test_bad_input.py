"""Bad input through the CLI: exit code 2, one line on stderr naming the field, nothing written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from echopilot.db.models import Job
from echopilot.runtime import Runtime
from tests.conftest import env_for, run_cli

TASK_TYPES = ("data_transform", "drafting", "other", "research", "summary", "transcription")
SUBMIT = ("jobs", "submit", "--name", "a job", "--type", "summary")


def job_count(rt: Runtime) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line the CLI printed on stderr, after checking the exit code is 2."""
    assert result.returncode == 2, f"exit {result.returncode}; stderr: {result.stderr!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {result.stderr!r}"
    return lines[0]


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    """A migrated database that the CLI child shares."""
    return make_runtime()


def test_it_rejects_an_empty_input(rt: Runtime) -> None:
    line = the_error_line(run_cli(rt.settings, *SUBMIT, "--input", ""))
    assert "input" in line
    assert job_count(rt) == 0


def test_it_rejects_an_input_over_200000_characters(rt: Runtime, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 200_001, encoding="utf-8")
    line = the_error_line(run_cli(rt.settings, *SUBMIT, "--input-file", str(big)))
    assert "input" in line
    assert "200,000" in line or "200000" in line, "the message states the limit"
    assert job_count(rt) == 0


def test_it_rejects_an_unknown_task_type_and_lists_the_known_ones(rt: Runtime) -> None:
    result = run_cli(
        rt.settings, "jobs", "submit", "--name", "a job", "--type", "poetry", "--input", "text"
    )
    line = the_error_line(result)
    assert "task_type" in line
    assert "poetry" in line
    for known in TASK_TYPES:
        assert known in line, f"the known type {known!r} is listed"
    assert job_count(rt) == 0


def test_it_rejects_a_negative_qa_target(rt: Runtime) -> None:
    line = the_error_line(run_cli(rt.settings, *SUBMIT, "--input", "text", "--qa-target", "-5"))
    assert "qa_target" in line
    assert job_count(rt) == 0


def test_it_rejects_input_and_input_file_together(rt: Runtime, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("from a file", encoding="utf-8")
    result = run_cli(rt.settings, *SUBMIT, "--input", "inline", "--input-file", str(source))
    line = the_error_line(result)
    assert "input" in line
    assert job_count(rt) == 0


def test_it_rejects_a_missing_input_file(rt: Runtime, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.txt"
    line = the_error_line(run_cli(rt.settings, *SUBMIT, "--input-file", str(missing)))
    assert "input_file" in line
    assert "no-such-file.txt" in line
    assert job_count(rt) == 0


@pytest.mark.parametrize("command", ["show", "retry", "cancel"])
def test_it_reports_an_unknown_job_id(rt: Runtime, command: str) -> None:
    line = the_error_line(run_cli(rt.settings, "jobs", command, "999999"))
    assert "999999" in line
    assert "not found" in line
    assert job_count(rt) == 0


def test_it_rejects_an_unknown_status_filter(rt: Runtime) -> None:
    line = the_error_line(run_cli(rt.settings, "jobs", "list", "--status", "nonsense"))
    assert "status" in line
    assert "queued" in line, "the message lists the statuses that exist"
    assert job_count(rt) == 0


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("ECHOPILOT_LEASE_SECONDS", "abc", (*SUBMIT, "--input", "text")),
        ("ECHOPILOT_AI_PROVIDER", "gpt", ("config", "show")),
    ],
)
def test_a_bad_setting_makes_a_command_exit_2_naming_the_setting(
    rt: Runtime, variable: str, value: str, command: tuple[str, ...]
) -> None:
    env = {**env_for(rt.settings), variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "echopilot", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=rt.settings.home.parent,
    )
    line = the_error_line(result)
    assert variable in line
    assert value in line, "the message shows the bad value"
    assert job_count(rt) == 0
