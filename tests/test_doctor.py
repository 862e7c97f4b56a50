"""`echopilot doctor` as a person meets it: the real command in a child process with a clean
environment (HOME, PATH and what the test sets; no ECHOPILOT_HOME, so the home is ./var), run
from a temporary folder.

Covered: a fresh machine (warnings that name the first start, nothing made), a migrated
embedded install and the --json shape, settings that do not load, everything unreachable
(every cause and fix on one line, no secret printed), the model endpoint (served models, a
refused key, a model it does not serve, a server without a models list), the mail login
(accepted, refused, and never a message sent), alert channels (parsed, --send-test, a dead
channel, a malformed entry), Stripe (test key, refused key, a restricted key lacking a
permission, no webhook secret), Notion (schema, refused token, the connector's state left
alone), the clock against PostgreSQL (skewed with faketime), the home folder's permissions,
a live worker seen and then gone, and a database a newer version migrated.

Only the outside services are fake, each a real server on 127.0.0.1 driven through the real
client library: the model server, aiosmtpd, an Apprise json:// receiver, Stripe and Notion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from echopilot import __version__
from tests.api_support import free_port
from tests.conftest import REQUIRE_SERVICES
from tests.fakes.model_server import FakeModelServer
from tests.fakes.notion_server import TOKEN as NOTION_TOKEN
from tests.fakes.notion_server import NotionServer, queue_schema
from tests.fakes.stripe_server import KEY as STRIPE_KEY
from tests.fakes.stripe_server import FakeStripeServer
from tests.test_alert_channels import Receiver
from tests.test_brief_mailer import Login, smtp_server

# Every check, in the order doctor runs and reports them (one "alert channels" line without
# --send-test).
CHECKS = [
    "settings",
    "home",
    "database",
    "migrations",
    "clock",
    "scheduler",
    "workers",
    "queue",
    "model",
    "email",
    "alert channels",
    "stripe",
    "notion",
]
INTEGRATIONS = ("email", "alert channels", "stripe", "notion")
SMTP_USER = "echopilot"
SMTP_PASS = "smtp-pass-Kq93zTw"
OPENAI_KEY = "sk-test-model-key-7Hq2xWv"
WEBHOOK_SECRET = "whsec_doctorTestSigningSecret9"
DOCTOR_SECONDS = 60
ECHOPILOT = [sys.executable, "-m", "echopilot"]


@dataclass
class Ran:
    """What one `echopilot ...` run showed."""

    code: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        return self.stdout + self.stderr

    @property
    def data(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.stdout)
        return found

    def findings(self, check: str) -> list[dict[str, Any]]:
        return [c for c in self.data["checks"] if c["check"] == check]

    def finding(self, check: str) -> dict[str, Any]:
        [found] = self.findings(check)
        return found

    def status(self, check: str) -> str:
        return str(self.finding(check)["status"])

    def statuses(self) -> dict[str, str]:
        return {c["check"]: c["status"] for c in self.data["checks"]}


class Machine:
    """A newcomer's shell: a folder to run from, HOME, PATH, and the variables a test sets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        user_home = root / "user-home"
        user_home.mkdir()
        self.env = {
            "HOME": str(user_home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }
        if "PYTHONPATH" in os.environ:  # the test run's own choice of source tree
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    @property
    def home(self) -> Path:
        """ECHOPILOT_HOME's default, ./var."""
        return self.root / "var"

    def command(self, argv: list[str], env: dict[str, str]) -> Ran:
        """Run `argv` from the folder, in the shell's environment plus `env`."""
        result = subprocess.run(
            argv,
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=DOCTOR_SECONDS,
        )
        return Ran(result.returncode, result.stdout, result.stderr)

    def run(self, *args: str, **env: str) -> Ran:
        """`echopilot ARGS`."""
        return self.command([*ECHOPILOT, *args], env)

    def doctor(self, *args: str, **env: str) -> Ran:
        """`echopilot doctor --json ARGS`, checked for what every report must show."""
        return report(self.run("doctor", "--json", *args, **env))

    def reports(self, **env: str) -> tuple[Ran, Ran]:
        """The text report and the --json one (checked), run side by side."""
        with ThreadPoolExecutor(2) as pool:
            text = pool.submit(self.run, "doctor", **env)
            data = pool.submit(self.doctor, **env)
            return text.result(), data.result()

    def upgrade(self, **env: str) -> str:
        """`echopilot db upgrade`; the revision it says the database is now at."""
        ran = self.run("db", "upgrade", **env)
        assert ran.code == 0, ran.shown
        found = re.search(r" to (\w+)\s*$", ran.stdout.strip())
        assert found, ran.stdout
        return found.group(1)


def report(ran: Ran) -> Ran:
    """`ran`, a doctor --json run, after the checks every report must pass: the exit code
    and the counts agree with the findings, and each finding's summary and fix is one line."""
    assert "Traceback" not in ran.shown, ran.shown
    assert ran.code in (0, 1), ran.shown
    data = ran.data
    assert ran.code == (0 if data["ok"] else 1), ran.shown
    assert data["failed"] == sum(c["status"] == "fail" for c in data["checks"])
    assert data["warnings"] == sum(c["status"] == "warn" for c in data["checks"])
    for c in data["checks"]:
        assert c["summary"] and "\n" not in c["summary"], c
        if c["status"] in ("warn", "fail"):
            assert c["fix"] and "\n" not in c["fix"], c
        else:
            assert c["fix"] is None, c
    return ran


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def closed_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on (connections are refused)."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def assert_hidden(ran: Ran, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in ran.shown, f"{secret!r} shown:\n{ran.shown}"


# ---- a fresh machine and a migrated one ------------------------------------------------


def test_a_fresh_machine_is_told_what_the_first_start_makes_and_nothing_is_made(
    machine: Machine,
) -> None:
    before = sorted(p.name for p in machine.root.iterdir())

    text, ran = machine.reports()

    assert ran.code == 0 and text.code == 0, ran.shown + text.shown
    assert [c["check"] for c in ran.data["checks"]] == CHECKS
    assert ran.data["ok"] is True and ran.data["failed"] == 0
    for check in ("home", "database", "queue"):
        found = ran.finding(check)
        assert found["status"] == "warn", found
        assert "first start" in found["fix"], found
    assert "does not exist yet" in ran.finding("home")["summary"]
    assert "no database yet" in ran.finding("database")["summary"]
    for check in ("migrations", "clock", "scheduler", "workers"):
        assert ran.status(check) == "skip", ran.finding(check)
        assert "no usable database" in ran.finding(check)["summary"]
    for check in INTEGRATIONS:
        assert ran.status(check) == "off", ran.finding(check)
    model = ran.finding("model")
    assert model["status"] == "ok" and "offline provider" in model["summary"]
    assert ran.statuses()["settings"] == "ok"

    # The text report: one line per check, each warning followed by its fix.
    lines = text.stdout.splitlines()
    assert lines[0].startswith("ok    settings")
    assert any(line.startswith("warn  home") for line in lines)
    assert "fix: it is made (mode 700) at the first start" in text.stdout
    assert lines[-1] == f"echopilot {__version__}: nothing required fails, 3 warning(s)."
    assert text.stderr == ""

    # Doctor made nothing: no home, no database, no log.
    assert not machine.home.exists()
    assert sorted(p.name for p in machine.root.iterdir()) == before


def test_after_db_upgrade_the_database_is_current_and_the_missing_processes_are_named(
    machine: Machine,
) -> None:
    revision = machine.upgrade()

    ran = machine.doctor()

    assert ran.code == 0, ran.shown
    data = ran.data
    assert set(data) == {"ok", "failed", "warnings", "checks", "version"}
    assert data["version"] == __version__
    assert data["ok"] is True and data["failed"] == 0
    assert [c["check"] for c in data["checks"]] == CHECKS
    for c in data["checks"]:
        assert set(c) == {"check", "status", "summary", "fix", "seconds"}
        assert c["status"] in ("ok", "warn", "fail", "off", "skip")
        assert isinstance(c["seconds"], int | float) and c["seconds"] >= 0

    database = ran.finding("database")
    assert database["status"] == "ok" and database["summary"].startswith("SQLite ")
    assert "echopilot.db" in database["summary"]
    migrations = ran.finding("migrations")
    assert migrations["status"] == "ok"
    assert f"at revision {revision}, the newest" in migrations["summary"]
    assert ran.status("clock") == "ok"
    home = ran.finding("home")
    assert home["status"] == "ok" and "private (mode 700)" in home["summary"]
    for check in ("scheduler", "workers"):
        found = ran.finding(check)
        assert found["status"] == "warn", found
        assert "`echopilot up`" in found["fix"], found
    assert "no scheduler is running (never seen)" in ran.finding("scheduler")["summary"]
    assert "no worker is running" in ran.finding("workers")["summary"]
    assert data["warnings"] == 3  # scheduler, workers, and the queue made at the first start


def test_a_database_a_newer_version_migrated_fails_the_migrations_check(
    machine: Machine,
) -> None:
    revision = machine.upgrade()
    db = machine.home / "echopilot.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    ran = machine.doctor()

    assert ran.code == 1, ran.shown
    found = ran.finding("migrations")
    assert found["status"] == "fail", found
    assert [c["check"] for c in ran.data["checks"] if c["status"] == "fail"] == ["migrations"]
    # Nothing was migrated back.
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]
    # What the person reads: which revision, that a newer version did it, and what to do.
    assert "revision 9999" in found["summary"], found
    assert f"its newest is {revision}" in found["summary"]
    assert "a newer version has upgraded it" in found["summary"]
    assert "newer EchoPilot version" in found["fix"]
    # Every other command refuses in one line too, rather than with alembic's words (a
    # service manager told "bad configuration", exit 2, need not restart it every 5 s).
    listed = machine.run("jobs", "list")
    assert listed.code == 2, listed.shown
    assert "upgraded by a newer version of EchoPilot" in listed.stderr
    assert "Traceback" not in listed.shown


