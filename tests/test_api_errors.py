"""Every error the API gives is the envelope {ok: false, data: null, error: {code, message}}
with the right status; bad input names the field and writes nothing; an internal error
hides its traceback and names a request id that the log file holds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog, Job
from echopilot.jobs import pipeline
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, api_client, assert_error, assert_ok, running

LIMIT_BYTES = 4096
JOB = {"name": "A summary", "task_type": "summary", "input": "Some text to summarise."}


def rows(rt: Runtime) -> tuple[int, int]:
    """(jobs, audit log rows)."""
    with read_session(rt.sessions) as session:
        return (
            session.scalar(select(func.count()).select_from(Job)) or 0,
            session.scalar(select(func.count()).select_from(AuditLog)) or 0,
        )


def test_an_unknown_route_is_404_in_the_envelope(offline: Runtime) -> None:
    with api_client(offline) as client:
        assert_error(client.get("/api/nosuch"), 404, "not_found")
        assert_error(client.post("/api/jobs/1/nosuch"), 404, "not_found")
        assert_error(client.get("/nowhere"), 404, "not_found")


def test_an_unknown_job_id_is_404_naming_the_id(offline: Runtime) -> None:
    with api_client(offline) as client:
        for method, path in (
            ("GET", "/api/jobs/987654"),
            ("POST", "/api/jobs/987654/retry"),
            ("POST", "/api/jobs/987654/cancel"),
        ):
            error = assert_error(client.request(method, path), 404, "not_found")
            assert "987654" in error["message"], (path, error)
    assert rows(offline) == (0, 0)


def test_a_wrong_method_is_405_in_the_envelope(offline: Runtime) -> None:
    with api_client(offline) as client:
        response = client.delete("/api/jobs")
        assert_error(response, 405, "method_not_allowed")
        assert "POST" in response.headers.get("allow", ""), response.headers
        assert_error(client.put("/api/automations/status"), 405, "method_not_allowed")


def _big_job() -> bytes:
    body = json.dumps({**JOB, "input": "x" * (LIMIT_BYTES * 2)}).encode()
    assert len(body) > LIMIT_BYTES
    return body


def test_a_body_over_the_limit_with_content_length_is_413(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", max_body_bytes=LIMIT_BYTES)
    with api_client(rt) as client:
        response = client.post(
            "/api/jobs", content=_big_job(), headers={"Content-Type": "application/json"}
        )
        error = assert_error(response, 413, "payload_too_large")
        assert str(LIMIT_BYTES) in error["message"]
        # Just under the limit is fine.
        assert_ok(client.post("/api/jobs", json={**JOB, "input": "y" * 3000}), 201)
    assert rows(rt)[0] == 1


def test_a_chunked_body_over_the_limit_is_413(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline", max_body_bytes=LIMIT_BYTES)
    body = _big_job()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    with api_client(rt) as client:
        response = client.post(
            "/api/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert_error(response, 413, "payload_too_large")
    assert rows(rt) == (0, 0)


def test_a_chunked_body_over_the_limit_is_413_from_the_real_server(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    body = _big_job()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    env = {"DASHBOARD_KEY": TEST_KEY, "ECHOPILOT_MAX_BODY_BYTES": str(LIMIT_BYTES)}
    with running(rt.settings, "serve", env=env) as server:
        headers = {"X-Dash-Key": TEST_KEY, "Content-Type": "application/json"}
        declared = httpx.post(server.url + "/api/jobs", content=body, headers=headers)
        assert_error(declared, 413, "payload_too_large")
        chunked = httpx.post(server.url + "/api/jobs", content=chunks(), headers=headers)
        assert_error(chunked, 413, "payload_too_large")
    assert rows(rt) == (0, 0)


# (case, body, the fields error.fields must name)
BAD_JOBS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("missing fields", {}, {"name", "task_type", "input"}),
    ("missing input", {"name": "n", "task_type": "summary"}, {"input"}),
    ("negative qa_target", {**JOB, "qa_target": -1}, {"qa_target"}),
    ("qa_target over 100", {**JOB, "qa_target": 101}, {"qa_target"}),
    ("unknown task type", {**JOB, "task_type": "nosuch"}, {"task_type"}),
    ("empty input", {**JOB, "input": ""}, {"input"}),
    ("blank input", {**JOB, "input": "   \n\t "}, {"input"}),
    ("input over the limit", {**JOB, "input": "z" * 1001}, {"input"}),
    ("blank name", {**JOB, "name": "   "}, {"name"}),
    ("bad client email", {**JOB, "client": "not-an-email"}, {"client"}),
    ("priority out of range", {**JOB, "priority": 1000}, {"priority"}),
]


@pytest.mark.parametrize(
    ("body", "fields"), [c[1:] for c in BAD_JOBS], ids=[c[0] for c in BAD_JOBS]
)
def test_bad_job_input_is_422_naming_the_field_and_writes_nothing(
    make_runtime: Callable[..., Runtime], body: dict[str, Any], fields: set[str]
) -> None:
    rt = make_runtime(ai_provider="offline", max_input_chars=1000)
    with api_client(rt) as client:
        error = assert_error(client.post("/api/jobs", json=body), 422, "invalid_input")
    assert set(error["fields"]) == fields, error
    for field in fields:
        assert field in error["message"], error
    if body.get("task_type") == "nosuch":
        assert "summary" in error["message"], "the message lists the known task types"
    assert rows(rt) == (0, 0)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/jobs?status=bogus", "status"),
        ("/api/jobs?limit=0", "limit"),
        ("/api/jobs?limit=many", "limit"),
        ("/api/jobs?cursor=-3", "cursor"),
        ("/api/jobs/abc", "job_id"),
        ("/api/metrics/daily?days=0", "days"),
    ],
)
def test_bad_query_and_path_values_are_422_naming_the_parameter(
    offline: Runtime, path: str, field: str
) -> None:
    with api_client(offline) as client:
        error = assert_error(client.get(path), 422, "invalid_input")
    assert error["fields"] == [field], error
    assert field in error["message"]


TOO_BIG = str(2**63)  # one past the largest integer SQLite and PostgreSQL BIGINT hold


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"/api/jobs/{TOO_BIG}", "job_id"),
        ("POST", f"/api/jobs/{TOO_BIG}/retry", "job_id"),
        ("POST", f"/api/jobs/{TOO_BIG}/cancel", "job_id"),
        ("GET", f"/api/jobs?cursor={TOO_BIG}", "cursor"),
    ],
)
def test_an_id_too_big_for_the_database_is_a_client_error_not_500(
    offline: Runtime, method: str, path: str, field: str
) -> None:
    with api_client(offline, raise_server_exceptions=False) as client:
        response = client.request(method, path)
    assert response.status_code in (404, 422), (response.status_code, response.text)
    error = assert_error(response, response.status_code)
    if response.status_code == 422:
        assert error["fields"] == [field], error


def test_a_body_that_is_not_json_is_422(offline: Runtime) -> None:
    with api_client(offline) as client:
        response = client.post(
            "/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_input")
    assert rows(offline) == (0, 0)


def test_retrying_or_cancelling_a_done_job_is_409_and_changes_nothing(offline: Runtime) -> None:
    with api_client(offline) as client:
        job = assert_ok(client.post("/api/jobs", json={**JOB, "qa_target": 0}), 201)
        assert pipeline.process(offline, job["id"]) == "done"
        before = assert_ok(client.get(f"/api/jobs/{job['id']}"))
        audit_before = rows(offline)[1]

        error = assert_error(client.post(f"/api/jobs/{job['id']}/retry"), 409, "conflict")
        assert "done" in error["message"], error
        error = assert_error(client.post(f"/api/jobs/{job['id']}/cancel"), 409, "conflict")
        assert "done" in error["message"], error

        after = assert_ok(client.get(f"/api/jobs/{job['id']}"))
    assert after == before
    assert rows(offline)[1] == audit_before


def test_an_internal_error_is_500_with_a_request_id_found_in_the_log(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    home = rt.settings.home
    with running(rt.settings, "serve", env={"DASHBOARD_KEY": TEST_KEY}) as server:
        headers = {"X-Dash-Key": TEST_KEY}
        assert_ok(httpx.post(server.url + "/api/jobs", json=JOB, headers=headers), 201)
        # Break the database under the running server.
        conn = sqlite3.connect(home / "echopilot.db")
        try:
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("DROP TABLE jobs")
        finally:
            conn.close()

        response = httpx.get(server.url + "/api/jobs", headers=headers, timeout=120)
        error = assert_error(response, 500, "internal_error")
        # The server goes on answering, promptly.
        health = httpx.get(server.url + "/health", timeout=120)
        assert health.status_code == 200
    request_id = error.get("request_id")
    assert request_id, error
    assert request_id in error["message"]

    problems = []
    if response.headers.get("x-request-id") != request_id:
        problems.append(f"X-Request-ID header {response.headers.get('x-request-id')!r}")
    for text in ("Traceback", 'File "', "sqlite", "OperationalError", "no such table"):
        if text in response.text:
            problems.append(f"{text!r} in the answer")
    # An error is answered promptly (a normal answer takes milliseconds).
    if response.elapsed.total_seconds() > 5:
        problems.append(f"the answer took {response.elapsed.total_seconds():.1f}s")
    if health.elapsed.total_seconds() > 5:
        problems.append(f"/health after the error took {health.elapsed.total_seconds():.1f}s")
    logged = [
        line
        for path in (home / "logs").glob("*.log")
        for line in path.read_text(errors="replace").splitlines()
        if request_id in line
    ]
    if not any("no such table" in line for line in logged):
        problems.append(f"no log line with the request id and the cause: {logged}")
    # The key never reaches a log, the console output included.
    if TEST_KEY in server.text():
        problems.append(f"the key is in the console output {server.text().count(TEST_KEY)} times")
    problems += [
        f"the key is in {p.name}" for p in (home / "logs").glob("*") if TEST_KEY in p.read_text()
    ]
    assert not problems, "\n".join(problems)
