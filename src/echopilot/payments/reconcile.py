"""Reconciliation with Stripe (task `payment_reconcile`, `echopilot payments reconcile`).

A webhook can be lost: the server was down, the network cut it, Stripe gave up. So every
15 minutes EchoPilot reads Stripe's recent events itself (all pages) and applies any it
has not recorded, exactly as the webhook would (by id: one already applied does nothing);
re-reads from Stripe the payment of each event still waiting for its job; and asks again
for the links that could not be made. Each run is recorded with what it did, or with why
Stripe could not be reached: the newest good one says how fresh the payment figures are.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from echopilot.clock import iso, utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import PaymentReconcile, StripeEvent
from echopilot.payments import events, links
from echopilot.payments.gateway import Gateway, NotFound, Refused, Unreachable
from echopilot.payments.webhook import apply_once
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)
OVERLAP = timedelta(hours=1)
STRIPE_KEEPS = timedelta(days=30)
LINKS_PER_RUN = 200
PENDING_PER_RUN = 200
OFF_NOTE = "payments are off: set STRIPE_SECRET_KEY to reconcile with Stripe"


def last_good(runtime: Runtime) -> PaymentReconcile | None:
    with read_session(runtime.sessions) as session:
        return session.scalar(
            select(PaymentReconcile)
            .where(PaymentReconcile.ok.is_(True))
            .order_by(PaymentReconcile.started_at.desc(), PaymentReconcile.id.desc())
            .limit(1)
        )


def last_run(runtime: Runtime) -> PaymentReconcile | None:
    with read_session(runtime.sessions) as session:
        return session.scalar(
            select(PaymentReconcile)
            .order_by(PaymentReconcile.started_at.desc(), PaymentReconcile.id.desc())
            .limit(1)
        )


def _read_from(runtime: Runtime, now: datetime) -> datetime:
    previous = last_good(runtime)
    if previous is None:
        since = now - timedelta(days=runtime.settings.payments_lookback_days)
    else:
        since = previous.started_at - OVERLAP
    return max(since, now - STRIPE_KEEPS)


def run(
    runtime: Runtime,
    *,
    actor: str = "scheduler",
    now: datetime | None = None,
    gateway: Gateway | None = None,
) -> dict[str, Any]:
    """One reconciliation; the answer says what it read and did (`ok` false when Stripe
    could not be reached or refused, with the reason)."""
    now = now or utcnow()
    if not runtime.settings.payments_enabled:
        return {"ok": True, "skipped": True, "notes": [OFF_NOTE]}
    since = _read_from(runtime, now)
    with write_session(runtime.sessions) as session:
        opened = PaymentReconcile(
            started_at=now,
            actor=actor,
            ok=False,
            read_from=since,
            events_read=0,
            events_applied=0,
            links_created=0,
        )
        session.add(opened)
        session.flush()
        record_id = opened.id
    found: dict[str, Any] = {"events_read": 0, "events_applied": 0, "links_created": 0}
    error = None
    try:
        gateway = gateway or Gateway(runtime.settings)
        failed = _events(runtime, gateway, since, now, found)
        found["pending_resolved"] = _pending(runtime, gateway, now)
        found["links_created"], found["links_waiting"] = _links(runtime, gateway, now)
        error = failed
    except (Unreachable, Refused) as exc:
        error = str(exc)
        log.warning("payment reconciliation stopped: %s", error)
    except Exception as exc:  # recorded, never left half-open
        log.exception("payment reconciliation failed")
        error = f"unexpected error: {type(exc).__name__}"
    finally:
        with write_session(runtime.sessions) as session:
            record = session.get(PaymentReconcile, record_id)
            assert record is not None
            record.finished_at = utcnow()
            record.ok = error is None
            record.error = error
            record.events_read = found["events_read"]
            record.events_applied = found["events_applied"]
            record.links_created = found["links_created"]
    return {
        "ok": error is None,
        "error": error,
        "read_from": iso(since),
        **found,
        "notes": [] if error is None else [f"Stripe not reconciled: {error}"],
    }


def _events(
    runtime: Runtime, gateway: Gateway, since: datetime, now: datetime, found: dict[str, Any]
) -> str | None:
    """Apply the listed events not yet recorded; what went wrong with any, or None. One
    event that cannot be applied does not stop the others."""
    failures: list[str] = []
    for raw in gateway.events_since(since):
        found["events_read"] += 1
        try:
            event = events.check(raw)
            result = apply_once(runtime, event, via="reconcile", now=now)
        except events.BadEvent as exc:
            log.warning("Stripe listed an unreadable event: %s", exc)
            continue
        except Exception as exc:
            log.exception("stripe event %s could not be applied", raw.get("id"))
            failures.append(f"{raw.get('id')}: {type(exc).__name__}")
            continue
        if result.outcome != events.DUPLICATE:
            found["events_applied"] += 1
            log.info(
                "reconciled stripe event %s (%s): %s", event["id"], event["type"], result.outcome
            )
    if not failures:
        return None
    return f"{len(failures)} events could not be applied (first: {failures[0]}); see the log"


def _pending(runtime: Runtime, gateway: Gateway, now: datetime) -> int:
    """Ask Stripe whose payment each waiting event is about; apply it to that job."""
    with read_session(runtime.sessions) as session:
        waiting = session.execute(
            select(StripeEvent.id, StripeEvent.payment_intent, StripeEvent.payload)
            .where(StripeEvent.outcome == events.PENDING)
            .order_by(StripeEvent.created_at)
            .limit(PENDING_PER_RUN)
        ).all()
    resolved = 0
    for event_id, intent, payload in waiting:
        job_id, refused = None, None
        try:
            if intent is None and isinstance(payload, dict):
                charge = events.read(payload).charge
                if charge is not None:
                    intent = events.stripe_id(gateway.charge(charge).get("payment_intent"))
            if intent is not None:
                job_id = events.job_of_metadata(gateway.payment_intent(intent))
        except NotFound as exc:  # no such payment on this account: not ours
            refused = str(exc)
        with write_session(runtime.sessions) as session:
            why = refused or "Stripe shows no EchoPilot job on its payment"
            if events.resolve_pending(session, event_id, job_id, now, why=why) is not None:
                resolved += 1
    return resolved


def _links(runtime: Runtime, gateway: Gateway, now: datetime) -> tuple[int, int]:
    """Ask again for the links still pending; how many were made and how many still wait."""
    waiting = links.pending(runtime, limit=LINKS_PER_RUN)
    made = 0
    for job_id in waiting:
        status = links.ensure(runtime, job_id, gateway=gateway, now=now)
        made += status is not None and status != "link_pending"
    return made, len(waiting) - made
