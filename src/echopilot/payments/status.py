"""A job's payment status, and how it follows from what is known of its money.

The status is derived, never stepped: from the ledger's sums, the job's disputes and its
link, whatever order the facts arrived in. So a refund reported before its payment, or a
dispute after a refund, ends where the facts say, and applying a fact twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

NA = "na"  # not billed: awaiting review, rejected, or made by the offline provider
NOT_CONFIGURED = "not_configured"  # billed; no Stripe key, so no link (mark-paid by hand)
LINK_PENDING = "link_pending"  # billed; the Stripe link is not made yet (retried)
UNPAID = "unpaid"  # billed; the link is out, no payment yet
PAYMENT_FAILED = "payment_failed"  # billed; the last attempt to pay failed
PAID = "paid"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
DISPUTED = "disputed"  # a dispute is open: its amount is held by Stripe
DISPUTE_LOST = "dispute_lost"

ALL = (
    NA,
    NOT_CONFIGURED,
    LINK_PENDING,
    UNPAID,
    PAYMENT_FAILED,
    PAID,
    PARTIALLY_REFUNDED,
    REFUNDED,
    DISPUTED,
    DISPUTE_LOST,
)
# A billed job in one of these owes its price.
OWED = (NOT_CONFIGURED, LINK_PENDING, UNPAID, PAYMENT_FAILED)
# Money came in (what happened to it after is another matter): nothing is owed.
SETTLED = (PAID, PARTIALLY_REFUNDED, REFUNDED, DISPUTED, DISPUTE_LOST)
# Stripe's statuses of a dispute that is over.
DISPUTE_CLOSED = ("won", "lost", "warning_closed")


@dataclass(frozen=True)
class Facts:
    """What is known of one billed job's money."""

    received_cents: int  # payments in
    refunded_cents: int  # refunds out
    disputes: tuple[str, ...]  # each dispute's Stripe status
    has_link: bool
    last_failed: bool  # the latest attempt to pay failed (and none succeeded since)
    stripe_on: bool


def initial(*, billed: bool, stripe_on: bool) -> str:
    """The status a job starts with when it ends: not billed, or owed with a link to make."""
    if not billed:
        return NA
    return LINK_PENDING if stripe_on else NOT_CONFIGURED


def derive(f: Facts) -> str:
    """The status the facts of a billed job add up to."""
    if "lost" in f.disputes:
        return DISPUTE_LOST
    if any(d not in DISPUTE_CLOSED for d in f.disputes):
        return DISPUTED
    if f.received_cents > 0:
        if f.refunded_cents >= f.received_cents:
            return REFUNDED
        return PARTIALLY_REFUNDED if f.refunded_cents > 0 else PAID
    if f.last_failed:
        return PAYMENT_FAILED
    if f.has_link:
        return UNPAID
    return LINK_PENDING if f.stripe_on else NOT_CONFIGURED
