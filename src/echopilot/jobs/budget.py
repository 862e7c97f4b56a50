"""Spending limits on model calls: ECHOPILOT_DAILY_BUDGET_USD and clients' monthly budgets.

Spend is what the attempts recorded (job_attempts.cost_micros) since the start of the UTC
day, or of the UTC month for a client. Once a limit is reached a worker starts no new
attempt that falls under it: the job stays where it is (queued, or failed waiting for its
retry) with `hold_reason` saying why, and runs once the day or month turns or the limit is
raised. Calls already in flight finish, so spend may pass a limit by what they cost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from echopilot.config import Settings
from echopilot.db.models import Client, Job, JobAttempt
from echopilot.jobs.status import Status
from echopilot.money import usd_to_micros

# Spend is read before every job while a limit is in force (one indexed SUM over the
# period's attempts): a worker's own last job must count. Who has a budget is re-read at
# most this often.
CLIENTS_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class BudgetState:
    key: str  # the alert's key
    label: str
    setting: str  # where the limit is set
    spent_micros: int
    limit_micros: int
    resets_at: datetime
    client_id: int | None = None

    @property
    def exhausted(self) -> bool:
        return self.spent_micros >= self.limit_micros


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def _spent_since(conn: Connection | Session, since: datetime, client_id: int | None) -> int:
    query = select(func.coalesce(func.sum(JobAttempt.cost_micros), 0)).where(
        JobAttempt.started_at >= since
    )
    if client_id is not None:
        query = query.join(Job, Job.id == JobAttempt.job_id).where(Job.client_id == client_id)
    return int(conn.execute(query).scalar() or 0)


def daily_state(
    conn: Connection | Session, settings: Settings, now: datetime
) -> BudgetState | None:
    if settings.daily_budget_usd is None:
        return None
    start = day_start(now)
    return BudgetState(
        key="budget_daily",
        label="daily model budget",
        setting="ECHOPILOT_DAILY_BUDGET_USD",
        spent_micros=_spent_since(conn, start, None),
        limit_micros=usd_to_micros(settings.daily_budget_usd),
        resets_at=start + timedelta(days=1),
    )


def client_state(
    conn: Connection | Session, client_id: int, name: str, limit_micros: int, now: datetime
) -> BudgetState:
    return BudgetState(
        key=f"budget_client:{client_id}",
        label=f"monthly budget of client {name}",
        setting="the client's monthly budget (echopilot clients budget)",
        spent_micros=_spent_since(conn, month_start(now), client_id),
        limit_micros=limit_micros,
        resets_at=next_month(now),
        client_id=client_id,
    )


def states(session: Connection | Session, settings: Settings, now: datetime) -> list[BudgetState]:
    """Every limit in force, with what has been spent against it."""
    found = []
    daily = daily_state(session, settings, now)
    if daily is not None:
        found.append(daily)
    for client_id, name, limit in session.execute(
        select(Client.id, Client.name, Client.monthly_budget_micros).where(
            Client.monthly_budget_micros.is_not(None)
        )
    ):
        found.append(client_state(session, client_id, name, int(limit or 0), now))
    return found


@dataclass(frozen=True)
class Blocks:
    """The limits used up now: the daily one, and the clients whose month is."""

    daily: bool
    clients: frozenset[int]

    def holds(self, client_id: int | None) -> bool:
        return self.daily or (client_id is not None and client_id in self.clients)


NONE = Blocks(daily=False, clients=frozenset())


def blocks(session: Connection | Session, settings: Settings, now: datetime) -> Blocks:
    found = [s for s in states(session, settings, now) if s.exhausted]
    return Blocks(
        daily=any(s.client_id is None for s in found),
        clients=frozenset(s.client_id for s in found if s.client_id is not None),
    )


def _hold_message(state: BudgetState) -> str:
    return (
        f"waiting: the {state.label} is used up ({state.setting}); "
        f"runs after {state.resets_at:%Y-%m-%d %H:%M} UTC or when it is raised"
    )


class Guard:
    """A worker's check before it starts an attempt (one per process; thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._clients: tuple[float, dict[int, tuple[str, int]]] | None = None

    def hold_reason(self, conn: Connection, job_id: int, now: datetime) -> str | None:
        """Why job `job_id` must not start now (a limit is used up), or None; a held job
        gets that reason written to it."""
        reason = self._reason(conn, job_id, now)
        if reason is not None:
            conn.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status.in_((Status.QUEUED, Status.FAILED)),
                    func.coalesce(Job.hold_reason, "") != reason,
                )
                .values(hold_reason=reason)
            )
        return reason

    def _reason(self, conn: Connection, job_id: int, now: datetime) -> str | None:
        daily = daily_state(conn, self._settings, now)
        if daily is not None and daily.exhausted:
            return _hold_message(daily)
        budgets = self._client_budgets(conn)
        if not budgets:
            return None
        client_id = conn.execute(select(Job.client_id).where(Job.id == job_id)).scalar()
        if client_id is None or client_id not in budgets:
            return None
        name, limit = budgets[client_id]
        state = client_state(conn, client_id, name, limit, now)
        return _hold_message(state) if state.exhausted else None

    def _client_budgets(self, conn: Connection) -> dict[int, tuple[str, int]]:
        with self._lock:
            cached = self._clients
            if cached and time.monotonic() - cached[0] < CLIENTS_CACHE_SECONDS:
                return cached[1]
        budgets = {
            client_id: (name, int(limit or 0))
            for client_id, name, limit in conn.execute(
                select(Client.id, Client.name, Client.monthly_budget_micros).where(
                    Client.monthly_budget_micros.is_not(None)
                )
            )
        }
        with self._lock:
            self._clients = (time.monotonic(), budgets)
        return budgets
