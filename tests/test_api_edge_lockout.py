"""The key lock-out at the edge: it counts the connecting address (X-Forwarded-For only from
the proxies named in ECHOPILOT_TRUSTED_PROXIES), holds across server processes that share
the database, and every failure and lock-out is in api.log and the audit log, without the
key. Real servers, but for what is the app's own (counting, clearing, IPv6 networks)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import delete, select

from echopilot.api.app import create_app
from echopilot.api.auth import AuthError, KeyGuard
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import AuditLog, KeyFailure
from echopilot.runtime import Runtime
from tests.api_support import (
    TEST_KEY,
    Child,
    assert_error,
    assert_ok,
    client_at,
    running,
    running_together,
)
from tests.conftest import wait_for

WRONG_KEY = "not-the-key-0123456789abcdef"
# Wrong keys that share a long prefix with the right one: no prefix may reach a log either.
NEAR_KEYS = [TEST_KEY[:-2] + f"{n:02d}" for n in range(10)]
SERVE_ENV = {"DASHBOARD_KEY": TEST_KEY}
GOOD = {"X-Dash-Key": TEST_KEY}


def get_jobs(server: Child, key: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Dash-Key": key}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(server.url + "/api/jobs", headers=headers, timeout=10)


def assert_locked_out(response: httpx.Response) -> None:
    error = assert_error(response, 429, "rate_limited")
    assert "locked out for 5 minutes" in error["message"], error
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 300
    assert f"try again in {retry_after} s" in error["message"], error


def failure_rows(rt: Runtime) -> dict[str, tuple[int, bool]]:
    """client -> (failures, locked) from the key_failures table."""
    with read_session(rt.sessions) as session:
        return {
            row.client: (row.failures, row.locked_until is not None)
            for row in session.scalars(select(KeyFailure))
        }


def audit_rows(rt: Runtime) -> list[tuple[str, str | None, dict[str, Any]]]:
    with read_session(rt.sessions) as session:
        return [
            (row.action, row.target, row.details)
            for row in session.scalars(select(AuditLog).order_by(AuditLog.id))
        ]


def test_rotating_x_forwarded_for_does_not_escape_the_lock_out(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with running(rt.settings, "serve", env=SERVE_ENV) as server:
        statuses = [
            get_jobs(server, WRONG_KEY, forwarded_for=f"10.8.{n}.1").status_code for n in range(20)
        ]
        assert statuses == [401] * 10 + [429] * 10
        assert_locked_out(get_jobs(server, TEST_KEY, forwarded_for="10.8.99.1"))
        assert_locked_out(get_jobs(server, TEST_KEY))
    assert failure_rows(rt) == {"127.0.0.1": (10, True)}


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    trusting = {**SERVE_ENV, "ECHOPILOT_TRUSTED_PROXIES": "127.0.0.1, 192.168.0.0/16"}
    with running_together(rt.settings, (("serve",), SERVE_ENV), (("serve",), trusting)) as (
        direct,
        behind_proxy,
    ):
        # Without trusted proxies, naming 10.9.9.9 locks out the sender, not 10.9.9.9.
        for _ in range(10):
            assert_error(get_jobs(direct, WRONG_KEY, forwarded_for="10.9.9.9"), 401)
        assert_locked_out(get_jobs(direct, TEST_KEY, forwarded_for="10.9.9.9"))
        assert failure_rows(rt) == {"127.0.0.1": (10, True)}

        # Behind a trusted proxy (here 127.0.0.1, itself locked out), the client is the
        # address the proxy forwards: 10.9.9.9 was never locked out.
        assert_ok(get_jobs(behind_proxy, TEST_KEY, forwarded_for="10.9.9.9"))
        for _ in range(10):
            assert_error(get_jobs(behind_proxy, WRONG_KEY, forwarded_for="10.7.7.7"), 401)
        assert_locked_out(get_jobs(behind_proxy, TEST_KEY, forwarded_for="10.7.7.7"))
        assert_ok(get_jobs(behind_proxy, TEST_KEY, forwarded_for="10.7.7.8"))
        # uvicorn skips trusted hops from the right: the client is the first untrusted one.
        assert_ok(get_jobs(behind_proxy, TEST_KEY, forwarded_for="10.7.7.7, 198.51.100.5"))
        chain = "10.7.7.7, 192.168.1.1"  # 192.168.1.1: a trusted proxy in a trusted network
        assert_locked_out(get_jobs(behind_proxy, TEST_KEY, forwarded_for=chain))
    assert failure_rows(rt) == {"127.0.0.1": (10, True), "10.7.7.7": (10, True)}


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_a_lock_out_made_in_one_server_process_holds_in_another_within_a_second(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with running_together(rt.settings, (("serve",), SERVE_ENV), (("serve",), SERVE_ENV)) as (
        first,
        second,
    ):
        assert_ok(get_jobs(second, TEST_KEY))  # the second has its view of the lock-outs
        for _ in range(10):
            assert_error(get_jobs(first, WRONG_KEY), 401)
        locked_at = time.monotonic()
        assert_locked_out(get_jobs(first, TEST_KEY))

        wait_for(lambda: get_jobs(second, TEST_KEY).status_code == 429, timeout=10)
        took = time.monotonic() - locked_at
        assert took < 2.0, f"the second process took {took:.1f}s to see the lock-out"
        assert_locked_out(get_jobs(second, TEST_KEY))
        # A wrong key there now is answered 429 too, and counts no further.
        assert_locked_out(get_jobs(second, WRONG_KEY))
    assert failure_rows(rt) == {"127.0.0.1": (10, True)}


def test_a_lock_out_holds_across_the_processes_of_serve_workers(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with running(rt.settings, "serve", "--workers", "2", env=SERVE_ENV) as server:
        with httpx.Client(timeout=10) as client:  # one connection: one worker
            for _ in range(10):
                response = client.get(server.url + "/api/jobs", headers={"X-Dash-Key": WRONG_KEY})
                assert_error(response, 401)

        def every_worker_refuses() -> bool:
            # New connections, so that both processes answer some of them.
            answers = [get_jobs(server, TEST_KEY).status_code for _ in range(8)]
            return answers == [429] * 8

        wait_for(every_worker_refuses, timeout=10, every=0.2)
        # The workers run EchoPilot's protocol too: bounded heads, no server banner.
        big = httpx.get(server.url + "/health", headers={"X-Big": "a" * 40_000})
        assert_error(big, 431, "headers_too_large")
        assert "server" not in big.headers
    assert failure_rows(rt) == {"127.0.0.1": (10, True)}


def test_failures_and_the_lock_out_are_logged_and_audited_without_the_key(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    with running(rt.settings, "serve", env=SERVE_ENV) as server:
        for key in NEAR_KEYS[:9]:
            assert_error(get_jobs(server, key), 401)
        missing = httpx.post(server.url + "/api/jobs", content=b"{}", timeout=10)
        assert_error(missing, 401)
        assert_locked_out(get_jobs(server, TEST_KEY))
        console = server.text()

    lines = [
        json.loads(line)
        for line in (rt.settings.home / "logs" / "api.log").read_text().splitlines()
    ]
    failed = [line for line in lines if line["event"] == "auth.failed"]
    locked = [line for line in lines if line["event"] == "auth.locked_out"]
    assert [line["failures"] for line in failed] == list(range(1, 11))
    assert {line["client"] for line in failed + locked} == {"127.0.0.1"}
    assert [line["reason"] for line in failed] == ["wrong key"] * 9 + ["missing key"]
    assert failed[-1]["method"] == "POST" and failed[-1]["path"] == "/api/jobs"
    assert len(locked) == 1 and locked[0]["lockout_seconds"] == 300
    assert {line["logger"] for line in failed + locked} == {"echopilot.api"}

    audited = audit_rows(rt)
    assert [action for action, _, _ in audited] == ["auth.failed"] * 10 + ["auth.locked_out"]
    assert {target for _, target, _ in audited} == {"client:127.0.0.1"}
    assert audited[-1][2]["failures"] == 10

    # Neither the key nor any wrong key, nor a prefix of them, is written anywhere.
    written = {
        "api.log": (rt.settings.home / "logs" / "api.log").read_text(),
        "console": console,
        "audit_log": json.dumps(audited),
    }
    for key in [TEST_KEY, *NEAR_KEYS]:
        for where, text in written.items():
            assert key[:8] not in text, f"a prefix of a key is in {where}"


# What is the app's own: counting, clearing on success, IPv6 networks (in-process).


def test_a_success_clears_the_failures_of_its_client(offline: Runtime) -> None:
    app = create_app(offline, TEST_KEY)
    client = client_at(app, "10.6.0.1")
    for _ in range(9):
        assert_error(client.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY}), 401)
    assert failure_rows(offline) == {"10.6.0.1": (9, False)}
    assert_ok(client.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY}))
    assert failure_rows(offline) == {}
    for _ in range(9):  # a fresh count: nine more are not a lock-out
        assert_error(client.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY}), 401)
    assert_ok(client.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY}))


def test_ipv6_clients_are_counted_per_64_network(offline: Runtime) -> None:
    app = create_app(offline, TEST_KEY)
    for n in range(10):
        rotating = client_at(app, f"2001:db8:1:2::{n + 1:x}")
        assert_error(rotating.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY}), 401)
    assert_locked_out(
        client_at(app, "2001:db8:1:2:ffff::9").get("/api/jobs", headers={"X-Dash-Key": TEST_KEY})
    )
    neighbour = client_at(app, "2001:db8:1:3::1")
    assert_ok(neighbour.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY}))
    assert failure_rows(offline) == {"2001:db8:1:2::/64": (10, True)}


def test_deleting_its_row_lifts_a_lock_out_within_a_second(offline: Runtime) -> None:
    app = create_app(offline, TEST_KEY)
    client = client_at(app, "10.6.0.9")
    for _ in range(10):
        assert_error(client.get("/api/jobs", headers={"X-Dash-Key": WRONG_KEY}), 401)
    assert_locked_out(client.get("/api/jobs", headers={"X-Dash-Key": TEST_KEY}))

    with write_session(offline.sessions) as session:  # what docs/operations.md tells owners
        session.execute(delete(KeyFailure).where(KeyFailure.client == "10.6.0.9"))
    lifted_at = time.monotonic()
    wait_for(lambda: client.get("/api/jobs", headers=GOOD).status_code == 200, timeout=5)
    assert time.monotonic() - lifted_at < 2.0


def test_old_failures_expire_after_a_minute_and_a_lock_out_after_five(offline: Runtime) -> None:
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    guard = KeyGuard(TEST_KEY, offline, clock=lambda: now[0])

    def attempt(key: str) -> int:
        async def check() -> int:
            try:
                await guard.check("10.6.0.20", key)
            except AuthError as exc:
                return exc.status
            return 200

        return anyio.run(check)

    assert [attempt(WRONG_KEY) for _ in range(9)] == [401] * 9
    now[0] += timedelta(seconds=61)  # a new window: those nine no longer count
    assert [attempt(WRONG_KEY) for _ in range(9)] == [401] * 9
    assert attempt(TEST_KEY) == 200
    assert [attempt(WRONG_KEY) for _ in range(10)] == [401] * 10
    assert attempt(TEST_KEY) == 429
    now[0] += timedelta(seconds=299)
    assert attempt(TEST_KEY) == 429
    now[0] += timedelta(seconds=2)
    assert attempt(TEST_KEY) == 200
    assert attempt(WRONG_KEY) == 401  # a fresh count after the lock-out
    assert failure_rows(offline) == {"10.6.0.20": (1, False)}


def test_pages_of_other_sites_are_refused_without_counting_against_the_owner(
    make_runtime: Callable[..., Runtime],
) -> None:
    # A web page the owner visits can make the browser send requests to 127.0.0.1; they
    # carry Sec-Fetch-Site and must not lock the owner (also 127.0.0.1) out.
    rt = make_runtime(ai_provider="offline", dashboard_key=TEST_KEY)
    with running(rt.settings, "serve", env=SERVE_ENV) as server:
        for site in ("cross-site", "same-site") * 8:
            answer = httpx.get(
                server.url + "/api/jobs", headers={"Sec-Fetch-Site": site}, timeout=10
            )
            assert_error(answer, 403, "forbidden")
        assert_ok(httpx.get(server.url + "/api/jobs", headers=GOOD, timeout=10))
        same = {"Sec-Fetch-Site": "same-origin", **GOOD}
        assert_ok(httpx.get(server.url + "/api/jobs", headers=same, timeout=10))
    assert failure_rows(rt) == {}
