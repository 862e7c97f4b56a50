"""Money recorded by hand and the payments views, through the HTTP API and the CLI:
`mark-paid` is audited, makes the job paid and counts in paid revenue; bad input and jobs
that owe nothing are refused with nothing half-written; `payments list|show|status` show
what the ledger holds. The CLI runs as a child process in a clean environment (the
settings' variables only), as a user's shell would run it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from echopilot.clock import utcnow
from echopilot.db.models import AuditLog, Payment
from echopilot.finance import metrics
from echopilot.runtime import Runtime
from tests.api_support import api_client, assert_error, assert_ok
from tests.conftest import run_cli
from tests.test_payments_webhook import (
    add_job,
    checkout_completed,
    deliver,
    intent_failed,
    ledger_of,
    new_id,
    payment_status,
    payments_runtime,
    world,
)


@pytest.fixture(autouse=True)
def _no_stripe_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's STRIPE_* must not reach the code under test or its children."""
    for name in list(os.environ):
        if name.startswith("STRIPE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return payments_runtime(make_runtime)


@pytest.fixture
def dashboard(rt: Runtime) -> Any:
    with api_client(rt) as client:
        yield client


def audit_of(rt: Runtime) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.details).where(
                AuditLog.action.like("payment%")
            )
        )
        return [tuple(r) for r in rows]


def revenue_paid_7d(rt: Runtime) -> str:
    with rt.engine.connect() as conn:
        return str(metrics.finance(conn, now=utcnow())["revenue_paid_7d"])


def manual_entries(rt: Runtime) -> list[tuple[Any, ...]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(
                Payment.job_id, Payment.amount_cents, Payment.method, Payment.actor, Payment.note
            )
        )
        return [tuple(r) for r in rows]


# mark-paid through the API.


def test_mark_paid_through_the_api_is_audited_and_counted(
    rt: Runtime, dashboard: TestClient
) -> None:
    job = add_job(rt, price_cents=1000)
    other = add_job(rt, price_cents=500)
    assert revenue_paid_7d(rt) == "0.00"

    data = assert_ok(
        dashboard.post(
            f"/api/payments/{job}/mark-paid", json={"amount": "12.50", "note": "bank transfer"}
        )
    )

    assert {k: v for k, v in data.items() if k != "recorded_at"} == {
        "job_id": job,
        "payment_status": "paid",
        "amount": "12.50",
        "price": "10.00",
        "note": "bank transfer",
        "actor": "api",
        "link": None,  # EchoPilot made no Stripe link for it
    }
    assert payment_status(rt, job) == "paid"
    assert payment_status(rt, other) == "unpaid"
    assert manual_entries(rt) == [(job, 1250, "manual", "api", "bank transfer")]
    assert audit_of(rt) == [
        (
            "api",
            "payment.mark_paid",
            f"job:{job}",
            {"amount_cents": 1250, "note": "bank transfer", "price_cents": 1000},
        )
    ]
    assert revenue_paid_7d(rt) == "12.50"
    detail = assert_ok(dashboard.get(f"/api/payments/{job}"))
    assert detail["payment_status"] == "paid" and detail["net_received"] == "12.50"
    assert [
        (e["kind"], e["amount"], e["method"], e["actor"], e["note"]) for e in detail["ledger"]
    ] == [("payment", "12.50", "manual", "api", "bank transfer")]
    status = assert_ok(dashboard.get("/api/payments/status"))
    assert status["paid_7d"]["received"] == status["paid_7d"]["net"] == "12.50"
    assert status["by_status"]["paid"] == 1 and status["by_status"]["unpaid"] == 1
    owed = assert_ok(dashboard.get("/api/payments?status=owed"))
    assert [j["id"] for j in owed["jobs"]] == [other]


def test_mark_paid_without_an_amount_records_the_price(rt: Runtime, dashboard: TestClient) -> None:
    failed = add_job(rt, price_cents=4321)
    with api_client(rt, key=None) as hook:
        deliver(hook, intent_failed(failed, new_id("pi"), 4321))
    assert payment_status(rt, failed) == "payment_failed"
    data = assert_ok(dashboard.post(f"/api/payments/{failed}/mark-paid"))
    assert (data["amount"], data["payment_status"], data["note"]) == ("43.21", "paid", None)
    assert ledger_of(rt, failed) == [("payment", 4321)]


