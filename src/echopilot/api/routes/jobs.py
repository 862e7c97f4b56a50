"""/api/jobs: submit, list, show, retry, cancel, approve, reject.

Each route parses, then does its blocking work in one `answer()` call: a thread opens its
own connection or session, calls one service, closes it and serialises the job objects.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
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
async def submit_job(body: JobCreate, runtime: RuntimeDep, request: Request) -> Response:
    job_request = intake.JobRequest(
        name=body.name,
        task_type=body.task_type,
        input=body.input,
        client_email=body.client,
        qa_target=body.qa_target,
        priority=body.priority,
        source="api",
    )

    def work() -> dict[str, Any]:
        job = intake.submit(runtime, job_request, actor=ACTOR)
        return _show(runtime, job.id)

    return await answer(request, work, status_code=201)


@router.get("", response_model=Envelope[JobPage])
async def list_jobs(
    runtime: RuntimeDep,
    request: Request,
    status: StatusFilter = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIST)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="next_cursor of the last page")
    ] = None,
) -> Response:
    def work() -> dict[str, Any]:
        with runtime.engine.connect() as conn:
            items = views.listing(
                conn, status=status.value if status else None, limit=limit, before_id=cursor
            )
        next_cursor = items[-1]["id"] if len(items) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    return await answer(request, work)


@router.get("/{job_id}", response_model=Envelope[JobDetail])
async def show_job(
    job_id: JobId,
    runtime: RuntimeDep,
    request: Request,
    full_input: Annotated[
        bool, Query(description="Return the whole input, not only its first 4,000 characters")
    ] = False,
) -> Response:
    return await answer(request, lambda: _show(runtime, job_id, full_input=full_input))


@router.post("/{job_id}/retry", response_model=Envelope[JobDetail])
async def retry_job(job_id: JobId, runtime: RuntimeDep, request: Request) -> Response:
    return await answer(request, lambda: _act(runtime, job_id, intake.retry))


@router.post("/{job_id}/cancel", response_model=Envelope[JobDetail])
async def cancel_job(job_id: JobId, runtime: RuntimeDep, request: Request) -> Response:
    return await answer(request, lambda: _act(runtime, job_id, intake.cancel))


@router.post("/{job_id}/approve", response_model=Envelope[JobDetail])
async def approve_job(job_id: JobId, runtime: RuntimeDep, request: Request) -> Response:
    """Accept a needs-review job's answer: it becomes done and is billed."""
    return await answer(request, lambda: _act(runtime, job_id, intake.approve))


@router.post("/{job_id}/reject", response_model=Envelope[JobDetail])
async def reject_job(
    job_id: JobId,
    runtime: RuntimeDep,
    request: Request,
    body: Annotated[RejectBody | None, Body()] = None,
) -> Response:
    """Refuse a needs-review job's answer: it ends cancelled and unbilled."""
    reason = body.reason if body else None

    def work() -> dict[str, Any]:
        intake.reject(runtime, job_id, actor=ACTOR, reason=reason)
        return _show(runtime, job_id)

    return await answer(request, work)


def _act(runtime: Runtime, job_id: int, action: Any) -> dict[str, Any]:
    action(runtime, job_id, actor=ACTOR)
    return _show(runtime, job_id)


def _show(runtime: Runtime, job_id: int, *, full_input: bool = False) -> dict[str, Any]:
    with runtime.sessions() as session:
        return views.show(session, job_id, full_input=full_input)
