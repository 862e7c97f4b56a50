"""POST /webhook/stripe: an event is believed only when its signature is right and fresh.

The signature (Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body">) is checked over
the raw body with STRIPE_WEBHOOK_SECRET, by the `stripe` library, before the body is even
parsed; its timestamp must be within ECHOPILOT_STRIPE_WEBHOOK_TOLERANCE_SECONDS of the
clock (either way). Only then is the event recorded and applied, once by its id: a
replayed or redelivered event answers 200 and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import StripeEvent
from echopilot.errors import EchoPilotError
from echopilot.payments import events
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)
MAX_HEADER = 4096


class WebhookRefused(EchoPilotError):
    """The delivery is not believed or not usable: answered with `status`, nothing changed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def verify(runtime: Runtime, body: bytes, header: str | None, now: datetime) -> dict[str, Any]:
    """The event in `body` if its signature is valid and fresh; WebhookRefused otherwise."""
    settings = runtime.settings
    secret = settings.stripe_webhook_secret
    if secret is None:
        raise WebhookRefused(
            400, "not_configured", "Stripe webhooks are off: set STRIPE_WEBHOOK_SECRET"
        )
    if not header:
        raise WebhookRefused(400, "bad_signature", "the Stripe-Signature header is missing")
    if len(header) > MAX_HEADER or "\x00" in header:
        raise WebhookRefused(400, "bad_signature", "the Stripe-Signature header is malformed")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRefused(400, "bad_request", "the body is not UTF-8") from None
    try:
        # The time check is ours (below), against the one clock, in both directions.
        stripe.WebhookSignature.verify_header(text, header, secret.get_secret_value(), None)
    except stripe.SignatureVerificationError:
        raise WebhookRefused(
            400, "bad_signature", "the signature does not match this body and secret"
        ) from None
    signed_at = _timestamp(header)
    skew = abs(now.timestamp() - signed_at)
    if skew > settings.stripe_webhook_tolerance_seconds:
        raise WebhookRefused(
            400,
            "stale_signature",
            f"the signature's timestamp is {int(skew)} s from now, over the "
            f"{settings.stripe_webhook_tolerance_seconds} s tolerance "
            "(ECHOPILOT_STRIPE_WEBHOOK_TOLERANCE_SECONDS)",
        )
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WebhookRefused(400, "bad_request", f"the body is not JSON ({exc.msg})") from None
    try:
        return events.check(event)
    except events.BadEvent as exc:
        raise WebhookRefused(400, "bad_request", str(exc)) from None


def _timestamp(header: str) -> int:
    """The signed timestamp, read exactly as the stripe library reads it (the first item
    named `t`): the time checked is the time the signature was verified with."""
    items = [item.split("=", 2) for item in header.split(",")]
    stamps = [item[1] for item in items if item[0] == "t" and len(item) > 1]
    try:
        return int(stamps[0])
    except (IndexError, ValueError):
        raise WebhookRefused(
            400, "bad_signature", "the Stripe-Signature header has no timestamp"
        ) from None


def receive(
    runtime: Runtime, body: bytes, header: str | None, *, now: datetime | None = None
) -> dict[str, Any]:
    """Verify, record and apply one delivery; the answer says what it did."""
    now = now or utcnow()
    event = verify(runtime, body, header, now)
    result = apply_once(runtime, event, via="webhook", now=now)
    log.info(
        "stripe event %s (%s): %s%s",
        event["id"],
        event["type"],
        result.outcome,
        f" job {result.job_id}" if result.job_id else "",
    )
    return {"event": event["id"], "type": event["type"], **result.as_dict()}


def apply_once(runtime: Runtime, event: dict[str, Any], *, via: str, now: datetime) -> Any:
    """Apply an event in its own transaction. A concurrent twin that committed first makes
    this one fail on the event's id: that is a duplicate. Any other conflict is tried once
    more (the facts it raced for are then there to see)."""
    for attempt in (1, 2):
        try:
            with write_session(runtime.sessions) as session:
                result = events.apply(session, event, via=via, now=now)
            if result.outcome == events.PENDING:
                # Its payment may have been applied at the same moment in another
                # transaction, which could not see this event waiting: look again now.
                with write_session(runtime.sessions) as session:
                    result = events.settle_pending(session, event["id"], now) or result
            return result
        except IntegrityError:
            with read_session(runtime.sessions) as session:
                if session.get(StripeEvent, event["id"]) is not None:
                    return events.Applied(events.DUPLICATE)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