# ---- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ECHOPILOT_PORT", "notaport"),
        ("STRIPE_SECRET_KEY", "pk_live_PublishableNotSecret42"),
    ],
)
def test_settings_that_do_not_load_are_one_failure_naming_the_variable(
    machine: Machine, variable: str, value: str
) -> None:
    text, ran = machine.reports(**{variable: value})

    assert text.code == 1 and ran.code == 1
    assert text.stderr == "" and ran.stderr == "", text.stderr + ran.stderr
    assert text.stdout.startswith(f"FAIL  settings  {variable}: "), text.stdout
    assert text.stdout.splitlines()[-1].endswith("1 required check(s) failed, 0 warning(s).")
    [found] = ran.data["checks"]  # nothing else is checked with settings that do not load
    assert found["check"] == "settings" and found["status"] == "fail"
    assert found["summary"].startswith(f"{variable}: "), found
    assert ".env" in found["fix"]
    if variable.endswith("_KEY"):  # a secret is never echoed, even a wrong one
        assert_hidden(text, value)
        assert_hidden(ran, value)
    assert not machine.home.exists()


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("ECHOPILOT_DATABASE_URL", "postgresql+psycopg://postgres:SECRETPW@127.0.0.1:notaport/x"),
        ("ECHOPILOT_QUEUE_URL", "redis://:SECRETPW@127.0.0.1:notaport/0"),
    ],
)
def test_a_url_with_a_bad_port_is_a_failure_naming_it(
    machine: Machine, variable: str, url: str
) -> None:
    ran = machine.run("doctor", "--json", **{variable: url})

    assert ran.code == 1
    assert "unexpected error" not in ran.shown, ran.shown
    [found] = ran.data["checks"]  # a setting that does not load: nothing else is checked
    assert found["check"] == "settings" and found["status"] == "fail", found
    assert found["summary"] == f"{variable}: its port must be a number from 1 to 65535"
    assert_hidden(ran, "SECRETPW")
    assert not machine.home.exists()


