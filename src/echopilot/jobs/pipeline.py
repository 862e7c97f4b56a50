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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from echopilot.ai.base import AIError, Completion, ModelRequest
from echopilot.ai.registry import retry_policy, stage_models
from echopilot.ai.retry import with_retries
from echopilot.clock import utcnow
from echopilot.db.engine import write_session
from echopilot.db.models import Client, Job, JobAttempt, PriceRule, TaskType
from echopilot.jobs import costing, pricing
from echopilot.jobs.qa import (
    QA_SYSTEM,
    InvalidScore,
    QAResult,
    effective_threshold,
    parse_score,
    qa_prompt,
)
from echopilot.jobs.status import Status, change, lock_job
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

QA_MAX_TOKENS = 300
QA_TRIES = 2  # a reply that is not a valid score is asked for once more
# Retry messages may be delivered a moment early by a queue on another clock.
CLOCK_TOLERANCE = timedelta(seconds=2)


# Statements of the hot path, built once (Core, with bound parameters): building ORM
# update expressions per call cost more than running them.
_jobs: Table = Job.__table__  # type: ignore[assignment]
_attempts: Table = JobAttempt.__table__  # type: ignore[assignment]
_ADD_JOB_SPEND = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("v_id"))
    .values(
        tokens_in=_jobs.c.tokens_in + bindparam("tin"),
        tokens_out=_jobs.c.tokens_out + bindparam("tout"),
        cost_micros=_jobs.c.cost_micros + bindparam("cost"),
    )
)
_ADD_ATTEMPT_SPEND = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("v_id"))
    .values(
        calls=bindparam("v_calls"),
        model=bindparam("v_model"),
        tokens_in=_attempts.c.tokens_in + bindparam("tin"),
        tokens_out=_attempts.c.tokens_out + bindparam("tout"),
        cost_micros=_attempts.c.cost_micros + bindparam("cost"),
    )
)
_CLOSE_ATTEMPT = (
    update(_attempts)
    .where(_attempts.c.id == bindparam("v_id"))
    .values(
        status=bindparam("v_status"),
        finished_at=bindparam("v_finished_at"),
        latency_ms=bindparam("v_latency_ms"),
        error=bindparam("v_error"),
        error_kind=bindparam("v_error_kind"),
    )
)


class Leases(Protocol):
    """Keeps the leases of running jobs alive (the worker's renewal thread)."""

    def hold(self, token: str, job_id: int) -> None: ...

    def release(self, token: str) -> None: ...


class _NoLeases:
    def hold(self, token: str, job_id: int) -> None:
        pass

    def release(self, token: str) -> None:
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
    rule: PriceRule
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
    try:
        return _run(runtime, claim)
    finally:
        keeper.release(claim.token)


def claim_job(runtime: Runtime, job_id: int, now: datetime | None = None) -> Claim | None:
    settings = runtime.settings
    with write_session(runtime.sessions) as session:
        job = lock_job(session, job_id)
        # After the wait for the row: a lease counted from before it could be short already.
        now = now or utcnow()
        if job is None or not _runnable(job, now):
            return None
        if job.attempts >= job.max_attempts:
            change(session, job, Status.DEAD, reason="no attempts left", now=now, finished_at=now)
            return None
        token = uuid.uuid4().hex
        n = job.attempts + 1
        change(
            session,
            job,
            Status.PROCESSING,
            reason=f"claimed by {runtime.identity}",
            now=now,
            attempts=n,
            lease_token=token,
            lease_owner=runtime.identity,
            lease_until=now + timedelta(seconds=settings.lease_seconds),
            started_at=job.started_at or now,
            retry_at=None,
        )
        attempt = JobAttempt(job_id=job.id, n=n, worker=runtime.identity, started_at=now)
        session.add(attempt)
        task_type, rule = session.execute(
            select(TaskType, PriceRule)
            .join(PriceRule, PriceRule.task_type == TaskType.name)
            .where(TaskType.name == job.task_type)
        ).one()
        overrides: dict[str, Any] = {}
        if job.client_id is not None:
            overrides = (
                session.scalar(select(Client.rate_overrides).where(Client.id == job.client_id))
                or {}
            )
        session.flush()
        return Claim(
            job_id=job.id,
            n=n,
            max_attempts=job.max_attempts,
            token=token,
            attempt_id=attempt.id,
            task_type=job.task_type,
            instructions=task_type.instructions,
            input_text=job.input,
            priority=job.priority,
            threshold=effective_threshold(
                job.qa_target, task_type.qa_threshold, settings.qa_threshold
            ),
            rule=rule,
            client_overrides=overrides,
            job_started_at=job.started_at or now,
        )


