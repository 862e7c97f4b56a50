"""What a newcomer meets: the real `echopilot` command in a shell that holds other software's
variables (HOME, HOST, PORT, DATABASE_URL, MODEL), mistakes on purpose, and the files it
leaves behind. Every case is a child process with a clean environment."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_support import free_port
from tests.conftest import PG_URL, require

ROOT = Path(__file__).resolve().parents[1]
# What other software puts in a shell; none of it may steer EchoPilot.
STRAY = {
    "HOST": "0.0.0.0",
    "PORT": "9999",
    "DATABASE_URL": "postgresql://intruder@db.example/other",
    "MODEL": "someone-elses-model",
    "QUEUE_URL": "redis://elsewhere:6379/0",
    "LOG_LEVEL": "debug",
}


def newcomer_env(home_dir: Path, **extra: str) -> dict[str, str]:
    """A shell with HOME and PATH and nothing of EchoPilot's own."""
    env = {
        "HOME": str(home_dir),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }
    if "PYTHONPATH" in os.environ:  # the test run's own choice of source tree
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def echopilot(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "echopilot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project folder to run from and a newcomer's environment with stray variables."""
    project = tmp_path / "project"
    project.mkdir()
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    yield project, newcomer_env(user_home, **STRAY)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_stray_unprefixed_variables_change_nothing(shell: tuple[Path, dict[str, str]]) -> None:
    project, env = shell
    shown = json.loads(echopilot(project, env, "config", "show", "--json").stdout)
    assert shown["ECHOPILOT_HOME"] == "var"
    assert shown["ECHOPILOT_HOST"] == "127.0.0.1"
    assert shown["ECHOPILOT_PORT"] == 8000
    assert shown["ECHOPILOT_DATABASE_URL"] is None
    assert shown["ECHOPILOT_QUEUE_URL"] is None
    assert shown["ECHOPILOT_MODEL"] == "gpt-4o"
    assert shown["ECHOPILOT_LOG_LEVEL"] == "info"
    assert shown["effective"]["database"] == "sqlite:///var/echopilot.db"

    submitted = echopilot(project, env, "jobs", "submit", "--name", "hi", "--type", "summary",
                          "--input", "hello there", "--json")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert (project / "var" / "echopilot.db").is_file(), "the default home is ./var"
    assert list(Path(env["HOME"]).iterdir()) == [], "nothing is written to the user's HOME"


def test_stray_variables_in_a_dotenv_file_change_nothing(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    (project / ".env").write_text("HOME=/tmp/elsewhere\nHOST=0.0.0.0\nECHOPILOT_PORT=8123\n")
    shown = json.loads(echopilot(project, env, "config", "show", "--json").stdout)
    assert shown["ECHOPILOT_HOME"] == "var"
    assert shown["ECHOPILOT_HOST"] == "127.0.0.1"
    assert shown["ECHOPILOT_PORT"] == 8123  # the documented name is read from .env


def test_version_is_printed_by_the_version_flag(shell: tuple[Path, dict[str, str]]) -> None:
    from echopilot import __version__

    project, env = shell
    result = echopilot(project, env, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"echopilot {__version__}"


@pytest.mark.parametrize(
    "command",
    [("jobs", "list"), ("up",), ("serve",), ("worker",), ("scheduler", "run"),
     ("scheduler", "stop"), ("scheduler", "start"), ("demo", "seed")],
    ids=" ".join,
)  # fmt: skip
def test_an_unwritable_home_is_one_line_and_exit_2(
    shell: tuple[Path, dict[str, str]], command: tuple[str, ...]
) -> None:
    project, env = shell
    result = echopilot(project, {**env, "ECHOPILOT_HOME": "/proc/x"}, *command)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("error: ECHOPILOT_HOME:"), line
    assert "/proc/x" in line


def test_an_unreachable_database_is_one_line_and_exit_1(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/echopilot"
    result = echopilot(project, {**env, "ECHOPILOT_DATABASE_URL": url}, "jobs", "list")
    assert result.returncode == 1
    line = one_line(result)
    assert "cannot reach the database" in line
    assert "ECHOPILOT_DATABASE_URL" in line
    log = (project / "var" / "logs" / "cli.log").read_text()
    assert "Traceback" in log, "the traceback goes to the log"


def test_a_missing_postgres_database_is_a_configuration_error(
    shell: tuple[Path, dict[str, str]],
) -> None:
    require("PostgreSQL", PG_URL, 5432)
    project, env = shell
    url = PG_URL.rsplit("/", 1)[0] + "/no_such_database_here"
    result = echopilot(project, {**env, "ECHOPILOT_DATABASE_URL": url}, "jobs", "list")
    assert result.returncode == 2
    assert "no_such_database_here" in one_line(result)


def test_a_sqlite_database_locked_past_the_busy_timeout_is_one_line_and_exit_1(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    assert echopilot(project, env, "db", "upgrade").returncode == 0
    holder = sqlite3.connect(project / "var" / "echopilot.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        result = echopilot(
            project,
            {**env, "ECHOPILOT_SQLITE_BUSY_SECONDS": "1"},
            "jobs", "submit", "--name", "blocked", "--type", "summary", "--input", "text",
        )  # fmt: skip
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    line = one_line(result)
    assert "locked" in line and "ECHOPILOT_SQLITE_BUSY_SECONDS" in line, line
    assert waited < 30, "the busy timeout setting is honoured"
    assert "Traceback" in (project / "var" / "logs" / "cli.log").read_text()


@pytest.mark.parametrize(
    ("variable", "secret"),
    [
        ("DASHBOARD_KEY", "short"),
        ("DASHBOARD_KEY", "has spaces in the key, sixteen+"),
        ("ECHOPILOT_DATABASE_URL", "mysql://admin:hunter2secret@db.example/ep"),
        ("ECHOPILOT_QUEUE_URL", "amqp://guest:hunter2secret@mq.example/"),
    ],
)
def test_a_rejected_secret_is_never_echoed(
    shell: tuple[Path, dict[str, str]], variable: str, secret: str
) -> None:
    project, env = shell
    result = echopilot(project, {**env, variable: secret}, "config", "show")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"error: {variable}:"), line
    assert secret not in result.stderr + result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_json_errors_are_json_on_stdout(shell: tuple[Path, dict[str, str]]) -> None:
    project, env = shell
    missing = echopilot(project, env, "jobs", "show", "424242", "--json")
    assert missing.returncode == 2
    body = json.loads(missing.stdout)
    assert body["ok"] is False and body["data"] is None
    assert body["error"]["code"] == "not_found"
    assert "424242" in body["error"]["message"]

    usage = echopilot(project, env, "jobs", "show", "not-a-number", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["code"] == "bad_usage"


def test_files_under_the_home_are_private(shell: tuple[Path, dict[str, str]]) -> None:
    project, env = shell
    submitted = echopilot(project, env, "jobs", "submit", "--name", "private", "--type",
                          "summary", "--input", "a client's confidential text")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert echopilot(project, env, "worker", "--burst").returncode == 0
    home = project / "var"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    loose = {
        str(path.relative_to(home)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in home.rglob("*")
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    }
    assert loose == {}
    names = {p.name for p in home.rglob("*")}
    assert {"echopilot.db", "queue.db", "logs", "worker.log"} <= names


def test_jobs_list_fits_80_columns_one_line_per_job(shell: tuple[Path, dict[str, str]]) -> None:
    project, env = shell
    long_name = "Quarterly revenue summary for the northern region sales team"
    for name, kind in ((long_name, "data_transform"), ("short", "summary")):
        result = echopilot(project, env, "jobs", "submit", "--name", name, "--type", kind,
                           "--input", "some text")  # fmt: skip
        assert result.returncode == 0, result.stderr
    listing = echopilot(project, {**env, "COLUMNS": "80"}, "jobs", "list").stdout
    lines = listing.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 80, listing
    rows = [line for line in lines if re.match(r"^\s*\d+\s", line)]
    assert len(rows) == 2, listing
    newest, oldest = rows  # newest first
    assert "short" in newest
    assert "Quarterly revenue" in oldest and "…" in oldest
    assert re.search(r"\d\d-\d\d \d\d:\d\d", oldest), "the time is whole"
    assert "queued" in rows[0] and "queued" in rows[1]


def test_task_types_are_accepted_as_the_original_named_them(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    expected = {"Drafting": ("drafting", 90), "Data-transform": ("data_transform", 92),
                "data transform": ("data_transform", 92), "RESEARCH": ("research", 95),
                "Summary": ("summary", 80)}  # fmt: skip
    for given, (name, _) in expected.items():
        result = echopilot(project, env, "jobs", "submit", "--name", given, "--type", given,
                           "--input", "Some text to work on.", "--json")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["task_type"] == name
    assert echopilot(project, env, "worker", "--burst").returncode == 0
    listed = json.loads(echopilot(project, env, "jobs", "list", "--json").stdout)
    thresholds = {job["name"]: job["qa_threshold"] for job in listed}
    assert thresholds == {given: t for given, (_, t) in expected.items()}


def test_make_help_lists_every_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    shown = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = set(re.findall(r"^make ([a-z][a-z-]*)", shown, flags=re.MULTILINE))
    assert targets - listed == set(), shown


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_a_new_key_is_shown_on_a_terminal_but_not_in_redirected_output(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    env = {**env, "ECHOPILOT_PORT": str(free_port())}
    controller, terminal = pty.openpty()
    server = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "serve"],
        cwd=project,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        shown = _read_until(controller, b"Application startup complete", 60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        os.close(controller)
    key = (project / "var" / "dashboard.key").read_text().strip()
    assert key.encode() in shown, shown

    (project / "var" / "dashboard.key").unlink()
    redirected = project / "serve.out"
    with redirected.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "echopilot", "serve"],
            cwd=project,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"startup complete" not in redirected.read_bytes():
            time.sleep(0.1)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    new_key = (project / "var" / "dashboard.key").read_text().strip()
    text = redirected.read_text()
    assert new_key not in text, text
    assert "dashboard.key" in text


def test_scheduler_run_says_where_it_logs_and_status_fits_80_columns(
    shell: tuple[Path, dict[str, str]],
) -> None:
    project, env = shell
    env = {**env, "ECHOPILOT_SCHEDULE_RECOVERY_SWEEP": "every 1s"}
    out = project / "scheduler.out"
    with out.open("wb") as sink:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "echopilot", "scheduler", "run"],
            cwd=project,
            env=env,
            stdout=sink,
            stderr=(project / "scheduler.err").open("wb"),
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "logged to" not in out.read_text():
            time.sleep(0.1)
        said = out.read_text()
        assert f"scheduler started (pid {scheduler.pid})" in said, said
        assert str(Path("var") / "logs" / "scheduler.log") in said
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = echopilot(project, {**env, "COLUMNS": "80"}, "scheduler", "status").stdout
            if re.search(r"recovery_sweep .* ok ", status):
                break
            time.sleep(0.5)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=30)
    lines = status.splitlines()
    assert max(len(line) for line in lines) <= 80, status
    sweep = next(line for line in lines if line.lstrip().startswith("recovery_sweep"))
    errors = (project / "scheduler.err").read_text()[-3000:]
    assert len(re.findall(r"\d\d-\d\d \d\d:\d\d:\d\d", sweep)) == 2, (sweep, errors)


def test_the_banner_warns_about_a_home_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from echopilot import keys
    from echopilot.cli.serve import banner
    from echopilot.config import load_settings

    home = tmp_path / "var"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as an older release left it
    settings = load_settings(home=home, dashboard_key="k" * 20, _env_file=None)
    banner(settings, keys.load_or_create(settings), "127.0.0.1", 8000)
    assert f"`chmod 700 {home}`" in capsys.readouterr().out
    home.chmod(0o700)
    banner(settings, keys.load_or_create(settings), "127.0.0.1", 8000)
    assert "chmod" not in capsys.readouterr().out
