"""Bad input through the CLI: exit code 2, one line on stderr naming the field, nothing written.

Every case is a separate `echopilot` child process. They share one home and a module fixture
runs them concurrently (one per CPU), because each costs over a second of start-up; every
submitted case carries its own --name, so "nothing written" is checked per case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from echopilot.config import load_settings
from echopilot.db.models import Job
from echopilot.runtime import Runtime
from tests.conftest import FAST, env_for, run_cli

TASK_TYPES = ("data_transform", "drafting", "other", "research", "summary", "transcription")
Result = subprocess.CompletedProcess[str]


def submit(name: str, *args: str, task_type: str = "summary") -> tuple[str, ...]:
    return ("jobs", "submit", "--name", name, "--type", task_type, *args)


@dataclass
class Outcomes:
    rt: Runtime
    results: dict[str, Result]

    def jobs_named(self, name: str) -> int:
        with self.rt.sessions() as session:
            query = select(func.count()).select_from(Job).where(Job.name == name)
            return int(session.scalar(query) or 0)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    """Run every case at once against one migrated home; map case name to its result."""
    root = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as patch:  # nothing from the developer's shell
        for name in list(os.environ):
            if name.startswith(("ECHOPILOT_", "OPENAI_")) and not name.startswith(
                "ECHOPILOT_TEST_"
            ):
                patch.delenv(name)
        settings = load_settings(home=root / "var", _env_file=None, **FAST)
    rt = Runtime(settings)
    rt.migrate()

    big = root / "big.txt"
    big.write_text("x" * 200_001, encoding="utf-8")
    small = root / "small.txt"
    small.write_text("from a file", encoding="utf-8")
    missing = root / "no-such-file.txt"
    binary = root / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    nul = root / "nul.txt"
    nul.write_bytes(b"a report\x00with a NUL byte")
    huge = root / "huge.txt"
    with huge.open("wb") as handle:  # sparse: 67 MB on paper, nothing on disk
        handle.truncate(67_000_000)

    cases: dict[str, tuple[str, ...]] = {
        "valid": submit("valid", "--input", "a real job"),
        "empty": submit("empty", "--input", ""),
        "too-long": submit("too-long", "--input-file", str(big)),
        "unknown-type": submit("unknown-type", "--input", "text", task_type="poetry"),
        "negative-qa": submit("negative-qa", "--input", "text", "--qa-target", "-5"),
        "both-inputs": submit("both-inputs", "--input", "inline", "--input-file", str(small)),
        "missing-file": submit("missing-file", "--input-file", str(missing)),
        "binary-file": submit("binary-file", "--input-file", str(binary)),
        "folder-file": submit("folder-file", "--input-file", str(root)),
        "huge-file": submit("huge-file", "--input-file", str(huge)),
        "nul-input": submit("nul-input", "--input-file", str(nul)),
        "escape-name": (
            "jobs",
            "submit",
            "--name",
            "\x1b[31mred",
            "--type",
            "summary",
            "--input",
            "text",
        ),
        "blank-type": submit("blank-type", "--input", "text", task_type=" "),
        "show": ("jobs", "show", "999999"),
        "retry": ("jobs", "retry", "999999"),
        "cancel": ("jobs", "cancel", "999999"),
        "status": ("jobs", "list", "--status", "nonsense"),
    }
    bad_settings = {
        "bad-lease": (
            {"ECHOPILOT_LEASE_SECONDS": "abc"},
            submit("bad-lease", "--input", "text"),
        ),
        "bad-provider": ({"ECHOPILOT_AI_PROVIDER": "gpt"}, ("config", "show")),
    }

    def with_env(extra: dict[str, str], args: tuple[str, ...]) -> Result:
        return subprocess.run(
            [sys.executable, "-m", "echopilot", *args],
            env={**env_for(settings), **extra},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
        )

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(run_cli, settings, *args) for name, args in cases.items()}
        futures |= {name: pool.submit(with_env, *case) for name, case in bad_settings.items()}
        results = {name: future.result() for name, future in futures.items()}
    yield Outcomes(rt, results)
    rt.close()


def rejected(bad: Outcomes, case: str) -> str:
    """Check the case exited 2 with one line on stderr and wrote no job; return that line."""
    result = bad.results[case]
    assert result.returncode == 2, f"exit {result.returncode}; stderr: {result.stderr!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {result.stderr!r}"
    assert bad.jobs_named(case) == 0, "a rejected submission writes no job"
    return lines[0]


def test_a_valid_submission_next_to_the_bad_ones_is_stored(bad: Outcomes) -> None:
    # The control case: proves that the "no job written" checks look at the right database.
    assert bad.results["valid"].returncode == 0, bad.results["valid"].stderr
    assert bad.jobs_named("valid") == 1


def test_it_rejects_an_empty_input(bad: Outcomes) -> None:
    assert "input" in rejected(bad, "empty")


def test_it_rejects_an_input_over_200000_characters(bad: Outcomes) -> None:
    line = rejected(bad, "too-long")
    assert "input" in line
    assert "200,000" in line or "200000" in line, "the message states the limit"


def test_it_rejects_an_unknown_task_type_and_lists_the_known_ones(bad: Outcomes) -> None:
    line = rejected(bad, "unknown-type")
    assert "task_type" in line
    assert "poetry" in line
    for known in TASK_TYPES:
        assert known in line, f"the known type {known!r} is listed"


def test_it_rejects_a_negative_qa_target(bad: Outcomes) -> None:
    assert "qa_target" in rejected(bad, "negative-qa")


def test_it_rejects_input_and_input_file_together(bad: Outcomes) -> None:
    line = rejected(bad, "both-inputs")
    assert "input" in line
    assert "--input-file" in line


def test_it_rejects_a_missing_input_file(bad: Outcomes) -> None:
    line = rejected(bad, "missing-file")
    assert "input-file" in line
    assert "no-such-file.txt" in line


@pytest.mark.parametrize("command", ["show", "retry", "cancel"])
def test_it_reports_an_unknown_job_id(bad: Outcomes, command: str) -> None:
    line = rejected(bad, command)
    assert "999999" in line
    assert "not found" in line


def test_it_rejects_an_unknown_status_filter(bad: Outcomes) -> None:
    line = rejected(bad, "status")
    assert "status" in line
    assert "nonsense" in line or "queued" in line, "the message shows the bad or good values"


@pytest.mark.parametrize(
    ("case", "variable", "value"),
    [
        ("bad-lease", "ECHOPILOT_LEASE_SECONDS", "abc"),
        ("bad-provider", "ECHOPILOT_AI_PROVIDER", "gpt"),
    ],
)
def test_a_bad_setting_makes_a_command_exit_2_naming_the_setting(
    bad: Outcomes, case: str, variable: str, value: str
) -> None:
    line = rejected(bad, case)
    assert variable in line
    assert value in line, "the message shows the bad value"


def test_it_rejects_a_binary_input_file_as_not_utf8_text(bad: Outcomes) -> None:
    line = rejected(bad, "binary-file")
    assert line.startswith("error: input-file:"), line
    assert "not UTF-8 text" in line


def test_it_rejects_a_folder_given_as_input_file(bad: Outcomes) -> None:
    assert "input-file" in rejected(bad, "folder-file")


def test_it_rejects_a_file_too_big_by_its_size_before_reading_it(bad: Outcomes) -> None:
    line = rejected(bad, "huge-file")
    assert "67,000,000 bytes" in line
    assert "ECHOPILOT_MAX_INPUT_CHARS" in line


def test_it_rejects_an_input_holding_a_nul_character(bad: Outcomes) -> None:
    line = rejected(bad, "nul-input")
    assert line.startswith("error: input:"), line
    assert "NUL" in line


def test_it_rejects_a_name_with_control_characters(bad: Outcomes) -> None:
    result = bad.results["escape-name"]
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: name:"), result.stderr
    assert "control characters" in result.stderr
    with bad.rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1  # only "valid"


def test_it_rejects_a_blank_task_type(bad: Outcomes) -> None:
    assert rejected(bad, "blank-type").startswith("error: task_type:")
