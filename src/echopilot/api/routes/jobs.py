"""/api/jobs: submit, list, show, retry, cancel, approve, reject."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from echopilot.api.deps import RuntimeDep, SessionDep
from echopilot.api.envelope import Envelope, ok
from echopilot.api.schemas import JobCreate, JobDetail, JobPage, RejectBody
from echopilot.jobs import intake, views
from echopilot.jobs.status import Status
from echopilot.runtime import Runtime

router = APIRouter(prefix="/jobs", tags=["jobs"])
ACTOR = "api"
StatusFilter = Annotated[Status | None, Query(description="Only jobs in this status")]
MAX_ID = 2**63 - 1  # ids are 64-bit integers in every database
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="Job id")]


@router.post("", status_code=201, response_model=Envelope[JobDetail])
def submit_job(body: JobCreate, runtime: RuntimeDep) -> dict[str, Any]:
    request = intake.JobRequest(
        name=body.name,
        task_type=body.task_type,
        input=body.input,
        client_email=body.client,
        qa_target=body.qa_target,
        priority=body.priority,
        source="api",
    )
    job = intake.submit(runtime, request, actor=ACTOR)
    return ok(_show(runtime, job.id))


@router.get("", response_model=Envelope[JobPage])
def list_jobs(
    session: SessionDep,
    status: StatusFilter = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIST)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="next_cursor of the last page")
    ] = None,
) -> dict[str, Any]:
    items = views.listing(
        session, status=status.value if status else None, limit=limit, before_id=cursor
    )
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return ok({"items": items, "next_cursor": next_cursor})


@router.get("/{job_id}", response_model=Envelope[JobDetail])
def show_job(
    job_id: JobId,
    session: SessionDep,
    full_input: Annotated[
        bool, Query(description="Return the whole input, not only its first 4,000 characters")
    ] = False,
) -> dict[str, Any]:
    return ok(views.show(session, job_id, full_input=full_input))


@router.post("/{job_id}/retry", response_model=Envelope[JobDetail])
def retry_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    intake.retry(runtime, job_id, actor=ACTOR)
    return ok(_show(runtime, job_id))


@router.post("/{job_id}/cancel", response_model=Envelope[JobDetail])
def cancel_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    intake.cancel(runtime, job_id, actor=ACTOR)
    return ok(_show(runtime, job_id))


@router.post("/{job_id}/approve", response_model=Envelope[JobDetail])
def approve_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    """Accept a needs-review job's answer: it becomes done and is billed."""
    intake.approve(runtime, job_id, actor=ACTOR)
    return ok(_show(runtime, job_id))


@router.post("/{job_id}/reject", response_model=Envelope[JobDetail])
def reject_job(
    job_id: JobId, runtime: RuntimeDep, body: Annotated[RejectBody | None, Body()] = None
) -> dict[str, Any]:
    """Refuse a needs-review job's answer: it ends cancelled and unbilled."""
    intake.reject(runtime, job_id, actor=ACTOR, reason=body.reason if body else None)
    return ok(_show(runtime, job_id))


def _show(runtime: Runtime, job_id: int) -> dict[str, Any]:
    with runtime.sessions() as session:
        return views.show(session, job_id)
