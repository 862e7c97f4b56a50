"""The dashboard key guards every /api/ route and /metrics; it never leaks into an answer;
repeated failures are rate-limited; every answer carries the security headers; the server
binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import socket
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.testclient import TestClient

from echopilot import keys
from echopilot.api.app import create_app
from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog, Job, SchedulerState
from echopilot.runtime import Runtime
from tests.api_support import (
    TEST_KEY,
    assert_error,
    assert_ok,
    fill_path,
    non_loopback_address,
    protected_operations,
    running,
    start_child,
)

WRONG_KEY = "not-the-key-0123456789abcdef"


def _client(app: FastAPI, host: str) -> TestClient:
    """A client with an address of its own (the lock-out counts failures per address)."""
    return TestClient(app, client=(host, 50000), raise_server_exceptions=False)


def test_every_protected_route_rejects_a_missing_or_wrong_key_with_401_and_changes_nothing(
    offline: Runtime,
) -> None:
    app = create_app(offline, TEST_KEY)
    operations = protected_operations(app)
    documented = {
        (method.upper(), fill_path(path))
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path.startswith("/api/") or path == "/metrics"
    }
    assert documented <= set(operations), documented - set(operations)
    assert ("GET", "/api/automations/status") in operations

    for n, (method, path) in enumerate(operations):
        # A client address of its own per route, so that the lock-out never interferes.
        client = _client(app, f"10.1.{n // 250}.{n % 250 + 1}")
        for headers in (
            {},
            {"X-Dash-Key": WRONG_KEY},
            {"Authorization": f"Bearer {WRONG_KEY}"},
            {"Authorization": f"Basic {TEST_KEY}"},  # the right key under the wrong scheme
        ):
            response = client.request(method, path, headers=headers)
            error = assert_error(response, 401, "unauthorized")
            assert "X-Dash-Key" in error["message"], (method, path, error)

    with read_session(offline.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        # Nothing but the failed attempts themselves is recorded (four per route).
        actions = session.scalars(select(AuditLog.action)).all()
        assert actions == ["auth.failed"] * (4 * len(operations))
        state = session.scalars(select(SchedulerState)).one_or_none()
        assert state is None or state.paused is False


def test_the_key_is_accepted_as_x_dash_key_and_as_a_bearer_token(offline: Runtime) -> None:
    app = create_app(offline, TEST_KEY)
    client = _client(app, "10.2.0.1")
    for headers in ({"X-Dash-Key": TEST_KEY}, {"Authorization": f"Bearer {TEST_KEY}"}):
        data = assert_ok(client.get("/api/jobs", headers=headers))
        assert data == {"items": [], "next_cursor": None}
        metrics = client.get("/metrics", headers=headers)
        assert metrics.status_code == 200
        assert "echopilot_jobs" in metrics.text


def test_ten_wrong_keys_within_a_minute_lock_the_client_out_even_with_the_right_key(
    offline: Runtime,
) -> None:
    app = create_app(offline, TEST_KEY)
    attacker = _client(app, "10.3.0.1")
    for _ in range(10):
        assert_error(attacker.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY}), 401)

    locked = attacker.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY})
    error = assert_error(locked, 429, "rate_limited")
    assert int(locked.headers["Retry-After"]) > 0, locked.headers
    assert "locked out for 5 minutes" in error["message"]
    assert f"try again in {locked.headers['Retry-After']} s" in error["message"]
    bearer = attacker.get("/metrics", headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert_error(bearer, 429, "rate_limited")

    # Another client is not affected.
    other = _client(app, "10.3.0.2")
    assert_ok(other.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY}))


def _leaks(response: httpx.Response, key: str) -> list[str]:
    where = []
    if key in response.text:
        where.append("body")
    where += [f"header {name}" for name, value in response.headers.items() if key in value]
    return where


@pytest.mark.parametrize("source", ["DASHBOARD_KEY", "generated"])
def test_the_key_never_appears_in_any_answer(
    make_runtime: Callable[..., Runtime], source: str
) -> None:
    if source == "DASHBOARD_KEY":
        rt = make_runtime(ai_provider="offline", dashboard_key=TEST_KEY)
    else:
        rt = make_runtime(ai_provider="offline")
    key = keys.load_or_create(rt.settings)
    if source == "generated":
        path = rt.settings.home / "dashboard.key"
        assert key.generated and key.source == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == key.value
    else:
        assert key.value == TEST_KEY and not key.generated
    app = create_app(rt, key.value)
    client = _client(app, "10.4.0.1")
    good = {"X-Dash-Key": key.value}

    answers: dict[str, httpx.Response] = {}
    for path in (
        "/",
        "/dashboard",
        "/health",
        "/openapi.json",  # without the key: 401
        "/static/dashboard.js",
        "/static/dashboard.css",
    ):
        answers[path] = client.get(path)
    submitted = client.post(
        "/api/jobs", headers=good, json={"name": "n", "task_type": "summary", "input": "text"}
    )
    answers["openapi"] = client.get("/openapi.json", headers=good)
    assert answers["openapi"].status_code == 200
    answers["POST /api/jobs"] = submitted
    assert submitted.status_code == 201
    for method, path in protected_operations(app):
        if method == "GET":
            answers[f"GET {path}"] = response = client.get(path, headers=good)
            # A fresh home has no daily report or brief yet: those are 404 by contract.
            empty = ("/api/reports/daily/latest", "/api/exec/report-latest", "/api/exec/briefs/")
            expected = 404 if path.startswith(empty) else 200
            assert response.status_code == expected, (path, response.text)
    answers["401 missing"] = client.get("/api/jobs")
    answers["401 bearer"] = client.get(
        "/api/jobs", headers={"Authorization": f"Bearer {WRONG_KEY}"}
    )
    answers["404"] = client.get("/api/jobs/999999", headers=good)
    answers["404 route"] = client.get("/api/nosuch", headers=good)
    answers["405"] = client.delete("/api/jobs", headers=good)
    answers["422"] = client.post("/api/jobs", headers=good, json={"name": ""})
    answers["409"] = client.post("/api/jobs/1/retry", headers=good)
    attacker = _client(app, "10.4.0.2")
    for n in range(11):
        answers[f"wrong {n}"] = attacker.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY})
    answers["429"] = attacker.get("/api/jobs", headers=good)
    assert answers["429"].status_code == 429

    leaks = {name: where for name, r in answers.items() if (where := _leaks(r, key.value))}
    assert leaks == {}


def test_serve_never_prints_the_key_into_redirected_output(
    make_runtime: Callable[..., Runtime],
) -> None:
    """Output that goes to a file is kept and shared: the banner says where the key is
    (tests/test_cli_first_run.py checks that a terminal is shown the key once)."""
    rt = make_runtime(ai_provider="offline")
    path = rt.settings.home / "dashboard.key"
    assert not path.exists()

    with running(rt.settings, "serve") as first:
        key = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(key) >= 32
        assert_ok(httpx.get(first.url + "/api/jobs", headers={"X-Dash-Key": key}))
    first_output = first.text()
    assert key not in first_output, first_output
    assert f"New dashboard key generated into {path}" in first_output

    with running(rt.settings, "serve") as second:
        assert path.read_text().strip() == key  # the same key, not a new one
        assert_ok(httpx.get(second.url + "/api/jobs", headers={"Authorization": f"Bearer {key}"}))
    second_output = second.text()
    assert key not in second_output, second_output
    assert f"Dashboard key: in {path}" in second_output

    logs = list((rt.settings.home / "logs").glob("*"))
    assert logs, "serve wrote no log file"
    assert [p.name for p in logs if key in p.read_text(errors="replace")] == []


def _break_database(rt: Runtime) -> None:
    rt.engine.dispose()
    database = rt.settings.home / "echopilot.db"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("DROP TABLE jobs")


def test_every_answer_carries_the_security_headers(
    offline: Runtime, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    app = create_app(offline, TEST_KEY)
    client = _client(app, "10.5.0.1")
    good = {"X-Dash-Key": TEST_KEY}
    answers = {
        "dashboard": client.get("/dashboard"),
        "redirect": client.get("/", follow_redirects=False),
        "static": client.get("/static/dashboard.js"),
        "health": client.get("/health"),
        "openapi": client.get("/openapi.json", headers=good),
        "metrics": client.get("/metrics", headers=good),
        "api": client.get("/api/jobs", headers=good),
        "401": client.get("/api/jobs"),
        "404": client.get("/nowhere"),
        "404 job": client.get("/api/jobs/424242", headers=good),
        "405": client.put("/api/jobs", headers=good),
        "413": client.post("/api/jobs", headers=good, content=b"x" * 3_000_000),
        "422": client.post("/api/jobs", headers=good, json={}),
    }
    attacker = _client(app, "10.5.0.2")
    for _ in range(10):
        attacker.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY})
    answers["429"] = attacker.get("/api/jobs", headers=good)

    broken = make_runtime(ai_provider="offline", home=tmp_path / "broken")
    broken_client = _client(create_app(broken, TEST_KEY), "10.5.0.3")
    assert_ok(broken_client.get("/api/jobs", headers=good))
    _break_database(broken)
    answers["500"] = broken_client.get("/api/jobs", headers=good)

    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "dashboard": 200,
        "redirect": 307,
        "static": 200,
        "health": 200,
        "openapi": 200,
        "metrics": 200,
        "api": 200,
        "401": 401,
        "404": 404,
        "404 job": 404,
        "405": 405,
        "413": 413,
        "422": 422,
        "429": 429,
        "500": 500,
    }
    missing = {}
    for name, response in answers.items():
        problems = []
        csp = response.headers.get("content-security-policy", "")
        script_src = [d.strip() for d in csp.split(";") if d.strip().startswith("script-src")]
        if not script_src or "'unsafe-inline'" in script_src[0]:
            problems.append(f"content-security-policy script-src: {csp!r}")
        if response.headers.get("x-frame-options") != "DENY":
            problems.append("x-frame-options")
        if response.headers.get("x-content-type-options") != "nosniff":
            problems.append("x-content-type-options")
        if problems:
            missing[name] = problems
    assert missing == {}


def test_serve_binds_to_loopback_by_default(make_runtime: Callable[..., Runtime]) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    rt = make_runtime(ai_provider="offline", dashboard_key=TEST_KEY)
    child = start_child(rt.settings, "serve", env={"DASHBOARD_KEY": TEST_KEY})
    try:
        child.wait_healthy()
        with pytest.raises(OSError), socket.create_connection((address, child.port), timeout=2):
            pass
        assert f"http://127.0.0.1:{child.port}/dashboard" in child.text()
        assert "reachable from the network" not in child.text()
    finally:
        child.stop()
