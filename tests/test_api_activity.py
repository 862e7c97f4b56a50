"""The activity feed: audit entries and scheduler runs, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from echopilot.jobs import intake
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from tests.api_support import api_client, assert_ok


def test_it_merges_audit_entries_and_runs_newest_first(offline: Runtime) -> None:
    now = datetime.now(UTC)
    job = intake.submit(
        offline,
        intake.JobRequest(name="a", task_type="summary", input="x"),
        actor="cli",
        now=now - timedelta(minutes=5),
    )
    run = store.claim(
        offline.sessions,
        task="retention",
        slot=now - timedelta(minutes=1),
        trigger="scheduled",
        scheduler_id=None,
        now=now - timedelta(minutes=1),
    )
    assert run is not None
    store.finish(offline.sessions, run.id, status="ok", now=now - timedelta(seconds=50))
    store.claim(
        offline.sessions,
        task="retention",
        slot=now,
        trigger="scheduled",
        scheduler_id=None,
        now=now,
        status="skipped",
        note="debounce",
    )

    with api_client(offline) as client:
        items = assert_ok(client.get("/api/activity?limit=10"))["items"]

    assert [(i["kind"], i["action"]) for i in items] == [
        ("run", "retention ok"),
        ("audit", "job.submit"),
    ]
    assert items[1]["target"] == f"job:{job.id}"
    assert items[1]["actor"] == "cli"


def test_the_limit_is_bounded(offline: Runtime) -> None:
    with api_client(offline) as client:
        assert client.get("/api/activity?limit=0").status_code == 422
        assert client.get("/api/activity?limit=201").status_code == 422
