"""Property-based checks of the whole API from its own OpenAPI schema (schemathesis):
whatever the generated input, valid or not, no operation answers 5xx and every JSON answer
is the envelope {"ok": bool, "data": ..., "error": null | {"code", "message"}}.

Per operation: schemathesis' deterministic coverage cases (boundaries, each constraint
broken in turn, disallowed methods), then 25 generated valid inputs and 10 invalid ones
(derandomized, so every run sends the same requests), on a fresh temporary home, always
with a valid key. Excluded operations:
- POST /api/automations/start launches scheduler processes (tested in test_api_automations);
- POST /api/automations/run/{task} runs a task in a child process per call, which is slow
  (tested in test_api_automations).

Each operation runs as its own Hypothesis test inside one pytest test: schemathesis' pytest
integration for app-bound schemas (`schemathesis.pytest.from_fixture`) does not run under
pytest 9 (it sets `request.node._nodeid`, which pytest 9 no longer has).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from echopilot.api.app import create_app
from echopilot.runtime import Runtime
from tests.api_support import TEST_KEY

EXCLUDED = [("POST", "/api/automations/start"), ("POST", "/api/automations/run/{task}")]
# Examples per operation: valid inputs, and invalid ones where there is something to spoil.
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}


@pytest.fixture
def api_schema(make_runtime: Callable[..., Runtime]) -> Any:
    rt = make_runtime(
        ai_provider="offline",
        allow_process_control=False,
        stripe_webhook_secret="whsec_schemathesis_test_secret",
    )
    loaded = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(rt, TEST_KEY), headers={"X-Dash-Key": TEST_KEY}
    )
    for method, path in EXCLUDED:
        loaded = loaded.exclude(method=method, path=path)
    return loaded


SEEN: set[int] = set()  # statuses of the JSON answers checked


def envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every JSON answer is the envelope; ok agrees with the status code."""
    content_type = ",".join(response.headers.get("content-type", []))
    if "json" not in content_type:
        return None
    SEEN.add(response.status_code)
    body = json.loads(response.content)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert isinstance(body, dict) and set(body) == {"ok", "data", "error"}, f"{where}: {body}"
    assert isinstance(body["ok"], bool), where
    assert body["ok"] is (response.status_code < 400), f"{where}: ok={body['ok']}"
    if body["ok"]:
        assert body["error"] is None, f"{where}: {body}"
    else:
        error = body["error"]
        assert body["data"] is None, f"{where}: {body}"
        assert isinstance(error, dict), f"{where}: {body}"
        assert isinstance(error.get("code"), str) and error["code"], f"{where}: {body}"
        assert isinstance(error.get("message"), str) and error["message"], f"{where}: {body}"
    return True


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"X-Dash-Key": TEST_KEY}, checks=[not_a_server_error, envelope]
        )

    run()


def _coverage(schema: Any, operation: Any) -> None:
    """Schemathesis' deterministic coverage cases: boundary values, each constraint broken
    in turn, missing required parts, and methods the operation does not allow."""
    config = schema.config.generation_for(operation=operation)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for case in schema.iter_coverage_cases(
        operation, generation_modes=modes, generation_config=config
    ):
        case.call_and_validate(
            headers={"X-Dash-Key": TEST_KEY}, checks=[not_a_server_error, envelope]
        )


def test_no_operation_answers_5xx_and_every_json_answer_is_the_envelope(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    failures = {}
    for operation in operations:
        try:
            _coverage(api_schema, operation)
        except Exception as exc:
            name = f"{operation.method.upper()} {operation.path} (coverage)"
            failures[name] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        for mode in EXAMPLES:
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                # No parameters and no body: nothing to make invalid.
                assert mode is GenerationMode.NEGATIVE, operation.path
            except Exception as exc:
                name = f"{operation.method.upper()} {operation.path} ({mode.value})"
                failures[name] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
    # The run reached both answers and errors.
    assert {200, 404, 405, 422} <= SEEN, SEEN


def test_the_schema_documents_every_operation_but_the_excluded_ones(api_schema: Any) -> None:
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert {("POST", "/api/jobs"), ("GET", "/metrics"), ("GET", "/health")} <= operations
    assert not operations & set(EXCLUDED)