BAD_BODIES = [
    ("letters", {"amount": "abc"}, "amount"),
    ("negative", {"amount": "-1"}, "amount"),
    ("zero", {"amount": "0"}, "amount"),
    ("three decimals", {"amount": "1.234"}, "amount"),
    ("a billion", {"amount": "1e9"}, "amount"),
    ("NaN", {"amount": "NaN"}, "amount"),
    ("infinity", {"amount": "Infinity"}, "amount"),
    ("empty", {"amount": ""}, "amount"),
    ("a number, not text", {"amount": 12.5}, "amount"),
    ("note with NUL", {"amount": "10.00", "note": "paid\x00cash"}, "note"),
    ("note with a control", {"amount": "10.00", "note": "paid\x1bcash"}, "note"),
    ("note too long", {"amount": "10.00", "note": "x" * 501}, "note"),
    ("unknown field", {"amount": "10.00", "paid_by": "me"}, "paid_by"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_BODIES], ids=[n for n, *_ in BAD_BODIES]
)
def test_mark_paid_refuses_bad_input_and_writes_nothing(
    rt: Runtime, dashboard: TestClient, body: dict[str, Any], field: str
) -> None:
    job = add_job(rt, price_cents=1000)
    before = world(rt)
    error = assert_error(
        dashboard.post(f"/api/payments/{job}/mark-paid", json=body), 422, "invalid_input"
    )
    assert error.get("fields") == [field], error
    assert world(rt) == before
    assert payment_status(rt, job) == "unpaid"


def test_mark_paid_refuses_jobs_that_owe_nothing_and_writes_nothing(
    rt: Runtime, dashboard: TestClient
) -> None:
    not_billed = add_job(rt, price_cents=None, payment_status="na")
    review = add_job(rt, price_cents=1000, payment_status="na", status="needs_review")
    by_stripe = add_job(rt, price_cents=1000)
    by_hand = add_job(rt, price_cents=1000)
    with api_client(rt, key=None) as hook:
        deliver(hook, checkout_completed(by_stripe, new_id("pi"), 1000))
    assert_ok(dashboard.post(f"/api/payments/{by_hand}/mark-paid", json={"note": "cash"}))
    before = world(rt)

    for job, status, code in [
        (999_999, 404, "not_found"),
        (not_billed, 409, "conflict"),
        (review, 409, "conflict"),
        (by_stripe, 409, "conflict"),
        (by_hand, 409, "conflict"),
    ]:
        answer = dashboard.post(f"/api/payments/{job}/mark-paid", json={"amount": "10.00"})
        error = assert_error(answer, status, code)
        assert str(job) in error["message"], error
    for bad_id in ("0", "-3", "abc", str(2**63)):
        assert_error(dashboard.post(f"/api/payments/{bad_id}/mark-paid"), 422, "invalid_input")
    assert world(rt) == before
    assert [a[1] for a in audit_of(rt)] == ["payment.mark_paid"]  # by_hand's only
    assert ledger_of(rt, by_hand) == [("payment", 1000)]


def test_money_owed_drops_by_the_price_when_a_job_is_paid(
    rt: Runtime, dashboard: TestClient
) -> None:
    by_hand, by_stripe, still = (add_job(rt, price_cents=p) for p in (1000, 2550, 999))

    def owed() -> str:
        with rt.engine.connect() as conn:
            found = metrics.finance(conn, now=utcnow())
        return f"{found['owed']['amount']} {found['owed']['jobs']} {found['revenue_paid_7d']}"

    assert owed() == "45.49 3 0.00"
    answer = dashboard.post(
        f"/api/payments/{by_hand}/mark-paid", json={"amount": "12.50", "note": "bank transfer"}
    )
    assert assert_ok(answer)["payment_status"] == "paid"
    assert owed() == "35.49 2 12.50"  # its price (10.00) is no longer owed; 12.50 came in

    with api_client(rt, key=None) as hook:
        deliver(hook, checkout_completed(by_stripe, new_id("pi"), 2550))
    assert owed() == "9.99 1 38.00"
    status = assert_ok(dashboard.get("/api/payments/status"))
    assert status["paid_7d"]["received"] == "38.00"
    assert (status["owed"]["jobs"], status["owed"]["amount"]) == (1, "9.99")
    assert status["by_status"]["paid"] == 2 and status["by_status"]["unpaid"] == 1
    assert payment_status(rt, still) == "unpaid"


# The CLI, in a child process.


