"""Demo history: 30 days of a small AI-services business, for every later feature to show.

The history has several clients and task types, a few jobs that died, a dip in quality
about ten days ago, and a tail of recent jobs that are not paid yet. Every row is marked
(`is_demo`, source "demo", provider "demo") and `reset` removes exactly those rows.
Costs use real model prices (genai-prices) on simulated token counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from echopilot import audit
from echopilot.clock import utcnow
from echopilot.db.engine import write_session
from echopilot.db.migrate import refresh_statistics
from echopilot.db.models import Client, Job, JobAttempt, JobEvent, Payment, PriceRule
from echopilot.jobs import costing, pricing
from echopilot.runtime import Runtime

DEMO_MODEL, DEMO_QA_MODEL = "gpt-4o", "gpt-4o-mini"
CLIENTS = [
    ("Northwind Traders", "ops@northwind.example", 40),
    ("Acme Research", "research@acme.example", 36),
    ("Globex Media", "content@globex.example", 30),
    ("Initech Legal", "paralegal@initech.example", 24),
    ("Umbrella Health", "comms@umbrella.example", 18),
    ("Hooli Labs", "data@hooli.example", 12),
]
# task type: (share of jobs, typical input words)
MIX = {
    "summary": (0.28, 900),
    "drafting": (0.22, 300),
    "research": (0.18, 1500),
    "data_transform": (0.14, 700),
    "transcription": (0.12, 2400),
    "other": (0.06, 400),
}
DIP_DAYS = range(9, 13)  # days ago with poor quality
UNPAID_TAIL_DAYS = 5
BATCH = 2000


@dataclass(frozen=True)
class SeedResult:
    clients: int
    jobs: int
    attempts: int
    days: int

    def as_dict(self) -> dict[str, int]:
        return {
            "clients": self.clients,
            "jobs": self.jobs,
            "attempts": self.attempts,
            "days": self.days,
        }


def reset(runtime: Runtime, *, actor: str = "cli") -> dict[str, int]:
    """Delete every demo row; return how many of each were removed."""
    with write_session(runtime.sessions) as session:
        counts = _delete_demo_rows(session)
        audit.record(session, actor=actor, action="demo.reset", details=counts)
    return counts


def _delete_demo_rows(session: Session) -> dict[str, int]:
    demo_jobs = select(Job.id).where(Job.is_demo)
    in_use = select(Job.client_id).where(Job.client_id.is_not(None))
    statements = {
        "events": delete(JobEvent).where(JobEvent.job_id.in_(demo_jobs)),
        "payments": delete(Payment).where(Payment.job_id.in_(demo_jobs)),
        "attempts": delete(JobAttempt).where(JobAttempt.job_id.in_(demo_jobs)),
        "jobs": delete(Job).where(Job.is_demo),
        "clients": delete(Client).where(Client.is_demo, Client.id.not_in(in_use)),
    }
    return {name: _rowcount(session.execute(stmt)) for name, stmt in statements.items()}


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def seed(
    runtime: Runtime,
    *,
    days: int = 30,
    jobs_per_day: int = 20,
    random_seed: int = 7,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    actor: str = "cli",
) -> SeedResult:
    """Replace any earlier demo rows with `days` days of history ending at `now`."""
    if not 1 <= days <= 365:
        raise ValueError("days must be between 1 and 365")
    if not 1 <= jobs_per_day <= 20_000:
        raise ValueError("jobs_per_day must be between 1 and 20000")
    now = now or utcnow()
    rng = random.Random(random_seed)
    overrides = runtime.settings.price_overrides
    total_jobs = total_attempts = 0
    with write_session(runtime.sessions) as session:
        _delete_demo_rows(session)
        rules = {r.task_type: r for r in session.scalars(select(PriceRule))}
        clients = _seed_clients(session, now, days)
    for day_index in range(days, 0, -1):
        day_start = (now - timedelta(days=day_index)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        count = max(1, int(rng.gauss(jobs_per_day, jobs_per_day * 0.2)))
        jobs = [
            _fake_job(rng, day_start, day_index, clients, rules, overrides, now)
            for _ in range(count)
        ]
        jobs = [j for j in jobs if j["created_at"] < now]
        jobs.sort(key=lambda j: j["created_at"])
        total_attempts += _insert_day(runtime, jobs, now)
        total_jobs += len(jobs)
        if progress:
            progress(days - day_index + 1, days)
    with write_session(runtime.sessions) as session:
        result = SeedResult(
            clients=len(clients), jobs=total_jobs, attempts=total_attempts, days=days
        )
        audit.record(session, actor=actor, action="demo.seed", details=result.as_dict())
    with runtime.engine.connect() as conn:
        refresh_statistics(conn)
    return result


def _seed_clients(session: Session, now: datetime, days: int) -> list[tuple[int, int]]:
    """Create demo clients (the newest joined 9 days ago); return (id, weight) pairs."""
    existing = {c.email: c for c in session.scalars(select(Client))}
    out: list[tuple[int, int]] = []
    for index, (name, email, weight) in enumerate(CLIENTS):
        client = existing.get(email)
        if client is None:
            joined = now - timedelta(days=max(days + 30 - index * 12, 9))
            client = Client(name=name, email=email, is_demo=True, created_at=joined)
            session.add(client)
            session.flush()
        out.append((client.id, weight))
    return out


def _fake_job(
    rng: random.Random,
    day_start: datetime,
    days_ago: int,
    clients: list[tuple[int, int]],
    rules: dict[str, PriceRule],
    overrides: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    task_type = rng.choices(list(MIX), weights=[m[0] for m in MIX.values()])[0]
    words = max(50, int(rng.gauss(MIX[task_type][1], MIX[task_type][1] * 0.3)))
    client_id = rng.choices([c for c, _ in clients], weights=[w for _, w in clients])[0]
    created = day_start + timedelta(seconds=rng.uniform(7 * 3600, 21 * 3600))
    dip = days_ago in DIP_DAYS
    roll = rng.random()
    status = "done"
    if roll < 0.025:
        status = "dead"
    elif roll < 0.035:
        status = "cancelled"
    qa = min(100.0, max(40.0, rng.gauss(73 if dip else 90, 6 if dip else 4)))
    if status == "done" and qa < 80:
        status = "needs_review"
    attempts = 0 if status == "cancelled" else 1 + (rng.random() < 0.08) + (status == "dead")
    tokens_in = int(words * 1.35) + 150
    tokens_out = int(rng.uniform(0.2, 0.6) * tokens_in) + 80
    duration_ms = int(rng.uniform(4_000, 45_000) * (1.8 if dip else 1.0))
    final = {"done": "ok", "needs_review": "needs_review"}.get(status, "failed")
    calls = [
        _attempt(
            rng,
            n,
            final if n == attempts else "failed",
            tokens_in,
            tokens_out,
            created,
            duration_ms,
        )
        for n in range(1, attempts + 1)
    ]
    cost = sum(a["cost_micros"] for a in calls)
    price = None
    payment = "na"
    if status in ("done", "needs_review"):
        rule = rules[task_type]
        price = pricing.price_cents(
            unit=rule.unit,
            rate_micros=rule.rate_micros,
            min_cents=rule.min_cents,
            max_cents=rule.max_cents,
            tokens=tokens_in + tokens_out,
            input_text="word " * words,
            task_type=task_type,
        )
        if status == "done":
            tail = days_ago <= UNPAID_TAIL_DAYS
            payment = "not_configured" if tail or rng.random() < 0.04 else "paid"
    finished = created + timedelta(milliseconds=duration_ms * attempts)
    error = None
    if status == "dead":
        error = rng.choice(
            [
                "model server answered 400: context length exceeded",
                "retries exhausted after 3 attempts: model call timed out",
            ]
        )
    return {
        "row": {
            "name": f"{task_type.replace('_', ' ')} for client {client_id}",
            "task_type": task_type,
            "input": f"[demo input: {words} words]",
            "status": status,
            "priority": 0,
            "client_id": client_id,
            "source": "demo",
            "is_demo": True,
            "attempts": attempts,
            "max_attempts": 3,
            "qa_score": round(qa, 1) if status in ("done", "needs_review") else None,
            "qa_breakdown": None,
            "qa_threshold": 80,
            "provider": "demo",
            "model": DEMO_MODEL,
            "answer_path": "primary" if status in ("done", "needs_review") else None,
            "tokens_in": sum(a["tokens_in"] for a in calls),
            "tokens_out": sum(a["tokens_out"] for a in calls),
            "cost_micros": cost,
            "unpriced_models": [],
            "price_cents": price,
            "payment_status": payment,
            "result": "[demo result]" if price is not None else None,
            "error": error,
            "error_kind": "permanent"
            if error and "400" in error
            else ("transient" if error else None),
            "created_at": created,
            "started_at": created if attempts else None,
            "finished_at": min(finished, now),
            "duration_ms": duration_ms,
            "updated_at": min(finished, now),
        },
        "attempts": calls,
        "created_at": created,
    }


def _attempt(
    rng: random.Random,
    n: int,
    outcome: str,
    tokens_in: int,
    tokens_out: int,
    created: datetime,
    duration_ms: int,
) -> dict[str, Any]:
    """One attempt row; a failed attempt spent part of its output before the error."""
    started = created + timedelta(milliseconds=duration_ms * (n - 1))
    answered = outcome != "failed"
    t_out = tokens_out if answered else int(tokens_out * rng.uniform(0, 0.3))
    cost = costing.call_cost_micros(DEMO_MODEL, tokens_in, t_out, {}) or 0
    qa_in, qa_out = (tokens_in + t_out + 200, 60) if answered else (0, 0)
    if answered:
        cost += costing.call_cost_micros(DEMO_QA_MODEL, qa_in, qa_out, {}) or 0
    return {
        "n": n,
        "status": outcome,
        "worker": "demo",
        "model": DEMO_MODEL,
        "tokens_in": tokens_in + qa_in,
        "tokens_out": t_out + qa_out,
        "cost_micros": cost,
        "calls": [],
        "latency_ms": duration_ms,
        "error": None if answered else "model server answered 429: rate limited",
        "error_kind": None if answered else "transient",
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=duration_ms),
    }


def _insert_day(runtime: Runtime, jobs: list[dict[str, Any]], now: datetime) -> int:
    if not jobs:
        return 0
    attempts = 0
    with write_session(runtime.sessions) as session:
        for start in range(0, len(jobs), BATCH):
            chunk = jobs[start : start + BATCH]
            ids = session.scalars(
                insert(Job).returning(Job.id, sort_by_parameter_order=True),
                [j["row"] for j in chunk],
            ).all()
            attempt_rows, events, paid = [], [], []
            for job_id, job in zip(ids, chunk, strict=True):
                row = job["row"]
                if row["payment_status"] == "paid":
                    paid.append(_demo_payment(job_id, row, now))
                for a in job["attempts"]:
                    attempt_rows.append({**a, "job_id": job_id})
                events.append(
                    {
                        "job_id": job_id,
                        "from_status": None,
                        "to_status": "queued",
                        "attempt": 0,
                        "reason": "demo",
                        "at": row["created_at"],
                    }
                )
                events.append(
                    {
                        "job_id": job_id,
                        "from_status": "processing",
                        "to_status": row["status"],
                        "attempt": row["attempts"],
                        "reason": "demo",
                        "at": row["finished_at"],
                    }
                )
            session.execute(insert(JobAttempt), attempt_rows)
            session.execute(insert(JobEvent), events)
            if paid:
                session.execute(insert(Payment), paid)
            attempts += len(attempt_rows)
    return attempts


def _demo_payment(job_id: int, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The ledger entry of a paid demo job: its price, received half a day after it finished
    (so revenue paid shows in finance like a real business's)."""
    moved = min(row["finished_at"] + timedelta(hours=12), now)
    return {
        "entry_key": f"demo:{job_id}",
        "job_id": job_id,
        "kind": "payment",
        "amount_cents": row["price_cents"],
        "currency": "usd",
        "method": "demo",
        "status": "succeeded",
        "moved_at": moved,
        "recorded_at": moved,
    }