def _runnable(job: Job, now: datetime) -> bool:
    if job.status == Status.QUEUED:
        return True
    if job.status == Status.FAILED:
        return job.retry_at is None or job.retry_at <= now + CLOCK_TOLERANCE
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
            with write_session(self.runtime.sessions) as session:
                self.save_spend(session)
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

    def save_spend(self, session: Session) -> None:
        """Add the unsaved calls' tokens and cost to the attempt and the job (unguarded:
        money spent is spent, whoever finishes the job)."""
        if not self._unsaved:
            return
        tokens_in = sum(c.tokens_in for _, c in self._unsaved)
        tokens_out = sum(c.tokens_out for _, c in self._unsaved)
        cost = sum(e["cost_micros"] or 0 for e, _ in self._unsaved)
        unpriced = {e["model"] for e, _ in self._unsaved if e["cost_micros"] is None}
        model = self._unsaved[-1][1].model
        spend = {"tin": tokens_in, "tout": tokens_out, "cost": cost}
        conn = session.connection()
        conn.execute(
            _ADD_ATTEMPT_SPEND,
            {**spend, "v_id": self.claim.attempt_id, "v_calls": list(self.calls), "v_model": model},
        )
        conn.execute(_ADD_JOB_SPEND, {**spend, "v_id": self.claim.job_id})
        if unpriced:
            job = session.get(Job, self.claim.job_id)
            assert job is not None
            job.unpriced_models = sorted(set(job.unpriced_models) | unpriced)

    def spend_saved(self) -> None:
        """Call once the transaction that saved the spend has committed."""
        self._unsaved = []


def _run(runtime: Runtime, claim: Claim) -> str | None:
    attempt = _Attempt(runtime, claim)
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
        log.exception("job %s: attempt %s crashed", claim.job_id, claim.n)
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
    rule = claim.rule
    price = pricing.price_cents(
        unit=rule.unit,
        rate_micros=rule.rate_micros,
        min_cents=rule.min_cents,
        max_cents=rule.max_cents,
        tokens=tokens,
        input_text=claim.input_text,
        client_overrides=claim.client_overrides,
        task_type=claim.task_type,
    )
    with write_session(runtime.sessions) as session:
        attempt.save_spend(session)
        job = change(
            session,
            claim.job_id,
            target,
            reason=reason,
            now=now,
            guard=lambda j: j.lease_token == claim.token,
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
            payment_status=pricing.billing_status(runtime.provider.name, billed=passed),
            error=None,
            error_kind=None,
            finished_at=now,
            duration_ms=int((now - claim.job_started_at).total_seconds() * 1000),
            lease_token=None,
            lease_until=None,
        )
        _close_attempt(
            session, claim, "ok" if passed else "needs_review", now, discarded=job is None
        )
    attempt.spend_saved()
    return target.value if job is not None else None


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
    with write_session(runtime.sessions) as session:
        attempt.save_spend(session)
        job = change(
            session,
            claim.job_id,
            target,
            reason=reason,
            now=now,
            guard=lambda j: j.lease_token == claim.token,
            error=(reason if target == Status.DEAD else message)[:2000],
            error_kind="permanent" if permanent else "transient",
            retry_at=retry_at,
            lease_token=None,
            lease_until=None,
            finished_at=now if target == Status.DEAD else None,
        )
        _close_attempt(
            session, claim, "failed", now, discarded=job is None, error=message, error_kind=kind
        )
    attempt.spend_saved()
    if job is not None and retry_at is not None:
        try:
            runtime.queue.enqueue(claim.job_id, priority=claim.priority, eta=retry_at)
        except Exception:
            log.warning(
                "job %s: could not schedule its retry; the sweep will", claim.job_id, exc_info=True
            )
    return target.value if job is not None else None


def _close_attempt(
    session: Session,
    claim: Claim,
    status: str,
    now: datetime,
    *,
    discarded: bool,
    error: str | None = None,
    error_kind: str | None = None,
) -> None:
    if discarded:
        error = "result discarded: the job was cancelled or its lease passed to another worker"
    session.connection().execute(
        _CLOSE_ATTEMPT,
        {
            "v_id": claim.attempt_id,
            "v_status": "discarded" if discarded else status,
            "v_finished_at": now,
            "v_latency_ms": int((time.monotonic() - claim.started) * 1000),
            "v_error": error[:2000] if error else None,
            "v_error_kind": error_kind,
        },
    )
