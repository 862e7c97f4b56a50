"""The soak's month: each day's jobs and payments, drawn from a seeded source, and one fault
a day in rotation, played against the World hour by hour."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from echopilot.db.engine import read_session
from echopilot.db.models import Alert, Job, StripeEvent, TaskType
from echopilot.payments.gateway import HANDLED_TYPES
from tests.services import fill
from tests.soak.world import World

FAULTS = (
    "worker_killed",
    "scheduler_killed",
    "database_unavailable",
    "model_down",
    "smtp_refuses_logins",
    "webhook_lost",
    "disk_full",
    "api_restarted",
)
CLIENTS = tuple(f"{n}@clients.example" for n in ("acme", "globex", "initech", "umbrella", "hooli"))
BUSINESS_HOURS = range(10, 18)
PAY_HOUR, LATE_HOUR = 18, 10
STEP = timedelta(minutes=30)
TEXTS = (
    "Quarterly figures: revenue rose, costs held, and the team shipped two features.",
    "Customer interview notes: onboarding is slow; pricing page confuses smaller teams.",
    "Release notes draft for version 4.2, covering the new export and two bug fixes.",
    "Support ticket thread about a failed invoice run and the workaround we applied.",
)
# Input no job should be made of, and what the API must name.
BAD = (
    ({"input": ""}, "input"),
    ({"task_type": "astrology"}, "task_type"),
    ({"name": "nul\x00byte"}, "name"),
    ({"qa_target": 150}, "qa_target"),
)


@dataclass
class Day:
    n: int  # 1-based
    start: datetime
    fault: str
    batches: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)  # job name -> the field at fault


@dataclass
class Ledger:
    """What the customers did in Stripe, by job, and what is still to be delivered."""

    paid: dict[int, Any] = field(default_factory=dict)  # job id -> Paid
    late: list[dict[str, Any]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # event ids never delivered
    refunded: dict[int, int] = field(default_factory=dict)  # job id -> cents
    dispute: str | None = None
    disputed_job: int | None = None
    delivered: int = 0


class Month:
    def __init__(self, world: World, days: int, seed: int, faults: tuple[str, ...] = ()) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        assert not unknown, f"no such fault {unknown}; faults: {', '.join(FAULTS)}"
        self.faults = faults
        self.world = world
        self.days = days
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.recoveries = 0
        self.lost_events: list[str] = []
        self._kinds: dict[str, str] = {}  # event id -> type
        self.disk_full_answers: list[int] = []
        self.faults_recovered: list[str] = []
        with read_session(world.runtime.sessions) as session:
            self.task_types = sorted(session.scalars(select(TaskType.name).where(TaskType.active)))
        self.plan = [self._day(n) for n in range(1, days + 1)]
        self._today = self.plan[0]

    # -- the plan ----------------------------------------------------------------------

    def _day(self, n: int) -> Day:
        start = self.world.start_at + timedelta(days=n - 1)
        rotation = self.faults or FAULTS
        day = Day(n, start, rotation[(n - 1) % len(rotation)])
        count = self.rng.randint(50, 200)
        hours = list(BUSINESS_HOURS)
        for i in range(count):
            spec: dict[str, Any] = {
                "name": f"d{n:02d}-j{i:03d}",
                "task_type": self.rng.choice(self.task_types),
                "input": f"{self.rng.choice(TEXTS)} (day {n}, item {i})",
                "client": self.rng.choice(CLIENTS),
            }
            if self.rng.random() < 0.03:
                change, named = self.rng.choice(BAD)
                spec.update(change)
                day.bad[spec["name"]] = named
            hour = hours[i % len(hours)]
            if day.fault == "model_down" and i < 10:
                hour = 7  # an early batch meets the model's outage
            day.batches.setdefault(hour, []).append(spec)
        return day

    # -- the days ----------------------------------------------------------------------

    def run(self, on_day: Callable[[Day], None] | None = None) -> None:
        for day in self.plan:
            self.world.mark(
                "day",
                f"day {day.n}: {sum(map(len, day.batches.values()))} jobs, fault {day.fault}",
                at=day.start,
            )
            for hour in range(24):
                self.hour(day, hour)
            if on_day is not None:
                on_day(day)
        # The morning after, and the night after that: the last day's report and brief,
        # and a retention run that sees them all.
        tail = self.plan[-1].start + timedelta(days=1)
        while tail <= self.plan[-1].start + timedelta(days=2, hours=3):
            self.world.advance(tail)
            tail += STEP

    def hour(self, day: Day, hour: int) -> None:
        self._today = day
        at = day.start + timedelta(hours=hour)
        handler = getattr(self, f"_{day.fault}", None)
        if handler is not None and handler(day, hour, at):
            return
        self.normal_hour(day, hour, at)

    def normal_hour(self, day: Day, hour: int, at: datetime) -> None:
        self.work_hour(day, hour, at)
        self.half(at)

    def work_hour(self, day: Day, hour: int, at: datetime) -> None:
        """The hour's own step: its jobs, late webhooks and payments."""
        self.world.advance(at)
        if hour == LATE_HOUR:
            self.deliver_late()
        if hour in day.batches:
            self.world.submit(day.batches[hour])
            self.world.settle()
        if hour == PAY_HOUR:
            self.payments(day, lose_all=False)

    def half(self, at: datetime) -> None:
        """The half-hour step: reconciliation (every 15 min) then never looks more than
        an hour old, as it never does when time flows."""
        self.world.advance(at + STEP)

    # -- money -------------------------------------------------------------------------

    def payments(self, day: Day, *, lose_all: bool) -> list[str]:
        """Customers pay most of the day's billed jobs: most events delivered at once, some
        late (tomorrow), some never (reconciliation finds them); a few refunds; one dispute.
        Returns the ids of events not delivered."""
        world, stamp = self.world, int(self.world.now.timestamp())
        with read_session(world.runtime.sessions) as session:
            links = session.execute(
                select(Job.id, Job.payment_link).where(
                    Job.finished_at >= day.start,
                    Job.finished_at < day.start + timedelta(days=1),
                    Job.payment_link.is_not(None),
                )
            ).all()
        undelivered: list[str] = []
        for job_id, link in sorted(links):
            draw = self.rng.random()
            if draw < 0.05 or job_id in self.ledger.paid:
                continue  # not paid (yet)
            paid = world.stripe.pay(link, created=stamp)
            self.ledger.paid[job_id] = paid
            self._kinds.update({e["id"]: e["type"] for e in paid.events})
            if lose_all or 0.85 <= draw < 0.92:
                undelivered += [e["id"] for e in paid.events]
            elif draw >= 0.92:
                self.ledger.late += paid.events
            else:
                self._deliver(paid.events)
        refundable = [
            j
            for j in self.ledger.paid
            if j not in self.ledger.refunded and j != self.ledger.disputed_job
        ]
        for job_id in self.rng.sample(refundable, min(len(refundable), self.rng.randint(0, 2))):
            paid = self.ledger.paid[job_id]
            cents = paid.amount if self.rng.random() < 0.5 else paid.amount // 2
            self.ledger.refunded[job_id] = cents
            event = world.stripe.refund(paid.charge, cents, created=stamp)
            self._kinds[event["id"]] = event["type"]
            if lose_all:
                undelivered.append(event["id"])
            else:
                self._deliver([event])
        if day.n == 2 and refundable:
            victim = next(j for j in refundable if j not in self.ledger.refunded)
            self.ledger.disputed_job = victim
            self.ledger.dispute, events = world.stripe.dispute(
                self.ledger.paid[victim].charge, created=stamp
            )
            self._deliver(events)
            world.mark("payment", f"a dispute opened on job {victim}")
        if day.n == min(4, self.days) and self.ledger.dispute is not None:
            self._deliver([world.stripe.close_dispute(self.ledger.dispute, "won", created=stamp)])
            world.mark("payment", "the dispute was won")
        self.ledger.missed += undelivered
        return undelivered

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            status = self.world.deliver(event)
            assert status == 200, (status, event["type"])
            self.ledger.delivered += 1

    def deliver_late(self) -> None:
        late, self.ledger.late = self.ledger.late, []
        self._deliver(late)

    # -- the faults (each returns True when it handled the hour itself) ----------------

    def _worker_killed(self, day: Day, hour: int, at: datetime) -> bool:
        if hour != 11:
            return False
        world = self.world
        world.advance(at)
        sender = threading.Thread(target=world.submit, args=(day.batches[hour],))
        sender.start()
        n = world.wait_until("a worker with a job in flight", self._busy_worker)
        victim = world.workers[n - 1]
        world.fleet.kill(victim)
        world.mark("fault", f"worker {victim.process.pid} killed with SIGKILL mid-job")
        world.workers[n - 1] = world.fleet.restart(victim)
        sender.join()
        world.settle()
        self._recovered("the killed worker's jobs were recovered and finished")
        self.half(at)
        return True

    def _scheduler_killed(self, day: Day, hour: int, at: datetime) -> bool:
        world = self.world
        if hour == 7:
            self.normal_hour(day, hour, at)
            world.advance(at + timedelta(minutes=55))
            assert world.scheduler is not None
            world.fleet.kill(world.scheduler)
            world.scheduler_down = True
            world.mark("fault", "the scheduler killed with SIGKILL at 07:55")
            return True
        if hour == 8:
            world.advance(at)
            self.half(at)
            return True
        if hour == 9:
            world.advance(at)
            world.advance(at + timedelta(minutes=40))
            world.wait_until("the scheduler_stale alert", lambda: self._open("scheduler_stale"))
            world.mark("note", "a worker's watch saw the scheduler silent")
            world.advance(at + timedelta(minutes=45), settle=False)
            world.start_scheduler()
            world.settle()
            self._recovered("the scheduler restarted at 09:45; brief and report caught up")
            return True
        return False

    def _database_unavailable(self, day: Day, hour: int, at: datetime) -> bool:
        if hour != 11:
            return False
        world = self.world
        self.work_hour(day, hour, at)
        probe = {
            "name": f"d{day.n:02d}-outage-probe",
            "task_type": self.task_types[0],
            "input": "Submitted while the database is away.",
        }
        with self._database_away():
            world.mark("fault", "the database unavailable from 11:01")
            world.advance(at + timedelta(minutes=1), settle=False)
            answer = world.post_job(probe, patient=False)
            assert answer is not None and answer.status_code == 503, answer
            assert answer.json()["error"]["code"] == "database_unavailable", answer.text
            world.advance(at + timedelta(minutes=7), settle=False)
            time.sleep(1)
        world.advance(at + timedelta(minutes=8))
        world.submit([probe])  # the client tries again, and it is taken
        world.settle()
        self._recovered("the database back at 11:08; the refused job taken on retry")
        self.half(at)
        return True

    def _database_away(self) -> Any:
        world = self.world
        if world.postgres is None:
            return world.database_locked()
        import contextlib

        @contextlib.contextmanager
        def stopped() -> Any:
            assert world.postgres is not None
            world.postgres.stop()
            try:
                yield
            finally:
                world.postgres.start()

        return stopped()

    def _model_down(self, day: Day, hour: int, at: datetime) -> bool:
        world = self.world
        if hour == 7:
            world.advance(at)
            world.weather.down = True
            world.mark("fault", "the model down (every call 503) from 07:00")
            world.submit(day.batches[7])
            world.settle()
            world.advance(at + timedelta(minutes=30))
            return True
        if hour == 8:
            world.advance(at)  # the brief meets the unfinished jobs
            world.weather.down = False
            self._recovered("the model back at 08:00; failed attempts retried")
            self.half(at)
            return True
        return False

    def _smtp_refuses_logins(self, day: Day, hour: int, at: datetime) -> bool:
        if hour == 7:
            self.world.mail.refusing = True
            self.world.mark("fault", "SMTP refuses logins from 07:00", at=at)
        if hour == 12:
            self.world.mail.refusing = False
            self._recovered("SMTP takes logins again at 12:00", at=at)
        return False

    def _webhook_lost(self, day: Day, hour: int, at: datetime) -> bool:
        if hour == PAY_HOUR:
            self.world.advance(at)
            self.lost_events = self.payments(day, lose_all=True)
            self.world.mark("fault", f"{len(self.lost_events)} webhook deliveries lost")
            self.half(at)
            return True
        if hour == PAY_HOUR + 1 and self.lost_events:
            self.normal_hour(day, hour, at)
            # Reconciliation asks Stripe for the kinds EchoPilot acts on (not charge.succeeded).
            wanted = [e for e in self.lost_events if self._kinds[e] in HANDLED_TYPES]
            assert wanted, "the lost deliveries held no event EchoPilot acts on"
            applied = self._applied(wanted)
            assert applied == len(wanted), (applied, len(wanted))
            self._recovered(f"reconciliation applied the {applied} lost events")
            return True
        return False

    def _disk_full(self, day: Day, hour: int, at: datetime) -> bool:
        """Submissions while var/ is full are either saved (201: the database still had
        room; a message the queue could not take is found by the sweep) or refused with 503
        `disk_full` (nothing saved; the client tries again later). Nothing in between."""
        if hour != 11:
            return False
        world = self.world
        world.advance(at)
        ballast = fill(world.home / "ballast.bin")
        world.mark("fault", "the disk under var/ full at 11:00")
        batch = day.batches[hour]
        during, later = batch[:5], batch[5:]
        answers = []
        for spec in during:
            answer = world.post_job(spec, patient=False)
            assert answer is not None
            if answer.status_code == 201:
                world.accepted.ids[spec["name"]] = int(answer.json()["data"]["id"])
            else:
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "disk_full", answer.text
                later.append(spec)
            answers.append(answer.status_code)
        self.disk_full_answers.extend(answers)
        world.advance(at + timedelta(minutes=3), settle=False)
        time.sleep(1)
        ballast.unlink()
        world.submit(later)
        world.settle()
        self._recovered(f"space back at 11:03 (answers while full: {answers})")
        self.half(at)
        return True

    def _api_restarted(self, day: Day, hour: int, at: datetime) -> bool:
        if hour != 13:
            return False
        world = self.world
        world.advance(at)
        batch = day.batches[hour]
        sender = threading.Thread(target=world.submit, args=(batch,), kwargs={"threads": 8})
        sender.start()
        before = len(world.accepted.ids)
        world.wait_until("the burst under way", lambda: len(world.accepted.ids) > before)
        assert world.api is not None
        world.api.process.send_signal(signal.SIGTERM)
        world.api.process.wait(timeout=60)
        world.mark("fault", "the API restarted during a burst of submissions")
        world.start_api()
        sender.join()
        world.settle()
        self._recovered("the API back; every submission of the burst answered once")
        self.half(at)
        return True

    # -- helpers -----------------------------------------------------------------------

    def _recovered(self, text: str, at: datetime | None = None) -> None:
        self.recoveries += 1
        self.faults_recovered.append(self._today.fault)
        self.world.mark("recovery", text, at=at)

    def _busy_worker(self) -> int:
        """1 + the index of a worker that holds a running job (0: none does yet). A
        worker's identity names its pid (host:pid:...)."""
        with read_session(self.world.runtime.sessions) as session:
            owners = session.scalars(
                select(Job.lease_owner).where(Job.status == "processing")
            ).all()
        for n, worker in enumerate(self.world.workers):
            if any(f":{worker.process.pid}:" in (owner or "") for owner in owners):
                return n + 1
        return 0

    def _open(self, rule: str) -> bool:
        with read_session(self.world.runtime.sessions) as session:
            return bool(
                session.scalar(
                    select(func.count())
                    .select_from(Alert)
                    .where(Alert.rule == rule, Alert.status == "open")
                )
            )

    def _applied(self, event_ids: list[str]) -> int:
        with read_session(self.world.runtime.sessions) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(StripeEvent)
                    .where(StripeEvent.id.in_(event_ids))
                )
                or 0
            )
