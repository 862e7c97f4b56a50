"""/api/exec: the CEO brief's pipeline (ingest, analyze, brief, email), the newest brief,
and a brief's files."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.briefs import files, service
from echopilot.briefs.render import POLICY

router = APIRouter(prefix="/exec", tags=["exec"])
ACTOR = "api"
STAMP_PATTERN = files.STAMP.pattern
MEDIA = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}

Stamp = Annotated[
    str | None,
    Query(
        pattern=STAMP_PATTERN, max_length=40, description="A brief's stamp, e.g. 20261203_080000"
    ),
]


@router.post("/ingest", response_model=Envelope[dict[str, Any]])
async def ingest(runtime: RuntimeDep, request: Request) -> Response:
    """Step 1: one snapshot of every signal, saved as reports/briefs/ingest_<stamp>.json."""
    return await answer(request, lambda: service.run_ingest(runtime), slow=True)


@router.post("/analyze", response_model=Envelope[dict[str, Any]])
async def analyze(runtime: RuntimeDep, request: Request, stamp: Stamp = None) -> Response:
    """Step 2: the anomalies, actions and confidence of the snapshot `stamp` (default: a
    new snapshot), saved as analysis_<stamp>.json."""
    return await answer(request, lambda: service.run_analyze(runtime, stamp=stamp), slow=True)


@router.post("/brief", response_model=Envelope[dict[str, Any]])
async def brief(
    runtime: RuntimeDep,
    request: Request,
    email: Annotated[bool, Query(description="Also email it")] = False,
    resend: Annotated[bool, Query(description="With email: send even if sent before")] = False,
) -> Response:
    """Steps 1 to 3 (and 5 with `email`): a new brief, written as JSON, HTML and Markdown."""
    return await answer(
        request, lambda: service.run_by(runtime, actor=ACTOR, send=email, resend=resend), slow=True
    )


@router.post("/email", response_model=Envelope[dict[str, Any]])
async def email(
    runtime: RuntimeDep,
    request: Request,
    stamp: Stamp = None,
    resend: Annotated[bool, Query(description="Send even if this brief was sent before")] = False,
) -> Response:
    """Step 5: email the brief `stamp` (default the newest) to ALERT_TO; 409 when it was
    already sent and `resend` is not set. Mail failures are answered, not raised."""
    return await answer(
        request,
        lambda: service.email_by(runtime, actor=ACTOR, stamp=stamp, resend=resend),
        slow=True,
    )


@router.get("/report-latest", response_model=Envelope[dict[str, Any]])
async def report_latest(runtime: RuntimeDep, request: Request) -> Response:
    """The newest brief, with its email state (404 when there is none yet)."""
    return await answer(request, lambda: service.latest(runtime))


@router.get("/briefs", response_model=Envelope[dict[str, Any]])
async def briefs(
    runtime: RuntimeDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=service.LISTED_AT_MOST)] = 10,
) -> Response:
    """The newest briefs in a line each (stamp, headline, counts, email status), newest
    first; an empty list before the first."""
    return await answer(request, lambda: service.listing(runtime, limit=limit))


@router.get("/briefs/{stamp}/{kind}", response_class=FileResponse)
async def brief_file(
    runtime: RuntimeDep,
    stamp: Annotated[str, Path(pattern=STAMP_PATTERN, max_length=40)],
    kind: Literal["html", "md", "json"],
) -> Response:
    """One of a brief's files: its printable HTML page, its Markdown or its JSON."""
    target = files.path(runtime.settings.home, "brief", stamp, kind)
    if not target.is_file():
        raise service.NoBriefYet(stamp)
    return FileResponse(
        target,
        media_type=MEDIA[kind],
        filename=target.name,
        content_disposition_type="inline",
        headers={"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"},
    )