def cli_json(rt: Runtime, *args: str) -> tuple[int, Any]:
    result = run_cli(rt.settings, "payments", *args, "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {result.stdout!r} {result.stderr!r}") from None


@pytest.fixture
def plain_rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    """No Stripe: billed jobs are `not_configured` and are paid by hand."""
    return make_runtime(ai_provider="offline")


def test_mark_paid_from_the_cli_is_audited_and_shown(plain_rt: Runtime) -> None:
    rt = plain_rt
    older = add_job(rt, price_cents=2000, payment_status="not_configured")
    job = add_job(rt, price_cents=1000, payment_status="not_configured")
    code, data = cli_json(rt, "mark-paid", str(job), "--amount", "12.50", "--note", "bank transfer")
    assert code == 0, data
    assert {k: v for k, v in data.items() if k != "recorded_at"} == {
        "job_id": job,
        "payment_status": "paid",
        "amount": "12.50",
        "price": "10.00",
        "note": "bank transfer",
        "actor": "cli",
        "link": None,
    }
    assert audit_of(rt) == [
        (
            "cli",
            "payment.mark_paid",
            f"job:{job}",
            {"amount_cents": 1250, "note": "bank transfer", "price_cents": 1000},
        )
    ]
    assert revenue_paid_7d(rt) == "12.50"

    with ThreadPoolExecutor(3) as pool:
        show, owed, status = pool.map(
            lambda args: cli_json(rt, *args),
            [("show", str(job)), ("list", "--status", "owed"), ("status",)],
        )
    assert show[0] == owed[0] == status[0] == 0
    show, owed, status = show[1], owed[1], status[1]
    assert (show["payment_status"], show["price"], show["net_received"]) == (
        "paid",
        "10.00",
        "12.50",
    )
    assert [
        (e["kind"], e["amount"], e["method"], e["actor"], e["note"]) for e in show["ledger"]
    ] == [("payment", "12.50", "manual", "cli", "bank transfer")]
    assert owed["status"] == "owed"
    assert [
        (j["id"], j["payment_status"], j["price"], j["net_received"]) for j in owed["jobs"]
    ] == [(older, "not_configured", "20.00", "0.00")]
    assert status["configured"] is False and status["webhook_configured"] is False
    assert status["by_status"]["paid"] == 1 and status["by_status"]["not_configured"] == 1
    assert status["paid_7d"] == {
        "received": "12.50",
        "refunded": "0.00",
        "disputed": "0.00",
        "reinstated": "0.00",
        "net": "12.50",
    }


def test_the_cli_refuses_bad_input_with_its_exit_codes_and_writes_nothing(
    plain_rt: Runtime,
) -> None:
    rt = plain_rt
    job = add_job(rt, price_cents=1000, payment_status="not_configured")
    not_billed = add_job(rt, price_cents=None, payment_status="na")
    paid = add_job(rt, price_cents=1000, payment_status="not_configured")
    assert cli_json(rt, "mark-paid", str(paid))[0] == 0
    before = world(rt)
    cases = [
        ((str(job), "--amount", "abc"), 2, "invalid_input"),
        ((str(job), "--amount", "-1"), 2, "invalid_input"),
        ((str(job), "--amount", "0"), 2, "invalid_input"),
        ((str(job), "--amount", "1.234"), 2, "invalid_input"),
        ((str(job), "--amount", "1e9"), 2, "invalid_input"),
        # NUL cannot be passed in a command line at all; another control character can.
        ((str(job), "--note", "bank\x07transfer"), 2, "invalid_input"),
        ((str(job), "--note", "x" * 501), 2, "invalid_input"),
        (("999999",), 2, "not_found"),
        (("abc",), 2, "bad_usage"),
        ((str(not_billed),), 1, "conflict"),
        ((str(paid), "--amount", "10"), 1, "conflict"),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: cli_json(rt, "mark-paid", *case[0]), cases))
    for (args, exit_code, error_code), (code, out) in zip(cases, results, strict=True):
        assert code == exit_code, (args, out)
        assert out["ok"] is False and out["data"] is None, (args, out)
        assert out["error"]["code"] == error_code, (args, out)
        assert out["error"]["message"], (args, out)
    code, out = cli_json(rt, "list", "--status", "nonsense")
    assert (code, out["error"]["code"]) == (2, "invalid_input")
    code, out = cli_json(rt, "show", "999999")
    assert (code, out["error"]["code"]) == (2, "not_found")
    assert world(rt) == before
    assert payment_status(rt, job) == "not_configured"