def test_the_env_examples_placeholders_fail_naming_each_setting(machine: Machine) -> None:
    # deploy/echopilot.env.example's stand-in is a valid key: only doctor can catch it.
    ran = machine.doctor(
        DASHBOARD_KEY="CHANGE_ME_to_a_long_random_key",
        ECHOPILOT_DATABASE_URL=f"sqlite:///{machine.home / 'placeholder.db'}",
        OPENAI_API_KEY="sk-CHANGE_ME",
    )

    assert ran.code == 1, ran.shown
    found = ran.finding("settings")
    assert found["status"] == "fail", found
    assert "DASHBOARD_KEY" in found["summary"] and "OPENAI_API_KEY" in found["summary"]
    assert "ECHOPILOT_DATABASE_URL" not in found["summary"]
    assert_hidden(ran, "CHANGE_ME_to_a_long_random_key")


# ---- everything unreachable ----------------------------------------------------------


def test_everything_unreachable_fails_check_by_check_and_never_shows_a_secret(
    machine: Machine,
) -> None:
    db_port, redis_port, model_port, smtp_port, stripe_port, hook_port = closed_ports(6)
    secrets = {
        "db": "SECRETPW-db-4k2",
        "redis": "REDISPW-q7Zk1",
        "openai": OPENAI_KEY,
        "smtp": SMTP_PASS,
        "stripe": "sk_test_unreachableKey0x9Lm2",
        "webhook": WEBHOOK_SECRET,
        "hook": "hookpass-Yw3",
        "dashboard": "dashboard-key-0123456789abcdef",
        "telegram": "123456:TelegramSecret-Ab9",
    }
    env = {
        "ECHOPILOT_DATABASE_URL": (
            f"postgresql+psycopg://postgres:{secrets['db']}@127.0.0.1:{db_port}/x"
        ),
        "ECHOPILOT_QUEUE_URL": f"redis://:{secrets['redis']}@127.0.0.1:{redis_port}/0",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "OPENAI_API_KEY": secrets["openai"],
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "SMTP_USER": SMTP_USER,
        "SMTP_PASS": secrets["smtp"],
        "SMTP_FROM": "alerts@example.com",
        "ALERT_TO": "ops@example.com",
        "STRIPE_SECRET_KEY": secrets["stripe"],
        "STRIPE_WEBHOOK_SECRET": secrets["webhook"],
        "ECHOPILOT_STRIPE_API_BASE": f"http://127.0.0.1:{stripe_port}",
        "ECHOPILOT_ALERT_URLS": f"json://user:{secrets['hook']}@127.0.0.1:{hook_port}/hook",
        "DASHBOARD_KEY": secrets["dashboard"],
        "TELEGRAM_BOT_TOKEN": secrets["telegram"],
        "TELEGRAM_CHAT_ID": "-1001234",
    }

    started = time.monotonic()
    text, ran = machine.reports(**env)
    spent = time.monotonic() - started

    assert ran.code == 1 and text.code == 1
    expected = {
        "database": ("cannot reach the database", f"127.0.0.1:{db_port}", "ECHOPILOT_DATABASE_URL"),
        "queue": ("cannot reach the queue", f"127.0.0.1:{redis_port}", "ECHOPILOT_QUEUE_URL"),
        "model": ("cannot reach", f"127.0.0.1:{model_port}", "OPENAI_BASE_URL"),
        "email": ("cannot reach the mail server", f"127.0.0.1:{smtp_port}", "SMTP_HOST"),
        "stripe": ("Stripe unreachable", "Connection refused", "ECHOPILOT_STRIPE_API_BASE"),
    }
    for check, (cause, where, setting) in expected.items():
        found = ran.finding(check)
        assert found["status"] == "fail", found
        assert cause in found["summary"] and where in found["summary"], found
        assert setting in found["fix"], found
    assert ran.data["failed"] == len(expected)
    for check in ("migrations", "clock", "scheduler", "workers"):
        assert ran.status(check) == "skip"
    # The channels are only parsed without --send-test: named, none of them reached.
    channels = ran.finding("alert channels")
    assert channels["status"] == "ok" and channels["summary"].startswith("3 parsed: ")
    assert f"json://127.0.0.1:{hook_port}" in channels["summary"]
    assert "tgram://... (TELEGRAM_BOT_TOKEN)" in channels["summary"]
    assert ran.status("settings") == "ok" and ran.status("home") == "warn"
    assert "FAIL  database" in text.stdout and "5 required check(s) failed" in text.stdout

    for shown in (ran, text):
        assert_hidden(shown, *secrets.values())
    assert spent < 20, f"two reports of unreachable services took {spent:.1f} s"
    assert not machine.home.exists()


