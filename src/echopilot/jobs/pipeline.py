"""One attempt at one job: claim, model, QA judge, escalation, cost, price, finish.

The claim is a conditional change (queued -> processing, attempt + 1, a fresh lease
token); every later write that decides the job's fate is guarded by that token, so a
duplicate or stale message, or a worker that lost its lease, changes nothing. Model
spend is written as each call returns, unguarded: money spent is money spent, whoever
ends up finishing the job.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from echopilot.ai.base import AIError, Completion, ModelRequest
from echopilot.ai.registry import retry_policy, stage_models
from echopilot.ai.retry import with_retries
from echopilot.clock import as_utc, utcnow
from echopilot.db.engine import write_connection
from echopilot.db.models import Client, Job, JobAttempt
from echopilot.db.outage import log_failure
from echopilot.db.prepared import Prepared
from echopilot.jobs import costing, pricing
from echopilot.jobs.catalog import TaskSpec
from echopilot.jobs.qa import (
    QA_SYSTEM,
    InvalidScore,
    QAResult,
    effective_threshold,
    parse_score,
    qa_prompt,
)
from echopilot.jobs.status import Status, claim, transition
from echopilot.payments import links
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

QA_MAX_TOKENS = 300
QA_TRIES = 2  # a reply that is not a valid score is asked for once more
# Retry messages may be delivered a moment early by a queue on another clock.
CLOCK_TOLERANCE = timedelta(seconds=2)


# Statements of the hot path, built once (Core, with bound parameters, on one pooled
# connection per transaction): the ORM's per-object bookkeeping cost more than the SQL.
_jobs: Table = Job.__table__  # type: ignore[assignment]
_attempts: Table = JobAttempt.__table__  # type: ignore[assignment]
_JOB_STATE = Prepared(
    select(_jobs.c.status, _jobs.c.retry_at, _jobs.c.attempts, _jobs.c.max_attempts).where(
        _jobs.c.id == bindparam("v_id")
    )
)
_CLIENT_RATES = select(Client.rate_overrides).where(Client.id == bindparam("v_id"))
_NEW_ATTEMPT = Prepared(
    insert(_attempts).values(
        job_id=bindparam("v_job"),
        n=bindparam("v_n"),
        worker=bindparam("v_worker"),
        started_at=bindparam("v_started_at"),
        status="running",
        tokens_in=0,
        tokens_out=0,
        cost_micros=0,
        calls=[],
    )
)
_ADD_JOB_SPEND = Prepared(
    update(_jobs)
    .where(_jobs.c.id == bindparam("v_id"))
    .values(
        tokens_in=_jobs.c.tokens_in + bindparam("tin"),
        tokens_out=_jobs.c.tokens_out + bindparam("tout"),
        cost_micros=_jobs.c.cost_micros + bindparam("cost"),
    )
)
_ATTEMPT_SPEND = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("v_id"))
    .values(
        calls=bindparam("v_calls"),
        # The model of the newest call with spend to save; an attempt that ends after
        # its calls were all saved keeps the model it has.
        model=func.coalesce(bindparam("v_model"), _attempts.c.model),
        tokens_in=_attempts.c.tokens_in + bindparam("tin"),
        tokens_out=_attempts.c.tokens_out + bindparam("tout"),
        cost_micros=_attempts.c.cost_micros + bindparam("cost"),
    )
)
_ADD_ATTEMPT_SPEND = Prepared(_ATTEMPT_SPEND)
# The attempt's last spend and its end, in one statement.
_CLOSE_ATTEMPT = Prepared(
    _ATTEMPT_SPEND.values(
        status=bindparam("v_status"),
        finished_at=bindparam("v_finished_at"),
        latency_ms=bindparam("v_latency_ms"),
        error=bindparam("v_error"),
        error_kind=bindparam("v_error_kind"),
    )
)
_UNPRICED = select(_jobs.c.unpriced_models).where(_jobs.c.id == bindparam("v_id"))
_SET_UNPRICED = (
    update(_jobs).where(_jobs.c.id == bindparam("v_id")).values(unpriced_models=bindparam("v_m"))
)


# Adds an attempt's unsaved model spend to it and its job, on the connection given.
SpendSaver = Callable[[Connection], None]


class Leases(Protocol):
    """Keeps the leases of running jobs alive (the worker's renewal thread)."""

    def hold(self, token: str, job_id: int) -> None: ...

    def release(self, token: str) -> None: ...

    def unsettled(self, token: str, job_id: int, save_spend: SpendSaver) -> None:
        """The attempt ended but its end was not recorded: hand the job back when possible,
        saving the spend of its calls with `save_spend` in that transaction."""


class _NoLeases:
    # Without a keeper (no heartbeat), an unsettled job's lease expires and the sweep
    # recovers it.
    def hold(self, token: str, job_id: int) -> None:
        pass

    def release(self, token: str) -> None:
        pass

    def unsettled(self, token: str, job_id: int, save_spend: SpendSaver) -> None:
        pass


@dataclass
class Claim:
    job_id: int
    n: int
    max_attempts: int
    token: str
    attempt_id: int
    task_type: str
    instructions: str
    input_text: str
    priority: int
    threshold: int
    spec: TaskSpec
    client_overrides: dict[str, Any]
    job_started_at: datetime
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Answer:
    completion: Completion
    verdict: QAResult | None
    qa_problem: str | None  # why there is no verdict
    path: str  # primary | escalation
    escalation_error: str | None = None


def process(runtime: Runtime, job_id: int, *, leases: Leases | None = None) -> str | None:
    """Run one attempt at `job_id`; return the job's new status, or None when the job was
    not claimable (already taken, finished, cancelled or unknown)."""
    claim = claim_job(runtime, job_id)
    if claim is None:
        return None
    keeper = leases or _NoLeases()
    keeper.hold(claim.token, job_id)
    attempt = _Attempt(runtime, claim)
    try:
        status = _run(attempt)
    except Exception:
        # Not even the failure could be recorded (the database went away): the job is
        # still `processing` under this live worker, which alone can give it back.
        keeper.unsettled(claim.token, job_id, attempt.save_spend)
        raise
    keeper.release(claim.token)
    return status


def claim_job(runtime: Runtime, job_id: int, now: datetime | None = None) -> Claim | None:
    """Claim `job_id` for one attempt: queued (or failed with its retry due) -> processing,
    attempt + 1, a fresh lease token; None when it is not claimable."""
    settings = runtime.settings
    with write_connection(runtime.engine) as conn:
        # After the wait for the database: a lease counted from before it could be short.
        now = now or utcnow()
        if runtime.budget.hold_reason(conn, job_id, now) is not None:
            return None  # a spending limit is used up: the job waits, marked with why
        token = uuid.uuid4().hex
        row = claim(
            conn,
            job_id,
            token=token,
            owner=runtime.identity,
            now=now,
            lease_until=now + timedelta(seconds=settings.lease_seconds),
            due=now + CLOCK_TOLERANCE,
            reason=f"claimed by {runtime.identity}",
        )
        if row is None:
            _end_if_exhausted(conn, job_id, now)
            return None
        n, max_attempts, task_type, text, priority, qa_target, client_id, started = row
        spec = runtime.catalog.spec(conn, task_type)
        if spec is None:  # a task type without a price rule: a set-up fault, not a retry
            why = f"task type {task_type!r} has no price rule"
            transition(
                conn,
                job_id,
                Status.PROCESSING,
                Status.DEAD,
                reason=why,
                now=now,
                attempt=n,
                finished_at=now,
                error=why,
                error_kind="permanent",
                lease_token=None,
                lease_until=None,
            )
            return None
        attempt_id = _NEW_ATTEMPT.insert(
            conn, {"v_job": job_id, "v_n": n, "v_worker": runtime.identity, "v_started_at": now}
        )
        overrides: dict[str, Any] = {}
        if client_id is not None:
            overrides = conn.execute(_CLIENT_RATES, {"v_id": client_id}).scalar() or {}
        started_at = as_utc(started) or now
        return Claim(
            job_id=job_id,
            n=n,
            max_attempts=max_attempts,
            token=token,
            attempt_id=attempt_id,
            task_type=task_type,
            instructions=spec.instructions,
            input_text=text,
            priority=priority,
            threshold=effective_threshold(qa_target, spec.qa_threshold, settings.qa_threshold),
            spec=spec,
            client_overrides=overrides,
            job_started_at=started_at,
        )


def _end_if_exhausted(conn: Connection, job_id: int, now: datetime) -> None:
    """A runnable job that was not claimed because its attempts are used up ends dead."""
    row = _JOB_STATE.execute(conn, {"v_id": job_id}).fetchone()
    if row is None:
        return
    status, retry_at, attempts, max_attempts = row
    if attempts >= max_attempts and _runnable(status, as_utc(retry_at), now):
        why = "no attempts left (limit ECHOPILOT_MAX_ATTEMPTS)"
        transition(
            conn,
            job_id,
            Status(status),
            Status.DEAD,
            reason=why,
            now=now,
            attempt=attempts,
            finished_at=now,
            error=why,
            error_kind="permanent",
        )


def _runnable(status: str, retry_at: datetime | None, now: datetime) -> bool:
    if status == Status.QUEUED:
        return True
    if status == Status.FAILED:
        return retry_at is None or retry_at <= now + CLOCK_TOLERANCE
    return False


class _Attempt:
    """Makes the model calls of one attempt and records what each one spent.

    A call's spend is written before the next call goes out, and the last one's in the
    transaction that ends the attempt: one write per call, never more, and a worker that
    dies mid-call loses at most the spend of the call in flight.
    """

    def __init__(self, runtime: Runtime, claim: Claim) -> None:
        self.runtime = runtime
        self.claim = claim
        self.calls: list[dict[str, Any]] = []
        self._unsaved: list[tuple[dict[str, Any], Completion]] = []
        self.policy = retry_policy(runtime.settings)

    def call(self, purpose: str, model: str, prompt: str, system: str, **extra: Any) -> Completion:
        if self._unsaved:
            with write_connection(self.runtime.engine) as conn:
                self.save_spend(conn)
            self.spend_saved()
        request = ModelRequest(
            purpose="qa" if purpose == "qa" else "task",
            model=model,
            system=system,
            prompt=prompt,
            max_tokens=QA_MAX_TOKENS
            if purpose == "qa"
            else self.runtime.settings.max_output_tokens,
            task_type=self.claim.task_type,
            input_text=self.claim.input_text,
            **extra,
        )
        provider = self.runtime.provider
        completion = with_retries(
            lambda: provider.complete(request),
            self.policy,
            on_retry=lambda err, wait: log.info(
                "job %s: %s call failed (%s), retrying in %.1fs",
                self.claim.job_id,
                purpose,
                err,
                wait,
            ),
        )
        cost = None
        if completion.usage_reported:
            cost = costing.call_cost_micros(
                completion.model,
                completion.tokens_in,
                completion.tokens_out,
                self.runtime.settings.price_overrides,
            )
        entry = {
            "stage": purpose,
            "model": completion.model,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "cost_micros": cost,
            "latency_ms": completion.latency_ms,
        }
        self.calls.append(entry)
        self._unsaved.append((entry, completion))
        return completion

    def unsaved_spend(self) -> dict[str, int]:
        """Tokens and cost of the calls not saved yet, as the counters to add."""
        return {
            "tokens_in": sum(c.tokens_in for _, c in self._unsaved),
            "tokens_out": sum(c.tokens_out for _, c in self._unsaved),
            "cost_micros": sum(e["cost_micros"] or 0 for e, _ in self._unsaved),
        }

    def save_spend(self, conn: Connection) -> None:
        """Add the unsaved calls' tokens and cost to the attempt and the job: unguarded,
        money spent is spent, whoever finishes the job."""
        if not self._unsaved:
            return
        spend = self.unsaved_spend()
        params = {
            "tin": spend["tokens_in"],
            "tout": spend["tokens_out"],
            "cost": spend["cost_micros"],
        }
        _ADD_ATTEMPT_SPEND.execute(
            conn,
            {
                **params,
                "v_id": self.claim.attempt_id,
                "v_calls": self.calls,
                "v_model": self.unsaved_model,
            },
        )
        _ADD_JOB_SPEND.execute(conn, {**params, "v_id": self.claim.job_id})
        self.save_unpriced(conn)

    def save_unpriced(self, conn: Connection) -> None:
        """Name the unsaved calls' models that have no known price on the job."""
        unpriced = {e["model"] for e, _ in self._unsaved if e["cost_micros"] is None}
        if unpriced:
            known = conn.execute(_UNPRICED, {"v_id": self.claim.job_id}).scalar() or []
            conn.execute(
                _SET_UNPRICED, {"v_id": self.claim.job_id, "v_m": sorted(set(known) | unpriced)}
            )

    @property
    def unsaved_model(self) -> str | None:
        """The model of the newest call whose spend is not saved yet."""
        return self._unsaved[-1][1].model if self._unsaved else None

    def spend_saved(self) -> None:
        """Call once the transaction that saved the spend has committed."""
        self._unsaved = []


def _run(attempt: _Attempt) -> str | None:
    runtime, claim = attempt.runtime, attempt.claim
    task_model, qa_model, escalation_model = stage_models(runtime.settings)
    try:
        best = _answer(attempt, task_model, qa_model, "primary")
        if not _passes(best, claim.threshold) and escalation_model:
            try:
                second = _answer(attempt, escalation_model, qa_model, "escalation")
            except AIError as error:
                # The primary answer stands; the escalation's failure is noted on the job.
                best = replace(best, escalation_error=str(error))
            else:
                if _better(second, best):
                    best = second
        return _finish(attempt, best)
    except AIError as error:
        return _fail(attempt, str(error), error.kind, permanent=error.permanent)
    except Exception as error:  # a bug must not kill the worker or lose the job
        log_failure(log, "job %s: attempt %s crashed", claim.job_id, claim.n)
        return _fail(attempt, internal_reason(error), "internal", permanent=False)


def _answer(attempt: _Attempt, model: str, qa_model: str, path: str) -> Answer:
    claim = attempt.claim
    prompt = f"{claim.instructions}\n\n{claim.input_text}"
    completion = attempt.call(
        "task" if path == "primary" else "escalation", model, prompt, system=claim.instructions
    )
    problem = "the model returned an empty answer"
    if completion.truncated:
        # A cut-off answer is never billed as finished work, however well it scores.
        return Answer(
            completion,
            None,
            "the answer was cut off at the output limit (ECHOPILOT_MAX_OUTPUT_TOKENS)",
            path,
        )
    if completion.text.strip():
        for _ in range(QA_TRIES):
            reply = attempt.call(
                "qa",
                qa_model,
                qa_prompt(claim.instructions, claim.input_text, completion.text),
                system=QA_SYSTEM,
                answer_text=completion.text,
            )
            try:
                return Answer(completion, parse_score(reply.text), None, path)
            except InvalidScore as exc:
                problem = f"QA judge gave no valid score: {exc}"
    return Answer(completion, None, problem, path)


def internal_reason(error: Exception) -> str:
    """A short reason for an unexpected error, fit for the job's `error`: a database error's
    text carries the SQL statement (and can carry job data), which stays in the log."""
    if isinstance(error, DBAPIError):
        kind = type(error.orig or error).__name__
        return f"internal error: database error ({kind}); details in the worker log"
    return f"internal error ({type(error).__name__}); details in the worker log"


def _passes(answer: Answer, threshold: int) -> bool:
    return answer.verdict is not None and answer.verdict.score >= threshold


def _better(candidate: Answer, incumbent: Answer) -> bool:
    if candidate.verdict is None:
        return False
    return incumbent.verdict is None or candidate.verdict.score >= incumbent.verdict.score


def _finish(attempt: _Attempt, answer: Answer) -> str | None:
    runtime, claim = attempt.runtime, attempt.claim
    now = utcnow()
    passed = _passes(answer, claim.threshold)
    target = Status.DONE if passed else Status.NEEDS_REVIEW
    verdict = answer.verdict
    if passed:
        reason = f"QA {verdict.score if verdict else '-'} >= {claim.threshold}"
    elif verdict is not None:
        reason = f"QA {verdict.score} below threshold {claim.threshold}"
    else:
        reason = answer.qa_problem or "no QA verdict"
    if answer.escalation_error:
        reason += f"; escalation failed: {answer.escalation_error}"
    tokens = answer.completion.tokens_in + answer.completion.tokens_out
    spec = claim.spec
    price = pricing.price_cents(
        unit=spec.unit,
        rate_micros=spec.rate_micros,
        min_cents=spec.min_cents,
        max_cents=spec.max_cents,
        tokens=tokens,
        input_text=claim.input_text,
        client_overrides=claim.client_overrides,
        task_type=claim.task_type,
    )
    with write_connection(runtime.engine) as conn:
        finished = _end(
            conn,
            attempt,
            target,
            reason=reason,
            now=now,
            result=answer.completion.text,
            qa_score=verdict.score if verdict else None,
            qa_breakdown=verdict.breakdown if verdict else None,
            qa_threshold=claim.threshold,
            qa_note=f"{reason}; judge: {verdict.reason}" if verdict and verdict.reason else reason,
            provider=runtime.provider.name,
            model=answer.completion.model,
            answer_path=answer.path,
            price_cents=price,
            # Only a job that passed QA is billed (one awaiting review is billed on approval),
            # and never one the offline provider made.
            payment_status=pricing.billing_status(
                runtime.provider.name,
                billed=passed,
                price_cents=price,
                stripe_on=runtime.settings.payments_enabled,
            ),
            error=None,
            error_kind=None,
            finished_at=now,
            duration_ms=int((now - claim.job_started_at).total_seconds() * 1000),
        )
        _close_attempt(
            conn, attempt, "ok" if passed else "needs_review", now, discarded=not finished
        )
    attempt.spend_saved()
    if finished and passed:
        links.after_billing(runtime, claim.job_id)
    return target.value if finished else None


def _end(
    conn: Connection,
    attempt: _Attempt,
    target: Status,
    *,
    reason: str,
    now: datetime,
    **values: Any,
) -> bool:
    """The guarded transition that ends an attempt, with the calls' unsaved spend added to
    the job in the same statement; when the lease was lost the spend is added anyway."""
    claim = attempt.claim
    spend = attempt.unsaved_spend()
    ended = transition(
        conn,
        claim.job_id,
        Status.PROCESSING,
        target,
        reason=reason,
        now=now,
        attempt=claim.n,
        holder=claim.token,
        add=spend,
        lease_token=None,
        lease_until=None,
        **values,
    )
    if not ended and any(spend.values()):  # money spent is spent, whoever finishes the job
        _ADD_JOB_SPEND.execute(
            conn,
            {
                "v_id": claim.job_id,
                "tin": spend["tokens_in"],
                "tout": spend["tokens_out"],
                "cost": spend["cost_micros"],
            },
        )
    attempt.save_unpriced(conn)
    return ended


def _fail(attempt: _Attempt, message: str, kind: str, *, permanent: bool) -> str | None:
    runtime, claim = attempt.runtime, attempt.claim
    now = utcnow()
    settings = runtime.settings
    exhausted = claim.n >= claim.max_attempts
    retry_at = None
    if permanent or exhausted:
        target = Status.DEAD
        why = (
            "permanent error"
            if permanent
            else f"retries exhausted after {claim.n} attempts (limit ECHOPILOT_MAX_ATTEMPTS)"
        )
        reason = f"{why}: {message}"
    else:
        target = Status.FAILED
        delay = settings.retry_delay_seconds * 2 ** (claim.n - 1)
        retry_at = now + timedelta(seconds=random.uniform(delay * 0.8, delay * 1.2))
        reason = f"attempt {claim.n} failed ({kind}), retry at {retry_at:%H:%M:%S}: {message}"
    with write_connection(runtime.engine) as conn:
        ended = _end(
            conn,
            attempt,
            target,
            reason=reason,
            now=now,
            error=(reason if target == Status.DEAD else message)[:2000],
            error_kind="permanent" if permanent else "transient",
            retry_at=retry_at,
            finished_at=now if target == Status.DEAD else None,
        )
        _close_attempt(
            conn, attempt, "failed", now, discarded=not ended, error=message, error_kind=kind
        )
    attempt.spend_saved()
    if ended and retry_at is not None:
        try:
            runtime.queue.enqueue(claim.job_id, priority=claim.priority, eta=retry_at)
        except Exception:
            log.warning(
                "job %s: could not schedule its retry; the sweep will", claim.job_id, exc_info=True
            )
    return target.value if ended else None


def _close_attempt(
    conn: Connection,
    attempt: _Attempt,
    status: str,
    now: datetime,
    *,
    discarded: bool,
    error: str | None = None,
    error_kind: str | None = None,
) -> None:
    """The attempt's last spend and its end, in one statement."""
    claim = attempt.claim
    if discarded:
        error = "result discarded: the job was cancelled or its lease passed to another worker"
    spend = attempt.unsaved_spend()
    _CLOSE_ATTEMPT.execute(
        conn,
        {
            "v_id": claim.attempt_id,
            "v_calls": attempt.calls,
            "v_model": attempt.unsaved_model,
            "tin": spend["tokens_in"],
            "tout": spend["tokens_out"],
            "cost": spend["cost_micros"],
            "v_status": "discarded" if discarded else status,
            "v_finished_at": now,
            "v_latency_ms": int((time.monotonic() - claim.started) * 1000),
            "v_error": error[:2000] if error else None,
            "v_error_kind": error_kind,
        },
    )
