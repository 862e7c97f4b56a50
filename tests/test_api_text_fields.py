"""Text that no database can store, or that only looks filled in, is refused with 422 naming
the field, on SQLite and on PostgreSQL alike: never a 500, never a half-written job."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from echopilot.db.models import Job
from echopilot.runtime import Runtime
from tests.api_support import api_client, assert_error, assert_ok

pytestmark = pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)

GOOD = {"name": "Report", "task_type": "summary", "input": "Revenue grew; costs fell."}
BAD = [
    ("name", "\u0000"),
    ("name", "Report\u0000"),
    ("name", "bell\u0007"),
    ("name", "\u001b[31mred"),
    ("name", "\u0085next line"),
    ("name", "\ud800"),
    ("name", " \t\n "),
    ("input", "before\u0000after"),
    ("input", "lone \udfff surrogate"),
    ("input", ""),
    ("input", "   "),
    ("task_type", "summ\u0000ary"),
    ("task_type", "summary\u0000"),
    ("client", "ada\u0000@example.com"),
]


def stored(rt: Runtime) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


@pytest.mark.parametrize(("field", "value"), BAD)
def test_a_bad_text_field_is_refused_naming_it(
    make_runtime: Callable[..., Runtime], field: str, value: str
) -> None:
    rt = make_runtime(ai_provider="offline")
    # JSON with \u escapes, as a client sends them: a lone surrogate has no UTF-8 form.
    body = json.dumps({**GOOD, field: value})
    with api_client(rt, raise_server_exceptions=False) as client:
        answer = client.post(
            "/api/jobs", content=body, headers={"Content-Type": "application/json"}
        )
        error = assert_error(answer, 422)
    assert field in error.get("fields", []) or error["message"].startswith(f"{field}:"), error
    assert stored(rt) == 0


def test_the_empty_input_message_is_the_cli_s(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    with api_client(rt) as client:
        error = assert_error(client.post("/api/jobs", json={**GOOD, "input": ""}), 422)
    assert error["message"] == "input: must not be empty"


def test_tabs_newlines_and_any_script_are_kept(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(ai_provider="offline")
    name = "Rapport\tannuel \u2013 2026\nÉté 🌞"
    text = "Données: 12 % de croissance.\fPage 2 \u2028 suite"
    with api_client(rt) as client:
        job = assert_ok(
            client.post(
                "/api/jobs", json={**GOOD, "name": name, "input": text, "task_type": "Summary"}
            ),
            201,
        )
        shown = assert_ok(client.get(f"/api/jobs/{job['id']}"))
    assert shown["name"] == name
    assert shown["input"] == text
    assert shown["task_type"] == "summary"
