"""The shared world of the tests: settings on a temporary home, a fake model server, and
the database and queue backends (embedded by default; PostgreSQL and Redis when present).

PostgreSQL and Redis variants run when those servers answer, and are skipped (with the
reason in the summary) when they do not, unless ECHOPILOT_TEST_REQUIRE_SERVICES=1, which
`.ci/run` sets: then an unreachable server fails the run instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from echopilot.config import Settings, load_settings
from echopilot.runtime import Runtime
from tests.fakes.model_server import FakeModelServer
from tests.fakes.stripe_server import FakeStripeServer

# The browser tests' shared fixtures (browser, watch, page).
pytest_plugins = ["tests.browser_support"]

PG_URL = os.environ.get(
    "ECHOPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ECHOPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("ECHOPILOT_TEST_REQUIRE_SERVICES") == "1"
BACKENDS = ("embedded", "postgres", "redis")
# "production" is both at once: PostgreSQL for the database, Redis for the queue.


# Settings a developer's shell may hold that must not reach the code under test.
FOREIGN_ENV = (
    "ECHOPILOT_",
    "OPENAI_",
    "SCHED_",
    "DASHBOARD_KEY",
    "SMTP_",
    "ALERT_TO",
    "TELEGRAM_",
    "STRIPE_",
    "NOTION_",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(FOREIGN_ENV) and not name.startswith("ECHOPILOT_TEST_"):
            monkeypatch.delenv(name, raising=False)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def require(service: str, url: str, port: int) -> None:
    if _reachable(url, port):
        return
    message = f"{service} not reachable at {url}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and ECHOPILOT_TEST_REQUIRE_SERVICES=1 makes it mandatory")
    pytest.skip(f"{message}: set ECHOPILOT_TEST_POSTGRES_URL / ECHOPILOT_TEST_REDIS_URL")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    require("PostgreSQL", PG_URL, 5432)
    import psycopg

    name = f"ep_test_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_queue() -> Iterator[tuple[str, str]]:
    """A Redis queue URL and a queue name of this test's own."""
    require("Redis", REDIS_URL, 6379)
    import redis

    name = f"ep-test-{uuid.uuid4().hex[:12]}"
    yield REDIS_URL, name
    client = redis.Redis.from_url(REDIS_URL)
    # Huey keeps only [a-z0-9] of a queue name in its keys (huey.redis.eptest...).
    for pattern in (f"*{name}*", f"*{name.replace('-', '')}*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_server() -> Iterator[FakeStripeServer]:
    server = FakeStripeServer().start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "var"


# Fast retries and short leases, so that no test waits on production timings.
FAST = {
    "ai_retry_base_seconds": 0.01,
    "ai_retry_max_seconds": 2.0,
    "retry_delay_seconds": 0.0,
    "ai_timeout_seconds": 5.0,
}


@pytest.fixture(params=["embedded"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that choose the database and queue; other tests parametrize it wider."""
    kind = request.param
    if kind == "postgres":
        return {"database_url": request.getfixturevalue("postgres_url")}
    if kind == "redis":
        url, name = request.getfixturevalue("redis_queue")
        return {"queue_url": url, "queue_name": name}
    if kind == "production":
        url, name = request.getfixturevalue("redis_queue")
        database = request.getfixturevalue("postgres_url")
        return {"database_url": database, "queue_url": url, "queue_name": name}
    return {}


@pytest.fixture
def make_settings(home: Path, backend: dict[str, Any]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"home": home, "_env_file": None, **FAST, **backend}
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def make_runtime(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        rt = Runtime(make_settings(**overrides))
        rt.migrate()
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def offline(make_runtime: Callable[..., Runtime]) -> Runtime:
    """A runtime on the offline provider."""
    return make_runtime(ai_provider="offline")


@pytest.fixture
def openai_rt(
    make_runtime: Callable[..., Runtime], model_server: FakeModelServer
) -> Callable[..., Runtime]:
    """Make a runtime whose provider is the fake model server through the openai client."""

    def make(**overrides: Any) -> Runtime:
        values = {
            "ai_provider": "openai",
            "openai_api_key": "sk-test-key-123456",
            "openai_base_url": model_server.url,
            **overrides,
        }
        return make_runtime(**values)

    return make


def env_for(settings: Settings) -> dict[str, str]:
    """The environment that makes a child `echopilot` process use `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECHOPILOT_", "OPENAI_")) or k.startswith("ECHOPILOT_TEST_")
    }
    mapping = {
        "ECHOPILOT_HOME": str(settings.home),
        "ECHOPILOT_DATABASE_URL": settings.database_url,
        "ECHOPILOT_QUEUE_URL": settings.queue_url,
        "ECHOPILOT_QUEUE_NAME": settings.queue_name,
        "ECHOPILOT_AI_PROVIDER": settings.ai_provider,
        "OPENAI_BASE_URL": settings.openai_base_url,
        "OPENAI_API_KEY": (
            settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        ),
        "ECHOPILOT_LEASE_SECONDS": str(settings.lease_seconds),
        "ECHOPILOT_RETRY_DELAY_SECONDS": str(settings.retry_delay_seconds),
        "ECHOPILOT_AI_RETRY_BASE_SECONDS": str(settings.ai_retry_base_seconds),
        "ECHOPILOT_AI_TIMEOUT_SECONDS": str(settings.ai_timeout_seconds),
        "ECHOPILOT_WORKER_SHUTDOWN_SECONDS": str(settings.worker_shutdown_seconds),
        "ECHOPILOT_OFFLINE_LATENCY_MS": str(settings.offline_latency_ms),
    }
    env.update({k: v for k, v in mapping.items() if v is not None})
    return env


def run_cli(
    settings: Settings,
    *args: str,
    timeout: float = 120,
    check: bool = False,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `echopilot ARGS` in a child process with `settings` (plus `extra_env`)."""
    result = subprocess.run(
        [sys.executable, "-m", "echopilot", *args],
        env={**env_for(settings), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=settings.home.parent,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"echopilot {' '.join(args)} failed: {result.stderr}")
    return result


def start_cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    settings.home.mkdir(parents=True, exist_ok=True)
    log = (settings.home / f"child-{uuid.uuid4().hex[:6]}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "echopilot", *args],
        env=env_for(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=settings.home.parent,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 30, every: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def builtin_tasks_off() -> dict[str, str]:
    """Every built-in scheduled task set "off": scheduler tests run their probe tasks
    alone (a task added later is off here without a change)."""
    from echopilot.scheduler.tasks import registry

    return {
        name: "off"
        for name, task in registry().items()
        if task.func.__module__ == "echopilot.scheduler.builtin"
    }
