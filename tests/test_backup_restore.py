"""Backups and restores done the way docs/deployment.md says, and the deploy/ files checked
against the real CLI and settings.

The restore test builds real state with real worker processes: jobs done, dead and waiting
for review, a payment recorded by hand, a daily report, jobs still queued and one in the
middle of its model call. It takes a backup while that worker runs, loses the original (the
worker is killed), restores into a fresh home and a fresh database with an empty queue, and
starts again from there. The restored copy must show what the original showed, finish the
unfinished jobs once each, and never run or bill a finished job again. It runs on the
embedded default (SQLite online backup) and on PostgreSQL + Redis (pg_dump / pg_restore).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from dotenv import dotenv_values
from sqlalchemy import func, select
from typer.core import TyperGroup

from echopilot import keys
from echopilot.cli.main import app
from echopilot.config import SECRET_FIELDS, Settings, env_name, load_settings
from echopilot.db.engine import read_session
from echopilot.db.models import JobEvent
from echopilot.jobs import intake
from echopilot.jobs.intake import JobRequest
from echopilot.reports import service as reports
from echopilot.runtime import Runtime
from tests.conftest import PG_URL, REQUIRE_SERVICES, run_cli, start_cli, wait_for
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_worker import job_of, status_of

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deployment.md"

# The backup and restore commands of docs/deployment.md, as this file runs them (the guide
# is checked to give exactly these).
SQLITE_BACKUP = (
    "import sqlite3, sys; src = sqlite3.connect(sys.argv[1]); "
    "dst = sqlite3.connect(sys.argv[2]); src.backup(dst); dst.close(); src.close()"
)
HOME_EXCLUDES = ("./echopilot.db*", "./queue.db*", "./run")
PG_DUMP = ("pg_dump", "-Fc")
PG_RESTORE = ("pg_restore", "--exit-on-error", "--single-transaction", "--no-owner")

TEXT = (
    "The pilot study enrolled forty clinics across three regions. Results were positive. "
    "Costs stayed flat while waiting times fell by a third."
)
HISTORY = ("a", "b", "c", "d", "e", "f")  # finished before the backup
UNFINISHED = ("g", "h", "i", "j")  # g in its model call, h-j queued, at the backup
SECRET_ENV = frozenset(env_name(f) for f in SECRET_FIELDS)
KNOWN_ENV = frozenset(env_name(f) for f in Settings.model_fields)
PER_TASK = ("ECHOPILOT_SCHEDULE_", "ECHOPILOT_CATCHUP_")
# What real credentials look like (OpenAI, Stripe, Notion, Telegram): none may be in deploy/.
REAL_SECRETS = (
    r"sk-[A-Za-z0-9_-]{20,}",
    r"\b[sr]k_(live|test)_[A-Za-z0-9]{8,}",
    r"\bwhsec_[A-Za-z0-9]{8,}",
    r"\bntn_[A-Za-z0-9]{8,}",
    r"\bsecret_[A-Za-z0-9]{20,}",
    r"\b\d{6,}:[A-Za-z0-9_-]{30,}",
)


# -- helpers ---------------------------------------------------------------------------


def submit(rt: Runtime, tag: str) -> int:
    request = JobRequest(
        name=f"job {tag}", task_type="summary", input=f"{TEXT} Reference {tag}.", source="api"
    )
    return intake.submit(rt, request, actor="test").id


def task_calls(server: FakeModelServer, tag: str, since: int = 0) -> int:
    """Task calls the model server got for the job tagged `tag` (from request `since` on)."""
    marker = f"Reference {tag}."
    return sum(
        1
        for seen in server.requests[since:]
        if seen.stage == "task" and marker in json.dumps(seen.body)
    )


def times_done(rt: Runtime, job_id: int) -> int:
    with read_session(rt.sessions) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.to_status == "done")
            )
            or 0
        )


def cli_json(rt: Runtime, *args: str) -> Any:
    result = run_cli(rt.settings, *args, "--json")
    assert result.returncode == 0, f"echopilot {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


def steady(document: Any) -> Any:
    """`document` without the moment it was read (as_of, a window's from and to)."""
    if isinstance(document, dict):
        return {k: steady(v) for k, v in document.items() if k not in {"as_of", "from", "to"}}
    if isinstance(document, list):
        return [steady(v) for v in document]
    return document


def cents(amount: str) -> int:
    value = Decimal(amount) * 100
    assert value == value.to_integral_value(), amount
    return int(value)


def micros(amount: str) -> int:
    value = Decimal(amount) * 1_000_000
    assert value == value.to_integral_value(), amount
    return int(value)


def libpq(url: str) -> str:
    """The URL pg_dump and pg_restore take: EchoPilot's without SQLAlchemy's driver name."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv[0]} failed ({result.returncode}): {result.stderr}"
    return result


def archive_home(home: Path, target: Path) -> None:
    """The guide's tar of ECHOPILOT_HOME, taken while processes run: tar exits 1 when a log
    grew while it read it ("file changed as we read it"), and the archive is still whole."""
    excludes = [f"--exclude={pattern}" for pattern in HOME_EXCLUDES]
    argv = ["tar", "-C", str(home), "-czf", str(target), *excludes, "."]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    problems = [
        line for line in result.stderr.splitlines() if "file changed as we read" not in line
    ]
    assert result.returncode in (0, 1) and not problems, result.stderr


def pg_tools() -> None:
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install postgresql-client)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and ECHOPILOT_TEST_REQUIRE_SERVICES=1 makes it mandatory")
    pytest.skip(message)


@pytest.fixture
def spare_postgres() -> Iterator[str]:
    """An empty database to restore into, made and dropped as conftest's postgres_url is."""
    import psycopg

    name = f"ep_restore_{uuid.uuid4().hex[:12]}"
    admin = libpq(PG_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the restore -------------------------------------------------------------------------


def test_the_guide_gives_the_backup_commands_this_file_runs() -> None:
    guide = GUIDE.read_text()
    assert f"python3 -c '{SQLITE_BACKUP}'" in guide
    assert " ".join(f"--exclude='{p}'" for p in HOME_EXCLUDES) + " ." in guide
    assert " ".join(PG_DUMP) + " --dbname=" in guide
    assert " ".join(PG_RESTORE) + " --dbname=" in guide
    assert '(Issue 14, "load")' in guide, "sizing cites the load benchmark"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_a_restored_backup_resumes_where_the_original_stopped_and_does_nothing_twice(
    backend: dict[str, Any],
    openai_rt: Callable[..., Runtime],
    model_server: FakeModelServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    on_postgres = "database_url" in backend
    stores: dict[str, Any] = {}
    if on_postgres:  # the production pair: PostgreSQL and a Redis queue
        pg_tools()
        queue_url, queue_name = request.getfixturevalue("redis_queue")
        stores = {"queue_url": queue_url, "queue_name": queue_name}
    # g's call must outlast the backup however slow the machine: no client timeout cuts it.
    original = openai_rt(ai_timeout_seconds=600, **stores)
    home = original.settings.home

    # History: four jobs done, one dead (the model refused it), one waiting for review.
    ids = {tag: submit(original, tag) for tag in HISTORY}
    model_server.on("task", Reply.error(400, "scripted: the model refused the request"))
    model_server.on("qa", Reply.score(10, 10, 10, 10))
    burst = run_cli(original.settings, "worker", "--burst", "--concurrency", "1")
    assert burst.returncode == 0, burst.stderr
    ended = {tag: status_of(original, ids[tag]) for tag in HISTORY}
    assert sorted(ended.values()) == ["dead", "done", "done", "done", "done", "needs_review"]
    paid = next(tag for tag in HISTORY if ended[tag] == "done")
    cli_json(original, "payments", "mark-paid", str(ids[paid]), "--note", "bank transfer")
    today = datetime.now(UTC).date().isoformat()
    report = cli_json(original, "report", "daily", "--date", today)
    key = keys.load_or_create(original.settings).value  # as the first `echopilot serve` does

    # Work in flight: a worker is in g's model call (which never answers) while h-j wait.
    model_server.on("task", Reply.ok("never delivered", delay=120))
    ids["g"] = submit(original, "g")
    worker = start_cli(original.settings, "worker", "--concurrency", "1")
    backups = tmp_path / "backups"
    backups.mkdir()
    try:
        wait_for(
            lambda: (
                task_calls(model_server, "g") == 1 and status_of(original, ids["g"]) == "processing"
            )
        )
        for tag in ("h", "i", "j"):
            ids[tag] = submit(original, tag)

        # The backup, while the worker runs.
        if on_postgres:
            dump = backups / "echopilot.dump"
            url = original.settings.resolved_database_url
            run([*PG_DUMP, f"--dbname={libpq(url)}", f"--file={dump}"])
        else:
            copy = backups / "echopilot.db"
            run([sys.executable, "-c", SQLITE_BACKUP, str(home / "echopilot.db"), str(copy)])
        archive_home(home, backups / "home.tar.gz")

        # What the owner saw at that moment.
        listed = cli_json(original, "jobs", "list", "--limit", "100")
        money = cli_json(original, "finance")
        payments = cli_json(original, "payments", "status")
        before = {tag: job_of(original, job_id) for tag, job_id in ids.items()}
        assert worker.poll() is None, "the worker stopped before the backup was done"
    finally:
        worker.send_signal(signal.SIGKILL)  # the original is lost
        worker.wait(timeout=10)
    assert before["g"]["status"] == "processing"
    assert [before[tag]["status"] for tag in ("h", "i", "j")] == ["queued"] * 3
    assert money["revenue_30d"] == "32.00"  # four done jobs at $8 (the review is not billed)
    assert money["revenue_paid_30d"] == "8.00"
    mark = len(model_server.requests)

    # The restore: a fresh home from the archive, a fresh database, an empty queue.
    restored_home = tmp_path / "restored" / "var"
    restored_home.mkdir(parents=True, mode=0o700)
    run(["tar", "-C", str(restored_home), "-xzpf", str(backups / "home.tar.gz")])
    left_out = ("echopilot.db", "echopilot.db-wal", "echopilot.db-shm", "queue.db", "run")
    assert not [name for name in left_out if (restored_home / name).exists()]
    if on_postgres:
        restored_url = request.getfixturevalue("spare_postgres")
        run([*PG_RESTORE, f"--dbname={libpq(restored_url)}", str(dump)])
        # A queue of its own (another name): it holds nothing of the original's.
        stores = {**stores, "database_url": restored_url, "queue_name": f"{queue_name}-restored"}
    else:
        with closing(sqlite3.connect(copy)) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        shutil.copyfile(copy, restored_home / "echopilot.db")
        (restored_home / "echopilot.db").chmod(0o600)
    restored = openai_rt(home=restored_home, **stores)
    assert restored.queue.depth() == 0

    # The restored copy shows what the original showed.
    assert cli_json(restored, "jobs", "list", "--limit", "100") == listed
    assert steady(cli_json(restored, "finance")) == steady(money)
    assert steady(cli_json(restored, "payments", "status")) == steady(payments)
    assert {tag: job_of(restored, job_id) for tag, job_id in ids.items()} == before
    assert keys.load_or_create(restored.settings).value == key
    assert (restored_home / "dashboard.key").stat().st_mode & 0o777 == 0o600
    assert reports.latest(restored)["summary_line"] == report["summary_line"]

    # Start from it: a new job gets a new id, and one burst finishes everything.
    ids["k"] = submit(restored, "k")
    assert ids["k"] > max(job_id for tag, job_id in ids.items() if tag != "k")
    burst = run_cli(restored.settings, "worker", "--burst", "--concurrency", "4")
    assert burst.returncode == 0, burst.stderr
    after = {tag: job_of(restored, job_id) for tag, job_id in ids.items()}

    # Finished jobs are exactly as they were: result, attempts, cost, price, payment.
    for tag in HISTORY:
        assert after[tag] == before[tag], tag
    assert after[paid]["payment_status"] == "paid"
    # Unfinished ones finished once: g's lost attempt is kept, not held against it.
    new = (*UNFINISHED, "k")
    for tag in new:
        job = after[tag]
        assert job["status"] == "done", (tag, job["error"])
        assert job["price_usd"] == "8.00"
        assert job["payment_status"] == "not_configured"
    attempts = {tag: [a["status"] for a in after[tag]["attempt_log"]] for tag in new}
    assert attempts == {"g": ["lost", "ok"], "h": ["ok"], "i": ["ok"], "j": ["ok"], "k": ["ok"]}
    done = [tag for tag in ids if after[tag]["status"] == "done"]
    assert {tag: times_done(restored, ids[tag]) for tag in done} == dict.fromkeys(done, 1)
    # The model saw each unfinished job once after the restore, and no finished one again.
    calls = {tag: task_calls(model_server, tag, since=mark) for tag in ids}
    assert calls == {**dict.fromkeys(HISTORY, 0), **dict.fromkeys(new, 1)}
    assert restored.queue.depth() == 0

    # The money: five more jobs billed at $8, their model cost added, nothing paid twice.
    money_after = cli_json(restored, "finance")
    assert cents(money_after["revenue_30d"]) == cents(money["revenue_30d"]) + 5 * 800
    new_cost = sum(micros(after[tag]["cost_usd"]) for tag in new)
    assert new_cost > 0
    assert micros(money_after["cost_30d"]) == micros(money["cost_30d"]) + new_cost
    assert money_after["revenue_paid_30d"] == money["revenue_paid_30d"] == "8.00"
    assert money_after["jobs_30d"] == money["jobs_30d"] + 5

    # And doctor, run after a restore as after any deploy, finds the schema current.
    doctor = run_cli(restored.settings, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    checks = {c["check"]: c["status"] for c in json.loads(doctor.stdout)["checks"]}
    assert checks["database"] == "ok"
    assert checks["migrations"] == "ok"
    assert checks["queue"] == "ok"


# -- the deploy/ files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_help(tmp_path_factory: pytest.TempPathFactory) -> Callable[[tuple[str, ...]], int]:
    """Run `echopilot ARGS --help` through the real CLI (once per ARGS): exit 0 only when
    ARGS name a command and options it has."""
    home = tmp_path_factory.mktemp("help") / "var"
    settings = load_settings(home=home, _env_file=None)
    seen: dict[tuple[str, ...], int] = {}

    def check(args: tuple[str, ...]) -> int:
        if args not in seen:
            result = run_cli(settings, *args, "--help", timeout=60)
            seen[args] = result.returncode
        return seen[args]

    return check


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        name, sep, value = line.partition("=")
        assert current is not None and sep and not line.endswith("\\"), (path.name, raw)
        current.setdefault(name.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|min)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


EXPECTED_UNITS = {
    "echopilot-api.service": ("serve",),
    "echopilot-worker@.service": ("worker",),
    "echopilot-scheduler.service": ("scheduler", "run"),
}


def test_the_systemd_units_run_real_commands_and_outwait_a_graceful_stop(
    cli_help: Callable[[tuple[str, ...]], int],
) -> None:
    units = {path.name: parse_unit(path) for path in (DEPLOY / "systemd").glob("*")}
    assert set(units) == set(EXPECTED_UNITS)
    example = load_settings(_env_file=DEPLOY / "echopilot.env.example")
    for name, unit in units.items():
        service = unit["Service"]
        (exec_start,) = service["ExecStart"]
        program, *args = shlex.split(exec_start)
        assert program.startswith("/") and program.endswith("/bin/echopilot"), exec_start
        assert tuple(args[: len(EXPECTED_UNITS[name])]) == EXPECTED_UNITS[name], exec_start
        assert cli_help(tuple(args)) == 0, f"{name}: `echopilot {shlex.join(args)}` is not real"
        assert service["EnvironmentFile"] == ["/etc/echopilot.env"], name
        assert service["User"] == ["echopilot"], name
        # SIGTERM to the main process only: it stops its own children (the scheduler's
        # task processes) within its grace; systemd's SIGKILL comes after TimeoutStopSec.
        assert service["KillMode"] == ["mixed"], name
        assert service["RestartPreventExitStatus"] == ["2"], name  # bad configuration
        assert unit["Install"]["WantedBy"] == ["multi-user.target"], name
    worker = units["echopilot-worker@.service"]["Service"]
    scheduler = units["echopilot-scheduler.service"]["Service"]
    assert seconds(worker["TimeoutStopSec"][0]) > example.worker_shutdown_seconds + 5
    assert seconds(scheduler["TimeoutStopSec"][0]) > example.scheduler_shutdown_seconds + 5


def test_the_procfile_runs_the_three_processes(
    cli_help: Callable[[tuple[str, ...]], int],
) -> None:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = shlex.split(command)
    assert set(entries) == {"web", "worker", "scheduler"}
    heads = {"web": ("serve",), "worker": ("worker",), "scheduler": ("scheduler", "run")}
    for name, argv in entries.items():
        assert argv[0] == "echopilot", argv
        assert tuple(argv[1 : 1 + len(heads[name])]) == heads[name], argv
        assert cli_help(tuple(argv[1:])) == 0, f"Procfile {name}: {shlex.join(argv)}"


def interpolated(value: str) -> str:
    """`value` with compose's `${NAME...}` references replaced as compose would fill them."""
    return re.sub(r"\$\{[^}]*\}", "FROM_THE_ENVIRONMENT", value)


def test_the_compose_file_runs_postgres_redis_and_the_three_processes(
    cli_help: Callable[[tuple[str, ...]], int],
) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert text.startswith("#") and "registry" in text.split("\n\n", 1)[0]
    services = yaml.safe_load(text)["services"]
    assert {"postgres", "redis", "api", "worker", "scheduler"} <= set(services)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["echopilot"\]$', dockerfile, flags=re.MULTILINE)
    heads = {"api": ("serve",), "worker": ("worker",), "scheduler": ("scheduler", "run")}
    for name, head in heads.items():
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        command = tuple(service["command"])
        assert command[: len(head)] == head, command
        assert cli_help(command) == 0, f"compose {name}: echopilot {shlex.join(command)}"
        env = service["environment"]
        assert not {n for n in env if n not in KNOWN_ENV and not n.startswith(PER_TASK)}, env
        database = urlsplit(interpolated(env["ECHOPILOT_DATABASE_URL"]))
        queue = urlsplit(interpolated(env["ECHOPILOT_QUEUE_URL"]))
        assert (database.scheme, database.hostname) == ("postgresql+psycopg", "postgres")
        assert (queue.scheme, queue.hostname) == ("redis", "redis")
        assert env["ECHOPILOT_ALLOW_PROCESS_CONTROL"] == "false"
        # Secrets come from the environment compose runs in, never from this file.
        assert all(str(env[n]).startswith("${") for n in SECRET_ENV & set(env)), name
        assert database.password == "FROM_THE_ENVIRONMENT", name
    assert not [p for p in REAL_SECRETS if re.search(p, text)]


def test_the_env_example_is_valid_and_holds_no_real_secret() -> None:
    path = DEPLOY / "echopilot.env.example"
    text = path.read_text()
    values = dotenv_values(path)
    unknown = [n for n in values if n not in KNOWN_ENV and not n.startswith(PER_TASK)]
    assert not unknown, f"settings EchoPilot does not read: {unknown}"
    settings = load_settings(_env_file=path)  # every value as given is valid
    assert settings.database_url and settings.database_url.startswith("postgresql+psycopg://")
    assert settings.queue_url and settings.queue_url.startswith("redis://")
    assert settings.allow_process_control is False
    assert settings.trusted_proxy_list
    assert settings.dashboard_key is not None  # the same key on every API host
    for name in SECRET_ENV & set(values):
        assert "CHANGE_ME" in str(values[name]), f"{name} holds something else than a placeholder"
    password = urlsplit(settings.database_url).password
    assert password is None or "CHANGE_ME" in password
    assert not [p for p in REAL_SECRETS if re.search(p, text)]


# -- the guide's commands ----------------------------------------------------------------

# An `echopilot` invocation in the guide's code: at the start of a line or a span, after a
# venv's bin/, or after exec, && or ; (not `sudo -u echopilot` or `echopilot:echopilot`).
INVOCATION = re.compile(r"(?:^|/bin/|\bexec |&& |; )echopilot ([^;|&'\"`)\n]*)", re.MULTILINE)


def invocations(markdown: str) -> list[list[str]]:
    fence = r"^[ \t]*```"
    blocks = re.findall(fence + r"[a-z]*\n(.*?)" + fence, markdown, flags=re.MULTILINE | re.DOTALL)
    spans = re.findall(r"`(echopilot [^`]+)`", markdown)
    found = []
    for text in [*blocks, *spans]:
        for match in INVOCATION.finditer(text):
            argv = match.group(1).split()
            if argv:
                found.append(argv)
    return found


def problem_with(argv: list[str]) -> str | None:
    command: Any = typer.main.get_command(app)
    rest = list(argv)
    while isinstance(command, TyperGroup):
        if not rest or rest[0] not in command.commands:
            return f"no command {rest[:1]} under {command.name}"
        command, rest = command.commands[rest[0]], rest[1:]
    options = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    unknown = [t for t in rest if t.startswith("-") and t.split("=", 1)[0] not in options]
    return f"{command.name} has no option {unknown}" if unknown else None


def test_every_echopilot_command_in_the_guide_is_real() -> None:
    found = invocations(GUIDE.read_text())
    assert len(found) >= 10
    wrong = {" ".join(argv): problem_with(argv) for argv in found if problem_with(argv)}
    assert not wrong, wrong