# ---- the model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server_for_doctor() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    yield server
    server.stop()


@pytest.fixture
def model(model_server_for_doctor: FakeModelServer) -> FakeModelServer:
    """The module's fake model server, as it starts: both default models, any key."""
    server = model_server_for_doctor
    server.models = ["gpt-4o", "gpt-4o-mini"]
    server.key = None
    server.model_lists = 0
    server.requests.clear()
    return server


def model_env(server: FakeModelServer, key: str = OPENAI_KEY, **more: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": key, **more}


def test_a_model_server_serving_the_configured_models_is_ok(
    machine: Machine, model: FakeModelServer
) -> None:
    ran = machine.doctor(**model_env(model))

    found = ran.finding("model")
    assert found["status"] == "ok", found
    assert found["summary"] == f"{model.url} serves gpt-4o, gpt-4o-mini"
    assert model.model_lists == 1 and model.requests == []  # listed, nothing generated
    assert ran.code == 0
    assert_hidden(ran, OPENAI_KEY)


def test_a_refused_model_key_fails_naming_openai_api_key_without_showing_it(
    machine: Machine, model: FakeModelServer
) -> None:
    model.key = "sk-the-right-key-000111"
    wrong = "sk-a-wrong-key-Pz81Lq"

    ran = machine.doctor(**model_env(model, key=wrong))

    assert ran.code == 1
    found = ran.finding("model")
    assert found["status"] == "fail", found
    assert "refused the key (401)" in found["summary"]
    assert "OPENAI_API_KEY" in found["fix"]
    assert_hidden(ran, wrong)
    assert model.requests == []


def test_a_model_the_server_does_not_list_fails_naming_echopilot_model(
    machine: Machine, model: FakeModelServer
) -> None:
    model.models = ["gpt-4o-mini", "llama-3-8b"]

    ran = machine.doctor(**model_env(model))

    assert ran.code == 1
    found = ran.finding("model")
    assert found["status"] == "fail", found
    assert "does not list 'gpt-4o'" in found["summary"]
    assert "gpt-4o-mini, llama-3-8b" in found["summary"]  # what it does serve
    assert "ECHOPILOT_MODEL" in found["fix"] and "QA_MODEL" not in found["fix"]


def test_a_server_without_a_models_list_gets_exactly_one_one_token_call(
    machine: Machine, model: FakeModelServer
) -> None:
    model.models = None

    ran = machine.doctor(**model_env(model, ECHOPILOT_MODEL="local-model"))

    found = ran.finding("model")
    assert found["status"] == "ok", found
    assert "answered a one-token call with local-model" in found["summary"]
    [call] = model.requests
    assert call.model == "local-model"
    assert call.body["max_tokens"] == 1
    assert ran.code == 0


# ---- email ---------------------------------------------------------------------------


def mail_env(port: int, password: str = SMTP_PASS) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_USER": SMTP_USER,
        "SMTP_PASS": password,
        "SMTP_FROM": "alerts@example.com",
        "ALERT_TO": "ops@example.com",
    }


