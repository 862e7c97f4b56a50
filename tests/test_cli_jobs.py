"""The `jobs` and `config show` commands, as a user scripting them with --json sees them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from echopilot.config import Settings
from echopilot.db.engine import read_session
from echopilot.jobs import intake, pipeline, views
from echopilot.runtime import Runtime
from tests.conftest import run_cli

CONTRACT = (
    "id",
    "name",
    "task_type",
    "status",
    "attempts",
    "qa_score",
    "qa_threshold",
    "model",
    "provider",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "price_usd",
    "payment_status",
    "created_at",
    "finished_at",
    "error",
)
ATTEMPT_CONTRACT = ("n", "status", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "error")
TEXT = "Quarterly sales rose 12 percent while costs stayed flat; the board wants a short note."


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    """A runtime with no model configured, so the provider in effect is offline."""
    return make_runtime()


def submit(rt: Runtime, name: str = "note for the board") -> int:
    request = intake.JobRequest(name=name, task_type="summary", input=TEXT, source="cli")
    return intake.submit(rt, request, actor="test").id


def stored(rt: Runtime, job_id: int) -> dict[str, Any]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def as_json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_with_json_prints_the_new_job_with_every_contract_field(rt: Runtime) -> None:
    job = as_json(
        run_cli(
            rt.settings,
            *("jobs", "submit", "--name", "board note", "--type", "summary"),
            *("--input", TEXT, "--json"),
        )
    )
    missing = [f for f in CONTRACT if f not in job]
    assert not missing, f"contract fields missing: {missing}"
    assert isinstance(job["id"], int)
    assert (job["name"], job["task_type"], job["status"]) == ("board note", "summary", "queued")
    assert job["attempts"] == 0
    assert job["qa_score"] is None
    assert job["finished_at"] is None
    assert job["error"] is None
    assert datetime.fromisoformat(job["created_at"]).tzinfo is not None
    saved = stored(rt, job["id"])
    assert saved["status"] == "queued"
    assert saved["name"] == "board note"


def test_show_with_json_includes_the_attempt_log_after_a_worker_ran_the_job(
    rt: Runtime,
) -> None:
    job_id = submit(rt)
    worker = run_cli(rt.settings, "worker", "--burst")
    assert worker.returncode == 0, worker.stderr
    job = as_json(run_cli(rt.settings, "jobs", "show", str(job_id), "--json"))
    assert all(f in job for f in CONTRACT)
    assert job["status"] == "done"
    assert job["provider"] == "offline", "offline is the provider when no key is set"
    assert job["attempts"] == 1
    assert job["qa_score"] >= job["qa_threshold"]
    assert job["finished_at"] is not None
    assert len(job["attempt_log"]) == 1
    attempt = job["attempt_log"][0]
    missing = [f for f in ATTEMPT_CONTRACT if f not in attempt]
    assert not missing, f"attempt fields missing: {missing}"
    assert attempt["n"] == 1
    assert attempt["status"] == "ok"
    assert attempt["error"] is None
    assert attempt["tokens_in"] > 0
    assert (attempt["tokens_in"], attempt["tokens_out"]) == (job["tokens_in"], job["tokens_out"])
    assert attempt["cost_usd"] == job["cost_usd"] == "0.000000", "the offline model costs nothing"
    assert isinstance(attempt["latency_ms"], int)
    assert attempt["latency_ms"] >= 0


def test_list_filters_by_status_and_honours_the_limit(rt: Runtime) -> None:
    older_done = submit(rt, "older")
    newer_done = submit(rt, "newer")
    for job_id in (older_done, newer_done):
        assert pipeline.process(rt, job_id) == "done"
    submit(rt, "still queued")
    rows = as_json(
        run_cli(rt.settings, "jobs", "list", "--status", "done", "--limit", "1", "--json")
    )
    assert [r["id"] for r in rows] == [newer_done], "newest done job only"
    assert rows[0]["status"] == "done"
    assert all(f in rows[0] for f in CONTRACT)


def test_a_cancelled_queued_job_can_be_retried(rt: Runtime) -> None:
    job_id = submit(rt)
    cancelled = as_json(run_cli(rt.settings, "jobs", "cancel", str(job_id), "--json"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert stored(rt, job_id)["status"] == "cancelled"

    retried = as_json(run_cli(rt.settings, "jobs", "retry", str(job_id), "--json"))
    assert retried["status"] == "queued"
    assert retried["finished_at"] is None
    assert retried["error"] is None
    assert stored(rt, job_id)["status"] == "queued"


def test_retrying_a_done_job_exits_1_and_changes_nothing(rt: Runtime) -> None:
    job_id = submit(rt)
    assert pipeline.process(rt, job_id) == "done"
    before = stored(rt, job_id)
    result = run_cli(rt.settings, "jobs", "retry", str(job_id))
    assert result.returncode == 1, result.stderr
    assert "done" in result.stderr
    assert result.stdout.strip() == ""
    assert stored(rt, job_id) == before


def config_show(settings: Settings) -> tuple[dict[str, Any], str]:
    result = run_cli(settings, "config", "show", "--json")
    return as_json(result), result.stdout + result.stderr


def test_config_show_reports_the_offline_provider_when_no_key_is_set(
    make_settings: Callable[..., Settings],
) -> None:
    data, _ = config_show(make_settings())
    assert data["effective"]["provider"] == "offline"
    assert data["OPENAI_API_KEY"] is None


def test_config_show_masks_the_api_key_and_reports_the_openai_provider(
    make_settings: Callable[..., Settings],
) -> None:
    key = "sk-proj-Zq7TvLmA9xR2pWc4NdK8"
    data, printed = config_show(make_settings(openai_api_key=key))
    assert key not in printed
    assert key[:-2] not in printed, "at most the last two characters may show"
    assert data["OPENAI_API_KEY"], "the key is shown as set"
    assert data["OPENAI_API_KEY"].startswith("****")
    assert data["effective"]["provider"] == "openai"
