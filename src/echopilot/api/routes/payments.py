"""/api/payments (behind the key) and POST /webhook/stripe (public, signature-verified)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, Field

from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope, error_response
from echopilot.api.pool import answer, in_pool
from echopilot.errors import OperationFailed
from echopilot.payments import reconcile, service, webhook
from echopilot.runtime import Runtime

router = APIRouter(prefix="/payments", tags=["payments"])
public = APIRouter(tags=["payments"])
ACTOR = "api"
MAX_ID = 2**63 - 1
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="Job id")]


class MarkPaidBody(BaseModel):
    model_config = {"extra": "forbid"}

    amount: str | None = Field(
        default=None,
        max_length=32,
        description='USD received, e.g. "12.50" (default: the job\'s price)',
    )
    note: str | None = Field(
        default=None, max_length=service.MAX_NOTE, description="How it was paid"
    )


class MarkPaidOut(BaseModel):
    job_id: int
    payment_status: str
    link: str | None = Field(
        description="The job's Stripe link: deactivated, or why it is still open; null: none"
    )
    amount: str
    price: str | None
    note: str | None
    recorded_at: str
    actor: str


class PaymentJob(BaseModel):
    id: int
    name: str
    task_type: str
    client: str | None
    payment_status: str
    price: str | None
    net_received: str
    payment_link: str | None
    finished_at: str | None
    problem: str | None = Field(description="The last link error or payment failure")


class PaymentList(BaseModel):
    status: str | None
    jobs: list[PaymentJob]


class PaymentDetail(BaseModel):
    job_id: int
    payment_status: str
    price: str | None
    net_received: str
    payment_link: str | None
    link: dict[str, Any] | None
    ledger: list[dict[str, Any]]
    disputes: list[dict[str, Any]]
    events: list[dict[str, Any]]


class PaymentsOverview(BaseModel):
    configured: bool
    webhook_configured: bool
    by_status: dict[str, int]
    paid_7d: dict[str, str]
    paid_30d: dict[str, str]
    owed: dict[str, Any] = Field(
        description="Billed and not paid: jobs, amount, ageing (0_7d, 8_30d, over_30d)"
    )
    open_disputes: int
    events_waiting: int
    last_event_at: str | None
    reconciled_at: str | None
    last_reconcile: dict[str, Any] | None
    freshness: str | None = Field(description="Why the payment figures may be behind, if so")
    as_of: str


class ReconcileOut(BaseModel):
    ok: bool
    skipped: bool = False
    error: str | None = None
    read_from: str | None = None
    events_read: int = 0
    events_applied: int = 0
    pending_resolved: int = 0
    links_created: int = 0
    links_waiting: int = 0
    notes: list[str]


class WebhookOut(BaseModel):
    event: str
    type: str
    outcome: str = Field(description="applied | pending | ignored | duplicate")
    job_id: int | None
    payment_status: str | None
    detail: str | None


@router.get("", response_model=Envelope[PaymentList])
async def payments_list(
    runtime: RuntimeDep,
    request: Request,
    status: Annotated[
        str | None,
        Query(max_length=32, description="A payment status, or 'owed' for all that owe"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.LIST_LIMIT)] = 50,
) -> Response:
    """Billed jobs, newest first: price, money received, link, last problem."""
    return await answer(request, lambda: service.list_jobs(runtime, status=status, limit=limit))


@router.get("/status", response_model=Envelope[PaymentsOverview])
async def payments_status(runtime: RuntimeDep, request: Request) -> Response:
    """Jobs by payment status, money in over 7 and 30 days, disputes, reconciliation."""
    return await answer(request, lambda: service.overview(runtime))


@router.post("/reconcile", response_model=Envelope[ReconcileOut])
async def payments_reconcile(runtime: RuntimeDep, request: Request) -> Response:
    """Read Stripe's recent events now and apply the missed ones; 502 when Stripe is
    unreachable (recorded: the reports' freshness line says so)."""
    return await answer(request, lambda: _reconcile(runtime), slow=True)


def _reconcile(runtime: Runtime) -> dict[str, Any]:
    result = reconcile.run(runtime, actor=ACTOR)
    if not result["ok"]:
        raise OperationFailed(f"Stripe not reconciled: {result['error']}")
    return result


@router.get("/{job_id}", response_model=Envelope[PaymentDetail])
async def payment_detail(job_id: JobId, runtime: RuntimeDep, request: Request) -> Response:
    """One job's money: link, ledger, disputes and Stripe events."""
    return await answer(request, lambda: service.job_detail(runtime, job_id))


@router.post("/{job_id}/mark-paid", response_model=Envelope[MarkPaidOut])
async def mark_paid(
    job_id: JobId,
    runtime: RuntimeDep,
    request: Request,
    body: Annotated[MarkPaidBody | None, Body()] = None,
) -> Response:
    """Record money received outside Stripe (cash, bank transfer), audited."""
    given = body or MarkPaidBody()
    return await answer(
        request,
        lambda: service.mark_paid(
            runtime, job_id, actor=ACTOR, amount=given.amount, note=given.note
        ),
    )


@public.post("/webhook/stripe", response_model=Envelope[WebhookOut])
async def stripe_webhook(runtime: RuntimeDep, request: Request) -> Response:
    """Stripe's events (no dashboard key: the Stripe-Signature header is checked against
    STRIPE_WEBHOOK_SECRET). 200 once recorded (or already recorded); 400 when the signature
    is missing, wrong or stale, or the body is not an event; nothing changes then."""
    body = await request.body()
    header = request.headers.get("stripe-signature")
    try:
        result = await in_pool(request, lambda: webhook.receive(runtime, body, header))
    except webhook.WebhookRefused as exc:
        return error_response(
            exc.status, exc.code, str(exc), request_id=getattr(request.state, "request_id", None)
        )
    return Response(
        content=_json({"ok": True, "data": result, "error": None}),
        media_type="application/json",
    )


def _json(data: Any) -> bytes:
    return orjson.dumps(data)