def test_an_accepted_mail_login_is_ok_and_no_message_is_sent(machine: Machine) -> None:
    login = Login(SMTP_USER, SMTP_PASS)
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        ran = machine.doctor(**mail_env(port))

    found = ran.finding("email")
    assert found["status"] == "ok", found
    assert found["summary"] == f"127.0.0.1:{port} (none): logged in as '{SMTP_USER}'"
    assert login.tried == [(SMTP_USER.encode(), SMTP_PASS.encode())]
    assert mailbox.messages == []  # logged in, then goodbye: nothing delivered
    assert ran.code == 0
    assert_hidden(ran, SMTP_PASS)


def test_a_refused_mail_login_fails_naming_the_settings_without_the_password(
    machine: Machine,
) -> None:
    wrong = "wrong-pass-Vb72kQ"
    login = Login(SMTP_USER, SMTP_PASS)  # refusing, it echoes the password it was given
    with smtp_server(authenticator=login, auth_require_tls=False) as (mailbox, port):
        ran = machine.doctor(**mail_env(port, password=wrong))

    assert ran.code == 1
    found = ran.finding("email")
    assert found["status"] == "fail", found
    assert found["summary"].startswith("SMTP_USER/SMTP_PASS: login as 'echopilot' refused")
    assert "535" in found["summary"]
    assert found["fix"].startswith("correct SMTP_USER/SMTP_PASS")
    assert login.tried and all(
        tried == (SMTP_USER.encode(), wrong.encode()) for tried in login.tried
    )
    assert mailbox.messages == []
    assert_hidden(ran, wrong)


# ---- alert channels ------------------------------------------------------------------


def test_an_alert_channel_is_parsed_without_a_message_and_sent_one_with_send_test(
    machine: Machine,
) -> None:
    with Receiver() as receiver:
        url = receiver.url("/alerts/in")
        parsed = machine.doctor(ECHOPILOT_ALERT_URLS=url)
        posts_after_parse = list(receiver.posts)
        tested = machine.doctor("--send-test", ECHOPILOT_ALERT_URLS=url)

    found = parsed.finding("alert channels")
    assert found["status"] == "ok", found
    assert found["summary"].startswith(f"1 parsed: json://127.0.0.1:{receiver.port}")
    assert "--send-test" in found["summary"]
    assert posts_after_parse == []

    sent = tested.finding("alert channels")
    assert sent["status"] == "ok", sent
    assert sent["summary"] == f"json://127.0.0.1:{receiver.port}: test message delivered"
    [(path, payload)] = receiver.posts
    assert path == "/alerts/in"
    assert payload["title"] == "EchoPilot test message"
    assert "--send-test" in payload["message"]
    assert parsed.code == 0 and tested.code == 0


