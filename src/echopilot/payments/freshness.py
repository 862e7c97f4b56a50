"""How current the payment figures are: when Stripe was last reconciled, and a line saying
so when that is too long ago (or never), for reports and the brief's freshness line."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from echopilot.clock import ensure_utc, iso
from echopilot.config import Settings
from echopilot.db.models import PaymentReconcile

# Reconciliation runs every 15 minutes: an hour without a good one is a gap.
STALE_AFTER = timedelta(hours=1)
OFF = "payments not reconciled: Stripe is not configured (STRIPE_SECRET_KEY)"


def state(conn: Connection, settings: Settings, now: datetime) -> dict[str, Any]:
    """`reconciled_at` (the last good run), `last_error` (of the latest run, if it failed)
    and `late`: None when current, else what is behind and why."""
    if not settings.payments_enabled:
        return {"configured": False, "reconciled_at": None, "last_error": None, "late": OFF}
    newest = (PaymentReconcile.started_at.desc(), PaymentReconcile.id.desc())
    good = conn.execute(
        select(PaymentReconcile.started_at)
        .where(PaymentReconcile.ok.is_(True), PaymentReconcile.started_at <= now)
        .order_by(*newest)
        .limit(1)
    ).scalar()
    last = conn.execute(
        select(PaymentReconcile.ok, PaymentReconcile.error)
        .where(PaymentReconcile.started_at <= now)
        .order_by(*newest)
        .limit(1)
    ).first()
    error = last.error if last is not None and not last.ok else None
    why = f" (last try: {error})" if error else ""
    late = None
    if good is None:
        late = "Stripe not reconciled yet" + why
    else:
        good = ensure_utc(good)
        # One failed run is no gap yet: the next, 15 minutes on, usually succeeds.
        if now - good > STALE_AFTER:
            late = f"Stripe not reconciled since {good:%Y-%m-%d %H:%M} UTC" + why
    return {"configured": True, "reconciled_at": iso(good), "last_error": error, "late": late}
