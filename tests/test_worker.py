"""The worker with real processes and a real queue: crashes, duplicates, graceful stops.

These run on the embedded default and, when the servers are there, on PostgreSQL and on a
Redis queue (mandatory in CI).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from echopilot.clock import utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import Job, JobEvent
from echopilot.jobs import intake, views
from echopilot.jobs.intake import JobRequest
from echopilot.queue.recovery import sweep
from echopilot.queue.worker import run_worker
from echopilot.runtime import Runtime
from tests.conftest import BACKENDS, run_cli, start_cli, wait_for
from tests.fakes.model_server import FakeModelServer, Reply

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)
TEXT = "The pilot study enrolled forty clinics. Results were positive. Costs stayed flat."


def submit(rt: Runtime, name: str = "job") -> int:
    request = JobRequest(name=name, task_type="summary", input=TEXT, source="api")
    return intake.submit(rt, request, actor="test").id


def job_of(rt: Runtime, job_id: int) -> dict[str, object]:
    with read_session(rt.sessions) as session:
        return views.show(session, job_id)


def status_of(rt: Runtime, job_id: int) -> str:
    with read_session(rt.sessions) as session:
        return str(session.scalar(select(Job.status).where(Job.id == job_id)))


def transitions_to(rt: Runtime, job_id: int, status: str) -> int:
    with read_session(rt.sessions) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.to_status == status)
            )
            or 0
        )


@pytest.mark.slow
def test_a_killed_worker_s_job_completes_exactly_once_after_its_lease_expires(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(lease_seconds=3)
    model_server.on("task", Reply.ok("never delivered", delay=60))
    job_id = submit(rt)
    worker = start_cli(rt.settings, "worker", "--concurrency", "2")
    try:
        wait_for(lambda: model_server.count("task") >= 1 and status_of(rt, job_id) == "processing")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert status_of(rt, job_id) == "processing"

    # Until its lease runs out, the job belongs to the dead worker; then it is stuck.
    with read_session(rt.sessions) as session:
        lease_until = session.scalar(select(Job.lease_until).where(Job.id == job_id))
    assert lease_until is not None
    wait_for(lambda: utcnow() > lease_until + timedelta(milliseconds=200), timeout=10)

    result = run_cli(rt.settings, "worker", "--burst")
    assert result.returncode == 0, result.stderr

    job = job_of(rt, job_id)
    assert job["status"] == "done"
    assert job["attempts"] == 2
    assert [a["status"] for a in job["attempt_log"]] == ["lost", "ok"]  # type: ignore[union-attr]
    assert transitions_to(rt, job_id, "done") == 1
    assert job["price_usd"] == "8.00"
    assert job["payment_status"] == "not_configured"


def test_duplicate_queue_messages_for_one_job_change_nothing(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt()
    job_id = submit(rt)
    for _ in range(3):
        rt.queue.enqueue(job_id)
    assert run_worker(rt, concurrency=4, burst=True) == 0

    job = job_of(rt, job_id)
    assert job["status"] == "done"
    assert job["attempts"] == 1
    assert model_server.count("task") == 1
    assert model_server.count("qa") == 1
    assert transitions_to(rt, job_id, "done") == 1
    assert rt.queue.depth() == 0


def test_a_job_waits_in_the_queue_until_a_worker_starts(offline: Runtime) -> None:
    job_id = submit(offline)
    assert status_of(offline, job_id) == "queued"
    assert offline.queue.job_ids(100) == {job_id}
    result = run_cli(offline.settings, "worker", "--burst")
    assert result.returncode == 0, result.stderr
    assert status_of(offline, job_id) == "done"


def test_a_job_whose_enqueue_was_lost_is_found_and_run(offline: Runtime) -> None:
    job_id = submit(offline)
    offline.queue.huey.flush()  # the message is gone; only the row remembers the job
    assert offline.queue.depth() == 0
    assert run_worker(offline, burst=True) == 0
    assert status_of(offline, job_id) == "done"


def test_the_sweep_requeues_a_stuck_job_without_using_a_model_attempt(offline: Runtime) -> None:
    from echopilot.jobs.pipeline import claim_job

    again, crashing = submit(offline, "again"), submit(offline, "crashing")
    limit = offline.settings.max_lost_leases
    with offline.sessions.begin() as session:
        # One attempt left for the model, and one worker short of the lost-lease limit.
        session.get(Job, again).max_attempts = 1  # type: ignore[union-attr]
        session.get(Job, crashing).lost_leases = limit - 1  # type: ignore[union-attr]
    assert claim_job(offline, again) and claim_job(offline, crashing)

    later = utcnow() + timedelta(seconds=offline.settings.lease_seconds + 1)
    result = sweep(offline, now=later)

    assert result.requeued_stuck == [again]
    assert result.dead_stuck == [crashing]
    requeued = job_of(offline, again)
    assert requeued["attempt_log"][0]["status"] == "lost"  # type: ignore[index]
    assert requeued["status"] == "queued"
    assert requeued["max_attempts"] == 2  # the lost attempt is given back
    dead = job_of(offline, crashing)
    assert dead["status"] == "dead"
    assert "ECHOPILOT_MAX_LOST_LEASES" in dead["error"]  # says which limit it hit
    assert sweep(offline, now=later).requeued_stuck == []  # a second sweep finds nothing
    assert run_worker(offline, burst=True) == 0
    assert status_of(offline, again) == "done"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_a_running_job_finish(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer, signum: int
) -> None:
    rt = openai_rt(worker_shutdown_seconds=20)
    model_server.on("task", Reply.ok("finished during shutdown", delay=1.5))
    job_id = submit(rt)
    worker = start_cli(rt.settings, "worker")
    wait_for(lambda: model_server.count("task") >= 1)
    worker.send_signal(signum)
    assert worker.wait(timeout=30) == 0
    assert status_of(rt, job_id) == "done"
    assert job_of(rt, job_id)["result"] == "finished during shutdown"


@pytest.mark.slow
def test_a_job_still_running_at_the_shutdown_timeout_is_handed_back(
    openai_rt: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = openai_rt(worker_shutdown_seconds=1)
    model_server.on("task", Reply.ok("too slow", delay=30))
    job_id = submit(rt)
    worker = start_cli(rt.settings, "worker")
    wait_for(lambda: model_server.count("task") >= 1 and status_of(rt, job_id) == "processing")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    job = job_of(rt, job_id)
    assert job["status"] == "queued"
    assert job["attempt_log"][0]["status"] == "handed_back"  # type: ignore[index]
    assert rt.queue.job_ids(100) == {job_id}

    assert run_cli(rt.settings, "worker", "--burst").returncode == 0
    job = job_of(rt, job_id)
    assert job["status"] == "done"
    assert job["result"] == model_server.default_text
    assert transitions_to(rt, job_id, "done") == 1


def test_the_pipeline_runs_with_no_network_and_no_key(
    offline: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else ""
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise OSError(f"network disabled in this test: {address}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    assert "OPENAI_API_KEY" not in os.environ
    ids = [submit(offline, f"job {i}") for i in range(5)]
    assert run_worker(offline, concurrency=3, burst=True) == 0
    assert {status_of(offline, i) for i in ids} == {"done"}
    assert job_of(offline, ids[0])["provider"] == "offline"


def test_a_sweep_judging_a_dead_lease_never_takes_the_job_from_its_next_worker(
    offline: Runtime,
) -> None:
    # Several workers sweep at once: one judged the lease of a killed worker, another
    # requeued the job, and a live worker claimed it before the first one got to it.
    from echopilot.jobs.pipeline import claim_job
    from echopilot.queue import recovery

    job_id = submit(offline, "contested")
    assert claim_job(offline, job_id)
    later = utcnow() + timedelta(hours=1)  # past both leases, however slow the claims
    with offline.sessions() as session:
        judged = recovery._stuck(
            session, later, frozenset(), wait_for_lease=True, judge_remote=True
        )
    assert [found.job_id for found in judged] == [job_id]
    assert sweep(offline, now=later).requeued_stuck == [job_id]
    claim = claim_job(offline, job_id)
    assert claim

    late = recovery.SweepResult()
    recovery._recover(offline, judged, later, late, frozenset())

    assert late.requeued_stuck == [] and late.dead_stuck == []
    job = job_of(offline, job_id)
    assert job["status"] == "processing"
    assert [a["status"] for a in job["attempt_log"]] == ["lost", "running"]  # type: ignore[union-attr]


def test_a_job_whose_attempts_never_record_their_end_dies_at_the_lost_lease_limit(
    offline: Runtime,
) -> None:
    # Each unrecorded end is handed back like a lost lease: a job whose end can never be
    # written (a bug in that path) ends dead instead of running, and paying, for ever.
    from echopilot.jobs.pipeline import claim_job
    from echopilot.queue.worker import hand_back

    limit = offline.settings.max_lost_leases
    job_id = submit(offline, "never recorded")
    with offline.sessions.begin() as session:
        session.get(Job, job_id).lost_leases = limit - 2  # type: ignore[union-attr]
    spent: list[int] = []
    for _ in range(2):
        claim = claim_job(offline, job_id)
        assert claim
        assert hand_back(offline, claim.token, job_id, save_spend=lambda _c: spent.append(1))
    job = job_of(offline, job_id)
    assert job["status"] == "dead"
    assert "ECHOPILOT_MAX_LOST_LEASES" in str(job["error"])
    assert [a["status"] for a in job["attempt_log"]] == ["handed_back", "handed_back"]  # type: ignore[union-attr]
    assert spent == [1, 1], "each attempt's spend was saved with its hand-back"
    assert not hand_back(offline, claim.token, job_id), "a finished job is not handed back"