def test_a_channel_that_cannot_be_reached_fails_by_name_and_the_others_still_get_theirs(
    machine: Machine,
) -> None:
    [refused] = closed_ports(1)
    with Receiver() as receiver:
        urls = f"{receiver.url()}, json://127.0.0.1:{refused}/hook"
        ran = machine.doctor("--send-test", ECHOPILOT_ALERT_URLS=urls)

    assert ran.code == 1
    good, bad = ran.findings("alert channels")
    assert good["status"] == "ok", good
    assert good["summary"].startswith(f"json://127.0.0.1:{receiver.port}: ")
    assert bad["status"] == "fail", bad
    assert bad["summary"].startswith(f"json://127.0.0.1:{refused}: test message not delivered")
    assert "ECHOPILOT_ALERT_URLS" in bad["fix"]
    assert len(receiver.posts) == 1
    # The per-channel lines stand where the one "alert channels" line stood.
    order = [c["check"] for c in ran.data["checks"]]
    assert order == [*CHECKS[:11], "alert channels", *CHECKS[11:]]


def test_a_malformed_channel_entry_fails_naming_the_setting_and_its_position(
    machine: Machine,
) -> None:
    with Receiver() as receiver:
        ran = machine.doctor(ECHOPILOT_ALERT_URLS=f"{receiver.url()} notaurl")

    assert ran.code == 1
    problem, usable = ran.findings("alert channels")
    assert problem["status"] == "fail", problem
    assert problem["summary"].startswith("ECHOPILOT_ALERT_URLS: entry 2")
    assert "not a valid Apprise URL" in problem["summary"]
    assert "setting it names" in problem["fix"]
    assert usable["status"] == "ok" and usable["summary"].startswith("1 parsed: ")
    assert receiver.posts == []


# ---- Stripe --------------------------------------------------------------------------


@pytest.fixture
def stripe() -> Iterator[FakeStripeServer]:
    server = FakeStripeServer(key=STRIPE_KEY).start()
    yield server
    server.stop()


def stripe_env(server: FakeStripeServer, key: str = STRIPE_KEY, **more: str) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": key, "ECHOPILOT_STRIPE_API_BASE": server.url, **more}


def test_a_working_stripe_key_without_a_webhook_secret_is_a_warning(
    machine: Machine, stripe: FakeStripeServer
) -> None:
    ran = machine.doctor(**stripe_env(stripe))
    signed = machine.doctor(**stripe_env(stripe, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET))

    found = ran.finding("stripe")
    assert found["status"] == "warn", found
    assert found["summary"].startswith("the test-mode key reads events and payment links")
    assert "STRIPE_WEBHOOK_SECRET is not set" in found["summary"]
    assert "STRIPE_WEBHOOK_SECRET" in found["fix"]
    assert ran.code == 0
    with_secret = signed.finding("stripe")
    assert with_secret["status"] == "ok", with_secret
    assert "webhook secret set" in with_secret["summary"]
    assert signed.code == 0
    # Read only: events and payment links listed, nothing made.
    assert {(r.method, r.path) for r in stripe.requests} == {
        ("GET", "/v1/events"),
        ("GET", "/v1/payment_links"),
    }
    assert stripe.links_created == 0
    assert_hidden(ran, STRIPE_KEY)
    assert_hidden(signed, STRIPE_KEY, WEBHOOK_SECRET)


def test_a_refused_stripe_key_fails_without_showing_it(
    machine: Machine, stripe: FakeStripeServer
) -> None:
    wrong = "sk_test_notTheRightKeyAtAll77"

    ran = machine.doctor(**stripe_env(stripe, key=wrong))

    assert ran.code == 1
    found = ran.finding("stripe")
    assert found["status"] == "fail", found
    assert "Stripe refused the key (STRIPE_SECRET_KEY)" in found["summary"]
    assert "STRIPE_SECRET_KEY" in found["fix"]
    assert_hidden(ran, wrong)


