"""What the app answers at its edge (in-process): no caching of API answers, the key checked
before the body is read or measured, bad bodies named plainly, strict numbers, and the
CLI's words for empty input. The server's own answers are in test_api_edge_server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from echopilot.api.app import create_app
from echopilot.db.engine import read_session
from echopilot.db.models import AuditLog, Job
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY, api_client, assert_error, assert_ok, client_at
from tests.conftest import run_cli

JOB = {"name": "A summary", "task_type": "summary", "input": "Some text to summarise."}
GOOD = {"X-Dash-Key": TEST_KEY}


def test_api_answers_are_not_cached_but_static_files_keep_their_caching(
    offline: Runtime,
) -> None:
    client = client_at(create_app(offline, TEST_KEY), "10.20.0.1")
    uncached = {
        "health": client.get("/health"),
        "jobs": client.get("/api/jobs", headers=GOOD),
        "metrics": client.get("/metrics", headers=GOOD),
        "401": client.get("/api/jobs"),
        "404": client.get("/nowhere"),
        "422": client.post("/api/jobs", headers=GOOD, json={}),
        "dashboard": client.get("/dashboard"),
        "openapi": client.get("/openapi.json", headers=GOOD),
    }
    assert {name: r.headers.get("cache-control") for name, r in uncached.items()} == {
        name: "no-store" for name in uncached
    }
    static = client.get("/static/dashboard.js")
    plotly = client.get("/static/vendor/plotly.min.js")
    assert static.status_code == 200 and plotly.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
    assert static.headers.get("etag") or static.headers.get("last-modified")
    assert plotly.headers["cache-control"] == "public, max-age=86400"


def test_a_body_that_is_not_json_is_named_so(offline: Runtime) -> None:
    with api_client(offline) as client:
        response = client.post(
            "/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    error = assert_error(response, 422, "invalid_input")
    assert error["message"] == "body: not valid JSON"
    assert error["fields"] == ["body"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("qa_target", True), ("priority", True), ("qa_target", 80.5), ("priority", "3")],
)
def test_numbers_are_strict_ints_and_a_refusal_names_the_field(
    offline: Runtime, field: str, value: object
) -> None:
    with api_client(offline) as client:
        error = assert_error(client.post("/api/jobs", json={**JOB, field: value}), 422)
    assert error["fields"] == [field], error
    assert error["message"].startswith(f"{field}: "), error
    with read_session(offline.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("field", ["input", "name"])
def test_empty_input_is_refused_with_the_words_of_the_cli(offline: Runtime, field: str) -> None:
    with api_client(offline) as client:
        error = assert_error(client.post("/api/jobs", json={**JOB, field: ""}), 422)
    assert error["message"] == f"{field}: must not be empty", error
    assert error["fields"] == [field]
    option = "--input" if field == "input" else "--name"
    args = {"--name": "n", "--type": "summary", "--input": "text", option: ""}
    cli = run_cli(offline.settings, "jobs", "submit", *[p for kv in args.items() for p in kv])
    assert cli.returncode == 2, cli.stderr
    assert f"{field}: must not be empty" in cli.stderr


def test_bodies_without_the_key_are_401_and_count_as_failed_attempts(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline", max_body_bytes=4096)
    app = create_app(rt, TEST_KEY)
    client = client_at(app, "10.21.0.1")
    json_header = {"Content-Type": "application/json"}
    wrong = {"X-Dash-Key": "not-the-key-0123456789abcdef", **json_header}
    answers = [
        client.post("/api/jobs", content=b"{not json", headers=json_header),
        client.post("/api/jobs", content=b"x" * 100_000, headers=json_header),
        client.post("/api/jobs", content=b"{not json", headers=wrong),
        client.post("/api/jobs", content=b"x" * 100_000, headers=wrong),
        client.post("/api/jobs", json={**JOB, "qa_target": True}, headers=wrong),
    ]
    for response in answers:
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    for _ in range(5):
        assert_error(client.post("/api/jobs", content=b"x" * 100_000, headers=json_header), 401)
    locked = client.post("/api/jobs", json=JOB, headers=GOOD)
    assert_error(locked, 429, "rate_limited")

    # With the key, the same bodies get their own answers.
    other = client_at(app, "10.21.0.2")
    not_json = other.post("/api/jobs", content=b"{not json", headers={**GOOD, **json_header})
    assert_error(not_json, 422, "invalid_input")
    too_big = other.post("/api/jobs", content=b"x" * 100_000, headers={**GOOD, **json_header})
    assert_error(too_big, 413, "payload_too_large")
    assert_ok(other.post("/api/jobs", json=JOB, headers=GOOD), 201)
    with read_session(rt.sessions) as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions[:11] == ["auth.failed"] * 10 + ["auth.locked_out"]


def test_every_path_under_api_needs_the_key_even_where_no_route_is(offline: Runtime) -> None:
    client = client_at(create_app(offline, TEST_KEY), "10.22.0.1")
    for method, path in [("GET", "/api/nosuch"), ("DELETE", "/api/jobs"), ("GET", "/api")]:
        assert_error(client.request(method, path), 401, "unauthorized")
    assert_error(client.get("/api/nosuch", headers=GOOD), 404)
    assert_error(client.delete("/api/jobs", headers=GOOD), 405)


def test_the_schema_documents_the_key_on_every_protected_operation(offline: Runtime) -> None:
    schema = create_app(offline, TEST_KEY).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["DashKey"] == {"type": "apiKey", "in": "header", "name": "X-Dash-Key"}
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            protected = path.startswith("/api/") or path == "/metrics"
            expected: list[dict[str, list[str]]] | None = (
                [{"DashKey": []}, {"Bearer": []}] if protected else None
            )
            assert operation.get("security") == expected, (method, path)
