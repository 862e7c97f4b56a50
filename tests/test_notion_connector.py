"""The Notion connector against a fake Notion API, through the real `notion-client` SDK.

Only Notion is fake (tests/fakes/notion_server.py): the intake, the job pipeline, the
write-back, the read-backs, self-heal and the alert engine are EchoPilot's own. The fake
and the connector share one settable clock, so Notion's read-after-write lag, Retry-After
waits and the read-back backoff pass in simulated seconds. What is checked is what an owner
would see in Notion and in EchoPilot: one job per ticked page however stale Notion's reads
are, every page showing its job's outcome, one Job Log row per finished job, and failures
named plainly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from echopilot import retention
from echopilot.alerts.engine import check as alert_check
from echopilot.briefs import service as briefs
from echopilot.clock import utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import Alert, Job, NotionPage
from echopilot.errors import OperationFailed
from echopilot.jobs import intake, pipeline
from echopilot.notion import service
from echopilot.notion.gateway import Timer
from echopilot.notion.pages import TEXT_LIMIT
from echopilot.runtime import Runtime
from echopilot.selfheal import heal
from tests.fakes.model_server import FakeModelServer
from tests.fakes.notion_server import TOKEN, NotionServer, joblog_schema, queue_schema


class Clock:
    """The one clock the fake Notion and the connector read; sleeping advances it."""

    def __init__(self) -> None:
        self.moment = utcnow().replace(microsecond=0)

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=max(seconds, 0.0))

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)

    def timer(self) -> Timer:
        return Timer(now=self.now, sleep=self.sleep)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notion(clock: Clock) -> Iterator[NotionServer]:
    with NotionServer(clock=clock.now) as server:
        yield server


def notion_settings(server: NotionServer, *, joblog: bool = True, **more: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "notion_token": TOKEN,
        "notion_queue_db_id": server.queue_db_id,
        "notion_api_base": server.base_url,
        "notion_timeout_seconds": 5.0,
        **more,
    }
    if joblog:
        values["notion_joblog_db_id"] = server.joblog_db_id
    return values


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], notion: NotionServer) -> Runtime:
    return make_runtime(ai_provider="offline", **notion_settings(notion))


def poll(rt: Runtime, clock: Clock) -> dict[str, Any]:
    return service.poll(rt, timer=clock.timer())


def notion_jobs(rt: Runtime) -> list[Job]:
    with read_session(rt.sessions) as session:
        return list(session.scalars(select(Job).where(Job.source == "notion").order_by(Job.id)))


def run_jobs(rt: Runtime) -> None:
    for job in notion_jobs(rt):
        if job.status == "queued":
            pipeline.process(rt, job.id)


def settle(rt: Runtime, clock: Clock, *, polls: int = 12) -> None:
    """Poll once a minute (simulated) until every taken page needs nothing more."""
    for _ in range(polls):
        poll(rt, clock)
        with read_session(rt.sessions) as session:
            open_rows = session.scalar(
                select(func.count()).select_from(NotionPage).where(NotionPage.settled.is_(False))
            )
        if not open_rows:
            return
        clock.advance(60)
    raise AssertionError("pages still open after the polls")


# ---- intake --------------------------------------------------------------------------


def test_ticked_pages_become_jobs_with_the_pages_fields(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    first = notion.add_page(
        "Market scan",
        task_type="Research",
        description="Scan the EV charger market.",
        qa_target=90,
        client_email="Ops@Acme.example",
    )
    second = notion.add_page("Tidy CSV", task_type="Data-transform", description="a,b\n1,2")
    notion.add_page("Not yet", trigger=False, description="Waiting for the owner.")

    answer = poll(rt, clock)

    assert answer["taken"] == 2 and answer["seen"] == 2
    jobs = {j.external_id: j for j in notion_jobs(rt)}
    assert set(jobs) == {first, second}
    scan = jobs[first]
    assert (scan.name, scan.task_type, scan.input, scan.qa_target) == (
        "Market scan",
        "research",
        "Scan the EV charger market.",
        90,
    )
    assert jobs[second].task_type == "data_transform"
    with read_session(rt.sessions) as session:
        client = session.scalar(select(Job.client_id).where(Job.id == scan.id))
    assert client is not None
    # The pages are taken: Trigger off, Status Processing, the job's id written.
    page = notion.page(first)
    assert (page["Trigger"], page["Status"], page["Job ID"]) == (False, "Processing", scan.id)


def test_every_page_of_query_results_is_read_and_requests_stay_under_the_rate(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    pages = [notion.add_page(f"task {i}", description=f"input {i}") for i in range(230)]

    answer = poll(rt, clock)

    assert answer["taken"] == 230
    assert {j.external_id for j in notion_jobs(rt)} == set(pages)
    queries = notion.seen("POST", r"/v1/data_sources/.*/query")
    assert len(queries) == 3  # 100 + 100 + 30
    # Spaced on the connector's clock: never more than 3 a second, 2.5 on average.
    times = [r.now for r in notion.requests]
    for earlier, later in itertools.pairwise(times):
        assert (later - earlier).total_seconds() >= 0.39
    span = (times[-1] - times[0]).total_seconds()
    assert len(times) / (span + 0.4) <= 2.5 + 1e-6


def test_under_lag_each_ticked_page_becomes_exactly_one_job_and_one_log_row(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    """Notion serves each page's old copy (still ticked) for 100 s after EchoPilot's write,
    over more than one poll: the stale copies make no second job."""
    notion.lag(100)
    pages = [notion.add_page(f"brief {i}", description=f"Write brief {i}.") for i in range(5)]

    first = poll(rt, clock)
    assert first["taken"] == 5
    clock.advance(60)
    second = poll(rt, clock)  # the stale copies are still ticked here
    assert second["seen"] == 5 and second["taken"] == 0 and second["already_taken"] == 5

    run_jobs(rt)
    settle(rt, clock)

    jobs = notion_jobs(rt)
    assert sorted(j.external_id or "" for j in jobs) == sorted(pages)
    log_rows = notion.joblog_rows()
    assert sorted(r["Job ID"] for r in log_rows) == sorted(j.id for j in jobs)
    for job in jobs:
        page = notion.page(job.external_id or "")
        shown = {"done": "Done", "needs_review": "Waiting Human"}[job.status]
        assert page["Status"] == shown and page["Trigger"] is False
        assert page["QA Score"] == job.qa_score
    status = service.status(rt, now=clock.now())
    assert status["pages_taken"] == 5 and status["pending_writes"] == 0
    # The lag was seen and recorded: the last read still showing the old page came 92 s
    # after the write (reads at 32, 47, 62, 77, 92, 107 s), within 15 s of Notion's 100 s.
    assert status["worst_lag_seconds_24h"] is not None
    assert 85 <= status["worst_lag_seconds_24h"] < 100


def test_a_page_ticked_again_later_is_a_new_job(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    page = notion.add_page("Weekly digest", description="Summarise the week.")
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)
    clock.advance(120)
    notion.tick(page)

    again = poll(rt, clock)

    assert again["taken"] == 1
    assert [j.external_id for j in notion_jobs(rt)] == [page, page]


def test_a_page_that_cannot_be_a_job_is_marked_failed_with_the_reason(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    poetry = notion.add_page("Sonnet", task_type="Poetry", description="Fourteen lines.")
    empty = notion.add_page("Nothing", description="")
    strict = notion.add_page("Too strict", description="Some input.", qa_target=120)

    answer = poll(rt, clock)

    assert answer["taken"] == 0 and len(answer["refused"]) == 3
    assert notion_jobs(rt) == []
    for page_id, words in (
        (poetry, "Task Type unknown type 'Poetry'"),
        (empty, "Description must not be empty"),
        (strict, "QA Target must be between 0 and 100"),
    ):
        page = notion.page(page_id)
        assert page["Status"] == "Failed" and page["Trigger"] is False
        assert page["Result Summary"].startswith("Not run: ") and words in page["Result Summary"]
    settle(rt, clock)
    assert notion.joblog_rows() == []  # no job, no Job Log row
    assert poll(rt, clock)["taken"] == 0  # and never taken again


# ---- write-back ------------------------------------------------------------------------


def test_a_long_result_is_cut_to_notions_limit_and_kept_whole_in_echopilot(
    make_runtime: Callable[..., Runtime],
    model_server: FakeModelServer,
    notion: NotionServer,
    clock: Clock,
) -> None:
    rt = make_runtime(
        ai_provider="openai",
        openai_api_key="sk-test-key-123456",
        openai_base_url=model_server.url,
        **notion_settings(notion),
    )
    model_server.default_text = "A finding worth reading. " * 400  # 10,000 characters
    page = notion.add_page("Deep dive", description="Research the topic in depth.", qa_target=80)
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)

    (job,) = notion_jobs(rt)
    assert job.status == "done" and len(job.result or "") >= 9_900
    shown = notion.page(page)
    assert len(shown["Result Summary"]) <= TEXT_LIMIT
    assert shown["Result Summary"].startswith("A finding worth reading.")
    assert f"the full result is job {job.id} in EchoPilot" in shown["Result Summary"]
    assert shown["Cost"] == pytest.approx(job.cost_micros / 1_000_000)
    (row,) = notion.joblog_rows()
    assert (row["Job ID"], row["Status"], row["Task Type"]) == (job.id, "Done", "research")


def test_a_failed_job_shows_failed_with_its_error(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    page = notion.add_page("Cancel me", description="Some work.")
    poll(rt, clock)
    (job,) = notion_jobs(rt)
    intake.cancel(rt, job.id, actor="test")
    settle(rt, clock)

    shown = notion.page(page)
    assert shown["Status"] == "Failed"
    assert shown["Result Summary"].startswith(f"Job {job.id} cancelled")
    (row,) = notion.joblog_rows()
    assert row["Status"] == "Failed"


def test_a_write_notion_never_shows_goes_pending_and_self_heal_sends_it_again(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.lag(400)  # longer than the 120 s confirm limit
    page = notion.add_page("Slow page", description="Some work.")
    poll(rt, clock)
    clock.advance(60)
    poll(rt, clock)
    clock.advance(60)
    poll(rt, clock)

    status = service.status(rt, now=clock.now())
    assert status["pending_writes"] == 1 and status["unseen_writes_total"] == 1
    alert_check(rt, now=utcnow(), only=["notion_writes_pending"])
    with read_session(rt.sessions) as session:
        alert = session.scalar(select(Alert).where(Alert.key == "notion_writes_pending"))
    assert alert is not None and alert.resolved_at is None
    assert len(notion.writes(page)) == 1  # the poll does not resend it

    notion.lag(0)
    healed = heal.run(rt)

    assert healed.notion is not None and healed.notion["written"] == 1
    assert len(notion.writes(page)) == 2
    # Self-heal's read-back runs on the real clock; the next poll confirms on ours.
    poll(rt, clock)
    status = service.status(rt, now=clock.now())
    assert status["pending_writes"] == 0 and status["verifying_writes"] == 0
    assert status["unseen_writes_total"] == 1  # counted, not forgotten


def test_a_job_log_row_whose_answer_was_lost_is_found_not_made_twice(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.add_page("Lost answer", description="Some work.")
    poll(rt, clock)
    run_jobs(rt)
    notion.lose_answer("POST", r"/v1/pages")  # Notion makes the row, the answer is lost

    with pytest.raises(OperationFailed, match="Server disconnected"):
        poll(rt, clock)
    clock.advance(60)
    settle(rt, clock)

    (job,) = notion_jobs(rt)
    assert [r["Job ID"] for r in notion.joblog_rows()] == [job.id]
    assert len(notion.seen("POST", r"/v1/pages")) == 1


# ---- Notion's troubles ------------------------------------------------------------------


def test_a_429_waits_as_retry_after_says_then_carries_on(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.add_page("Rate limited", description="Some work.")
    notion.rate_limit(2, retry_after=7)
    started = clock.now()

    answer = poll(rt, clock)

    assert answer["taken"] == 1
    assert (clock.now() - started).total_seconds() >= 14
    limited = [r for r in notion.requests if r.status == 429]
    assert len(limited) == 2
    after = [r for r in notion.requests if r.now >= limited[-1].now + timedelta(seconds=7)]
    assert after, "nothing was asked after the wait"


def test_server_errors_are_retried_with_backoff(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.add_page("Flaky", description="Some work.")
    notion.fail(2, status=500)

    answer = poll(rt, clock)

    assert answer["taken"] == 1
    assert [r.status for r in notion.requests[:3]] == [500, 500, 200]


def test_notion_down_fails_the_run_with_the_reason_and_takes_nothing(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.add_page("Later", description="Some work.")
    notion.fail(50, status=503)

    with pytest.raises(OperationFailed, match="503"):
        poll(rt, clock)

    assert notion_jobs(rt) == []
    assert service.status(rt, now=clock.now())["poll_error"]
    notion.fail(0)
    assert poll(rt, clock)["taken"] == 1


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "refused the token (NOTION_TOKEN)"), (403, "may not"), (404, "was not found")],
)
def test_a_refused_token_or_database_stops_the_connector_with_an_alert(
    rt: Runtime, notion: NotionServer, clock: Clock, status: int, words: str
) -> None:
    notion.add_page("Blocked", description="Some work.")
    notion.deny(status)

    with pytest.raises(OperationFailed, match="stopped"):
        poll(rt, clock)

    state = service.status(rt, now=clock.now())
    assert state["status"] == "stopped" and words in state["reason"]
    assert "NOTION_QUEUE_DB_ID" in state["reason"] or "NOTION_TOKEN" in state["reason"]
    with read_session(rt.sessions) as session:
        alert = session.scalar(select(Alert).where(Alert.key == "notion_stopped"))
    assert alert is not None and alert.resolved_at is None and alert.severity == "high"
    assert words in (alert.detail or "")
    # Stopped: no more calls until a person checks again.
    asked = len(notion.requests)
    assert "stopped" in poll(rt, clock)["skipped"]
    assert len(notion.requests) == asked
    notion.deny(None)
    assert service.check(rt, timer=clock.timer())["ok"] is True
    assert poll(rt, clock)["taken"] == 1


# ---- the schema check -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Trigger": None}, "the queue database has no property 'Trigger': add it as Checkbox"),
        (
            {"Status": "rich_text"},
            "the queue database's property 'Status' is Text; it must be Select",
        ),
        (
            {"QA_Target": "rich_text"},
            "the queue database's property 'QA Target' is Text; it must be Number",
        ),
    ],
)
def test_a_queue_missing_or_mistyping_a_property_keeps_the_connector_off(
    make_runtime: Callable[..., Runtime],
    clock: Clock,
    changes: dict[str, str | None],
    message: str,
) -> None:
    with NotionServer(clock=clock.now, queue_schema=queue_schema(**changes)) as server:
        rt = make_runtime(**notion_settings(server))
        server.add_page("Waiting", description="Some work.")

        checked = service.check(rt, timer=clock.timer())
        assert checked["ok"] is False and message in checked["problems"]
        with pytest.raises(OperationFailed, match="off"):
            poll(rt, clock)

        assert notion_jobs(rt) == []
        assert service.status(rt, now=clock.now())["status"] == "off"


def test_a_job_log_without_its_job_id_property_is_named(
    make_runtime: Callable[..., Runtime], clock: Clock
) -> None:
    with NotionServer(clock=clock.now, joblog_schema=joblog_schema(Job_ID=None)) as server:
        rt = make_runtime(**notion_settings(server))
        checked = service.check(rt, timer=clock.timer())
    assert checked["ok"] is False
    assert checked["problems"] == [
        "the Job Log database has no property 'Job ID': add it as Number"
    ]


def test_without_a_job_log_pages_are_still_written_back(
    make_runtime: Callable[..., Runtime], notion: NotionServer, clock: Clock
) -> None:
    rt = make_runtime(ai_provider="offline", **notion_settings(notion, joblog=False))
    page = notion.add_page("No log", description="Some work.")
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)
    assert notion.page(page)["Status"] in ("Done", "Waiting Human")
    assert notion.joblog_rows() == []


def test_off_without_settings_calls_nothing(offline: Runtime) -> None:
    answer = service.poll(offline)
    assert answer["skipped"].startswith("off: set NOTION_TOKEN")
    assert service.status(offline, now=utcnow())["status"] == "off"


# ---- the brief --------------------------------------------------------------------------


def analysis(rt: Runtime, clock: Clock) -> dict[str, Any]:
    found: dict[str, Any] = briefs.run_analyze(rt, now=clock.now() + timedelta(seconds=1))
    return found["analysis"]


def rules_found(rt: Runtime, clock: Clock) -> dict[str, Any]:
    return {r["rule"]: r for r in analysis(rt, clock)["anomalies"]}


def test_the_brief_flags_a_lag_over_90_seconds_with_the_slow_pages(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.lag(100)
    page = notion.add_page("Laggy", description="Some work.")
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)

    found = rules_found(rt, clock)

    lag = found["ops.notion_lag"]
    assert 90 < lag["evidence"]["worst_lag_seconds_7d"] < 100
    assert lag["evidence"]["limit_seconds"] == 90
    assert [w["page_id"] for w in lag["evidence"]["slow_writes"]] == [page]
    assert "ops.notion_stopped" not in found


def test_the_brief_is_quiet_about_notion_when_writes_show_quickly(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.lag(5)
    notion.add_page("Prompt", description="Some work.")
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)

    found = rules_found(rt, clock)

    assert "ops.notion_lag" not in found and "ops.notion_stopped" not in found


def test_the_brief_says_when_the_connector_is_stopped(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.deny(401)
    with pytest.raises(OperationFailed):
        poll(rt, clock)

    found = analysis(rt, clock)

    assert "ops.notion_stopped" in {r["rule"] for r in found["anomalies"]}
    assert "Notion tasks may be missing: the connector is stopped" in found["freshness"]["line"]


def test_retention_prunes_only_pages_with_nothing_left_to_write(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    notion.add_page("Old and done", description="Some work.")
    poll(rt, clock)
    run_jobs(rt)
    settle(rt, clock)
    notion.lag(10_000)  # the next page's writes never show: it stays open
    notion.add_page("Still open", description="Some work.")
    poll(rt, clock)

    later = clock.now() + timedelta(days=rt.settings.retention_row_days + 1)
    pruned = retention.run(rt, now=later, dry_run=False).as_dict()

    assert pruned["rows"]["notion_pages"] == 1
    with read_session(rt.sessions) as session:
        left = list(session.scalars(select(NotionPage.title)))
    assert left == ["Still open"]


def test_writes_failing_on_notions_side_end_the_run_at_once_and_resume_later(
    rt: Runtime, notion: NotionServer, clock: Clock
) -> None:
    for i in range(20):
        notion.add_page(f"task {i}", description="Some work.")
    notion.fail_path("PATCH", r"/v1/pages/.*", 503, times=5)  # one write's every try

    with pytest.raises(OperationFailed, match="503"):
        poll(rt, clock)

    # Taken (each once), but one page's write was tried 5 times, not every page's.
    assert len(notion_jobs(rt)) == 20
    assert len(notion.seen("PATCH")) == 5
    assert "503" in (service.status(rt, now=clock.now())["poll_error"] or "")
    clock.advance(60)
    again = poll(rt, clock)
    assert again["taken"] == 0 and again["written"] == 20
    assert all(not p["Trigger"] for p in notion.pages())


def test_hostile_page_contents_are_refused_by_name_and_nothing_half_made(
    make_runtime: Callable[..., Runtime], notion: NotionServer, clock: Clock
) -> None:
    rt = make_runtime(ai_provider="offline", max_input_chars=5_000, **notion_settings(notion))
    nul = notion.add_page("NUL", description="before\x00after")
    huge = notion.add_page("Huge", description="word " * 2_000)
    email = notion.add_page("Bad client", description="Some work.", client_email="not-an-email")
    markup = notion.add_page("[bold red]<script>alert(1)</script>", description="Some work.")

    answer = poll(rt, clock)

    assert answer["taken"] == 1 and len(answer["refused"]) == 3
    reasons = {r["page_id"]: r["why"] for r in answer["refused"]}
    assert "Description must not contain NUL characters" in reasons[nul]
    assert "Description is 10,000 characters; the limit is 5,000" in reasons[huge]
    assert "Client Email 'not-an-email' is not an email address" in reasons[email]
    (job,) = notion_jobs(rt)
    assert job.external_id == markup and job.name == "[bold red]<script>alert(1)</script>"
    with read_session(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(NotionPage)) == 4
        assert session.scalar(select(func.count()).select_from(Job)) == 1
    for page_id in (nul, huge, email):
        assert notion.page(page_id)["Status"] == "Failed"