def test_a_restricted_key_without_payment_link_access_fails_naming_the_permission(
    machine: Machine,
) -> None:
    restricted = "rk_test_restrictedKey51Hq0x2"
    server = FakeStripeServer(key=restricted).start()
    try:
        server.deny("/v1/payment_links", "rak_payment_link_read")
        ran = machine.doctor(**stripe_env(server, key=restricted))
    finally:
        server.stop()

    assert ran.code == 1
    found = ran.finding("stripe")
    assert found["status"] == "fail", found
    assert "lacks a permission" in found["summary"]
    assert "rak_payment_link_read" in found["summary"]
    assert "payment links" in found["fix"]
    assert_hidden(ran, restricted)


# ---- Notion --------------------------------------------------------------------------


def notion_env(server: NotionServer, *, joblog: bool = False) -> dict[str, str]:
    env = {
        "NOTION_TOKEN": NOTION_TOKEN,
        "NOTION_QUEUE_DB_ID": server.queue_db_id,
        "ECHOPILOT_NOTION_API_BASE": server.base_url,
        "ECHOPILOT_NOTION_TIMEOUT_SECONDS": "5",
        "ECHOPILOT_NOTION_REQUESTS_PER_SECOND": "3",  # Notion's own limit: fewer waits
    }
    if joblog:
        env["NOTION_JOBLOG_DB_ID"] = server.joblog_db_id
    return env


def connector(machine: Machine) -> tuple[Any, ...]:
    """The connector's state row: status, reason, and when it last changed and was checked."""
    with sqlite3.connect(machine.home / "echopilot.db") as conn:
        row = conn.execute(
            "SELECT status, reason, changed_at, checked_at FROM notion_state WHERE id = 1"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_usable_notion_queue_is_ok_and_doctor_only_reads(machine: Machine) -> None:
    with NotionServer() as server:
        page = server.add_page("Waiting", description="Some work.")
        ran = machine.doctor(**notion_env(server, joblog=True))
        methods = {r.method for r in server.requests}
        ticked = server.page(page)

    found = ran.finding("notion")
    assert found["status"] == "ok", found
    assert found["summary"] == "the queue database is usable, and the Job Log database"
    assert methods == {"GET"}  # no query for ticked pages, nothing written
    assert ticked["Trigger"] is True and ticked["Job ID"] is None  # the page is not taken
    assert ran.code == 0
    assert_hidden(ran, NOTION_TOKEN)


def test_a_queue_missing_a_property_fails_naming_it(machine: Machine) -> None:
    with NotionServer(queue_schema=queue_schema(Trigger=None)) as server:
        ran = machine.doctor(**notion_env(server))

    assert ran.code == 1
    found = ran.finding("notion")
    assert found["status"] == "fail", found
    assert "the queue database has no property 'Trigger': add it as Checkbox" in found["summary"]
    assert "echopilot notion check" in found["fix"]


def test_a_refused_notion_token_fails_and_leaves_the_connector_as_it_was(
    machine: Machine,
) -> None:
    with NotionServer() as server:
        env = notion_env(server)
        checked = machine.run("notion", "check", **env)
        assert checked.code == 0, checked.shown
        before = connector(machine)
        assert before[0] == "on", before

        server.deny(401)
        ran = machine.doctor(**env)

    found = ran.finding("notion")
    assert found["status"] == "fail", found
    assert "refused the token (NOTION_TOKEN)" in found["summary"], found
    assert "NOTION_TOKEN" in found["fix"]
    assert ran.code == 1
    assert_hidden(ran, NOTION_TOKEN)
    # A poll would stop the connector on a refused token; doctor leaves it as it was.
    assert connector(machine) == before


def test_a_stopped_connector_is_a_warning_and_doctor_does_not_turn_it_on(
    machine: Machine,
) -> None:
    with NotionServer() as server:
        env = notion_env(server)
        server.deny(401)
        machine.run("notion", "sync", **env)  # refused: the connector stops
        stopped = connector(machine)
        assert stopped[0] == "stopped", stopped
        server.deny(None)
        asked = len(server.requests)

        ran = machine.doctor(**env)
        methods = {r.method for r in server.requests[asked:]}

    found = ran.finding("notion")
    assert found["status"] == "warn", found
    assert "the connector is stopped" in found["summary"]
    assert "refused the token" in found["summary"]  # the reason it stopped
    assert "`echopilot notion check` turns it back on" in found["fix"]
    assert ran.code == 0
    assert methods == {"GET"}
    assert connector(machine) == stopped  # still stopped: `notion check` turns it on, not doctor


# ---- the clock (PostgreSQL) ----------------------------------------------------------


@pytest.mark.postgres
def test_the_clocks_of_this_host_and_postgresql_agree(machine: Machine, postgres_url: str) -> None:
    ran = machine.doctor(ECHOPILOT_DATABASE_URL=postgres_url)

    assert ran.finding("database")["summary"].startswith("PostgreSQL ")
    found = ran.finding("clock")
    assert found["status"] == "ok", found
    assert found["summary"].startswith("the database's clock is ")
    skew = float(found["summary"].split()[4])
    assert skew < 1.0, found
    assert ran.code == 0


@pytest.mark.postgres
def test_a_host_clock_30_seconds_ahead_of_postgresql_fails_the_clock_check(
    machine: Machine, postgres_url: str
) -> None:
    if shutil.which("faketime") is None:
        message = "the faketime command is not installed (Debian package faketime)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}, and ECHOPILOT_TEST_REQUIRE_SERVICES=1 makes it mandatory")
        pytest.skip(message)

    faked = ["faketime", "-f", "+30s", *ECHOPILOT, "doctor", "--json"]
    ran = report(machine.command(faked, {"ECHOPILOT_DATABASE_URL": postgres_url}))

    assert ran.code == 1, ran.shown
    found = ran.finding("clock")
    assert found["status"] == "fail", found
    skewed = re.match(r"the database's clock is ([\d.]+) s behind this host", found["summary"])
    assert skewed, found
    assert 28 <= float(skewed.group(1)) <= 32, found
    assert "time synchronisation" in found["fix"]
    assert ran.status("database") == "ok"


