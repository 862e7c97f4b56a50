"""The calls EchoPilot makes to Stripe, through the official `stripe` library.

Every answer comes back as plain dicts (what the webhook receives too), and every failure as
one of two errors: `Unreachable` (Stripe could not be asked or answered with a server
error or rate limit: try again later) and `Refused` (Stripe said no: a bad key, a bad
request; trying again will not help until someone fixes it). Neither carries the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import stripe

from echopilot.config import Settings

# Events EchoPilot acts on; reconciliation asks Stripe for these only.
HANDLED_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
PAGE = 100


class Unreachable(Exception):
    """Stripe did not answer usefully (network, timeout, 5xx, 429): try again later."""


class Refused(Exception):
    """Stripe refused the request (key, permissions, parameters): a person must act."""


class NotFound(Refused):
    """Stripe has no such object on this account."""


# The library's connection errors end with the cause in parentheses; within it, the
# operating system's reason or the timeout is what a person needs.
_NETWORK_CAUSE = re.compile(r"\(Network error: (.*)\)\s*$")
_OS_REASON = re.compile(r"\[Errno -?\d+\][^'\")\]]*|(?:Read|Connect|Connection) timed out")
_URL = re.compile(r" with url: \S+")


def _network_cause(message: str) -> str:
    found = _NETWORK_CAUSE.search(message)
    detail = found.group(1) if found else message
    reason = _OS_REASON.search(detail)
    if reason:
        return reason.group(0).strip().rstrip(".")
    return _URL.sub("", detail)[:200]


def _explain(exc: stripe.StripeError) -> Exception:
    status = getattr(exc, "http_status", None)
    # The library's messages name no key; one line, bounded.
    message = " ".join(str(getattr(exc, "user_message", None) or exc or "").split())
    message = message or type(exc).__name__
    if isinstance(exc, stripe.APIConnectionError):
        return Unreachable(f"Stripe unreachable: could not connect ({_network_cause(message)})")
    message = message[:300]
    if isinstance(exc, stripe.IdempotencyError) or status == 409:
        # Another request with this key is still being answered: ask again later.
        return Unreachable(f"Stripe is busy with the same request: {message}")
    if isinstance(exc, stripe.RateLimitError) or (status is not None and status >= 500):
        return Unreachable(f"Stripe unreachable: {status or 'no status'} {message}")
    if isinstance(exc, stripe.AuthenticationError):
        return Refused("Stripe refused the key (STRIPE_SECRET_KEY): " + message)
    if isinstance(exc, stripe.PermissionError):
        return Refused("the Stripe key (STRIPE_SECRET_KEY) lacks a permission: " + message)
    if status == 404 or getattr(exc, "code", None) == "resource_missing":
        return NotFound(f"Stripe has no such object: {message}")
    return Refused(f"Stripe refused the request ({status or 'no status'}): {message}")


class Gateway:
    """A Stripe client built from the settings."""

    def __init__(self, settings: Settings) -> None:
        if settings.stripe_secret_key is None:
            raise Refused("payments are off: set STRIPE_SECRET_KEY")
        options: dict[str, Any] = {
            # Retries are ours (the reconcile task), with the idempotency key.
            "max_network_retries": 0,
            "http_client": stripe.RequestsClient(timeout=settings.stripe_timeout_seconds),
        }
        if settings.stripe_api_base:
            options["base_addresses"] = {"api": settings.stripe_api_base.rstrip("/")}
        self._client = stripe.StripeClient(settings.stripe_secret_key.get_secret_value(), **options)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            found = fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _explain(exc) from None
        return dict(found.to_dict())

    def create_link(
        self, *, job_id: int, name: str, cents: int, currency: str, idempotency_key: str
    ) -> dict[str, Any]:
        """A payment link for one job, payable once, tagged with the job's id."""
        metadata = {"job_id": str(job_id), "source": "echopilot"}
        params: Any = {
            "line_items": [
                {
                    "price_data": {
                        "currency": currency,
                        "unit_amount": cents,
                        "product_data": {"name": f"Job {job_id}: {name}"[:250]},
                    },
                    "quantity": 1,
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "restrictions": {"completed_sessions": {"limit": 1}},
        }
        return self._call(
            self._client.v1.payment_links.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )

    def deactivate_link(self, link_id: str) -> dict[str, Any]:
        """Make a link unpayable (the job was paid another way)."""
        params: Any = {"active": False}
        return self._call(self._client.v1.payment_links.update, link_id, params=params)

    def events_since(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Every handled event created at or after `since`, all pages, newest first."""
        params: Any = {
            "created": {"gte": int(since.timestamp())},
            "limit": PAGE,
            "types": list(HANDLED_TYPES),
        }
        try:
            page = self._client.v1.events.list(params=params)
            for event in page.auto_paging_iter():
                yield dict(event.to_dict())
        except stripe.StripeError as exc:
            raise _explain(exc) from None

    def probe(self) -> None:
        """Read one event and one payment link: the key works and may do what EchoPilot asks
        of it (a restricted key lacking either permission is refused here)."""
        params: Any = {"limit": 1}
        self._call(self._client.v1.events.list, params=params)
        self._call(self._client.v1.payment_links.list, params=params)

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        return self._call(self._client.v1.payment_intents.retrieve, intent_id)

    def charge(self, charge_id: str) -> dict[str, Any]:
        return self._call(self._client.v1.charges.retrieve, charge_id)