# ---- the home folder -----------------------------------------------------------------


def test_a_home_others_can_read_is_a_warning_and_a_readable_key_a_failure(
    machine: Machine,
) -> None:
    machine.home.mkdir()
    machine.home.chmod(0o755)

    opened = machine.doctor()

    found = opened.finding("home")
    assert found["status"] == "warn", found
    assert "(mode 755) can be read by other users" in found["summary"]
    assert found["fix"] == "chmod 700 var"
    assert opened.code == 0

    machine.home.chmod(0o700)
    key = machine.home / "dashboard.key"
    key.write_text("a-dashboard-key-0123456789abcdef\n")
    key.chmod(0o644)

    exposed = machine.doctor()

    found = exposed.finding("home")
    assert found["status"] == "fail", found
    assert "dashboard key" in found["summary"] and "read by other users" in found["summary"]
    assert found["fix"].startswith("chmod 600 ")
    assert exposed.code == 1
    assert_hidden(exposed, "a-dashboard-key-0123456789abcdef")
    assert (key.stat().st_mode & 0o777) == 0o644  # reported, not changed


# ---- liveness ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_running_worker_is_seen_and_a_stopped_one_is_not(machine: Machine) -> None:
    log = (machine.root / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "worker", "--concurrency", "2"],
        cwd=machine.root,
        env=machine.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            ran = machine.doctor()
            if ran.status("workers") == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        found = ran.finding("workers")
        assert found["status"] == "ok", (found, (machine.root / "worker.log").read_text())
        assert found["summary"] == "1 worker(s) running, 2 job(s) at once in all"
        assert ran.status("queue") == "ok"  # the worker made the embedded queue
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            log.close()

    # A worker gone from this host counts as dead at once, whatever its last heartbeat.
    after = machine.doctor()
    found = after.finding("workers")
    assert found["status"] == "warn", found
    assert "`echopilot worker`" in found["fix"]


def test_a_process_on_a_clock_file_is_warned_that_its_time_is_simulated(machine: Machine) -> None:
    from datetime import UTC, datetime

    from echopilot import clock

    path = machine.root / "clock.json"
    clock.set_file(path, datetime(2031, 5, 6, 7, 8, tzinfo=UTC))
    machine.upgrade(ECHOPILOT_CLOCK_FILE=str(path))
    ran = machine.doctor(ECHOPILOT_CLOCK_FILE=str(path))

    found = ran.finding("clock")
    assert found["status"] == "warn", found
    assert "ECHOPILOT_CLOCK_FILE" in found["summary"] and "2031-05-06 07:08" in found["summary"]
    assert found["fix"].startswith("unset ECHOPILOT_CLOCK_FILE")
