"""The soak's world: the real platform (API, two workers, the scheduler, as real processes)
on the embedded default or on PostgreSQL + Redis of the soak's own, every process on one
clock file that the soak advances, and the outside world (model, Stripe, SMTP, alert
receiver) on 127.0.0.1.

Time only jumps when the platform is settled (no job due and unfinished, the scheduler done
with the slots of the new time), and between jumps it flows at the real rate; so a month
passes in as many steps as the day plan has, each costing what its work costs.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import stripe
from sqlalchemy import func, or_, select

from echopilot import clock
from echopilot.config import Settings, load_settings
from echopilot.db.engine import read_session
from echopilot.db.models import Job, JobPayment, SchedulerInstance, ScheduleRun, WorkerHeartbeat
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from echopilot.scheduler.table import build
from tests.api_support import TEST_KEY, free_port
from tests.fakes.stripe_server import KEY as STRIPE_KEY
from tests.fakes.stripe_server import FakeStripeServer
from tests.fleet import Fleet, Proc, wait_healthy
from tests.services import PostgresServer, RedisServer, small_disk
from tests.soak.outside import SMTP_PASS, SMTP_USER, HookReceiver, MailServer, Weather
from tests.soak.outside import model_server as start_model

WEBHOOK_SECRET = "whsec_soak_3kX9qLm2Vb7Tz4Np8Rw1"
OWNER = "owner@soak.example"
ACTIVE = ("queued", "processing", "failed")
SETTLE_SECONDS = 180.0
# How long a link request may be on its way (Stripe asked, the answer not yet saved).
LINK_ASKED_WITHIN = timedelta(minutes=1)


def first_monday_after(moment: datetime, days: int) -> datetime:
    """Midnight UTC of the first Monday at least `days` after `moment`: the simulated month
    starts after the catalogue's seed prices (dated at migration, wall time) and on a
    Monday, so the weekly optimizer runs on days 1, 8, 15 ..."""
    day = (moment + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=(7 - day.weekday()) % 7)


@dataclass
class Mark:
    """One entry of the timeline: a fault, a recovery, an alert, a brief."""

    at: datetime
    kind: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "kind": self.kind, "text": self.text}


@dataclass
class Accepted:
    """What the API's clients were told."""

    ids: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # bad input: name -> the answer
    unavailable: list[str] = field(default_factory=list)  # 503 codes answered
    lock: threading.Lock = field(default_factory=threading.Lock)


class World:
    def __init__(self, root: Path, backend: str, seed: int, keep: int) -> None:
        self.root = root
        self.backend = backend
        self.home = root / "var"
        self.clock_file = root / "clock.json"
        self.start_at = first_monday_after(datetime.now(UTC), 8)
        # The platform starts the evening before the month: its start-up runs are done
        # by the first day.
        self.now = self.start_at - timedelta(hours=2)
        self.weather = Weather(seed)
        self.keep = keep
        self.marks: list[Mark] = []
        self.accepted = Accepted()
        self.fleet = Fleet(root / "fleet")
        self.exits = contextlib.ExitStack()
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.api: Proc | None = None
        self.workers: list[Proc] = []
        self.scheduler: Proc | None = None
        self.scheduler_down = False
        self.client = httpx.Client(timeout=60, headers={"X-Dash-Key": TEST_KEY})

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> World:
        try:
            return self._start()
        except BaseException:
            self.exits.close()  # no mount, server or process outlives a failed start
            raise

    def _start(self) -> World:
        self.fleet.root.mkdir(parents=True, exist_ok=True)
        # var/ on a disk of its own, so the disk-full fault fills it and nothing else.
        self.exits.enter_context(small_disk(self.home, 1536))
        clock.set_file(self.clock_file, self.now)
        self.model = start_model(self.weather)
        self.exits.callback(self.model.stop)
        self.stripe = FakeStripeServer().start()
        self.exits.callback(self.stripe.stop)
        self.mail = MailServer().start()
        self.exits.callback(self.mail.stop)
        self.hooks = HookReceiver().start()
        self.exits.callback(self.hooks.stop)
        if self.backend == "production":
            self.postgres = PostgresServer().init().start()
            self.exits.callback(self.postgres.remove)
            self.redis = RedisServer(self.root / "redis").start()
            self.exits.callback(self.redis.stop)
        self.exits.callback(self.fleet.stop_all)
        self.settings = self._settings()
        self.env = self._env()
        self.api_port = free_port()
        self.start_api()
        self.runtime = Runtime(self.settings, pool_size=2)
        self.exits.callback(self.runtime.close)
        self.workers = [self.start_worker(n) for n in range(2)]
        self.table = build(self.settings)
        self.start_scheduler()
        self.wait_until("the scheduler and workers up", self._ready, timeout=120)
        self.settle()
        return self

    def _ready(self) -> bool:
        self._check_alive()
        with read_session(self.runtime.sessions) as session:
            schedulers = session.scalar(select(func.count()).select_from(SchedulerInstance))
            workers = session.scalar(select(func.count()).select_from(WorkerHeartbeat))
        return bool(schedulers) and workers == len(self.workers)

    def __exit__(self, *exc: object) -> None:
        try:
            self._keep()
        finally:
            self.exits.close()

    def _keep(self) -> None:
        self.client.close()
        self.fleet.stop_all()
        # var/ is a disk that goes with the soak: keep its database and logs to look at.
        import shutil

        kept = self.root / "kept"
        kept.mkdir(exist_ok=True)
        for name in ("logs", "reports"):
            with contextlib.suppress(OSError):
                shutil.copytree(self.home / name, kept / name)
        if (self.home / "echopilot.db").exists():
            with contextlib.suppress(sqlite3.Error):
                source = sqlite3.connect(self.home / "echopilot.db")
                copy = sqlite3.connect(kept / "echopilot.db")
                source.backup(copy)  # with what the WAL holds
                copy.close()
                source.close()

    def _settings(self) -> Settings:
        values: dict[str, Any] = {"home": self.home, "_env_file": None}
        if self.postgres is not None and self.redis is not None:
            values["database_url"] = self.postgres.url
            values["queue_url"] = self.redis.url
        return load_settings(**values)

    def _env(self) -> dict[str, str]:
        import os

        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ECHOPILOT_", "OPENAI_", "STRIPE_", "SMTP_", "SCHED_"))
            and k not in ("ALERT_TO", "DASHBOARD_KEY")
        }
        env = {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "ECHOPILOT_HOME": str(self.home),
            clock.CLOCK_FILE_ENV: str(self.clock_file),
            "DASHBOARD_KEY": TEST_KEY,
            "ECHOPILOT_AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-soak-test-key-0123456789",
            "OPENAI_BASE_URL": self.model.url,
            "ECHOPILOT_AI_RETRY_BASE_SECONDS": "0.01",
            "ECHOPILOT_AI_RETRY_MAX_SECONDS": "0.2",
            "ECHOPILOT_AI_TIMEOUT_SECONDS": "10",
            # A failed attempt comes back 20 simulated minutes later (then 40).
            "ECHOPILOT_RETRY_DELAY_SECONDS": "1200",
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "ECHOPILOT_STRIPE_API_BASE": self.stripe.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.mail.port),
            "SMTP_USER": SMTP_USER,
            "SMTP_PASS": SMTP_PASS,
            "SMTP_SECURITY": "none",
            "ALERT_TO": OWNER,
            "ECHOPILOT_ALERT_URLS": self.hooks.url,
            "ECHOPILOT_RETENTION_KEEP": str(self.keep),
            # Time jumps an hour at a time: heartbeats are judged over more than a step.
            "ECHOPILOT_ALERT_SCHEDULER_STALE_MINUTES": "90",
            "ECHOPILOT_ALERT_WORKER_STALE_MINUTES": "90",
        }
        if self.postgres is not None and self.redis is not None:
            env["ECHOPILOT_DATABASE_URL"] = self.postgres.url
            env["ECHOPILOT_QUEUE_URL"] = self.redis.url
        return env

    # -- processes ---------------------------------------------------------------------

    def start_api(self) -> Proc:
        self.api = self.fleet.start("api", self.env, "serve", port=self.api_port)
        wait_healthy(self.api, timeout=120)
        return self.api

    def start_worker(self, n: int) -> Proc:
        return self.fleet.start(f"worker{n}", self.env, "worker", "--concurrency", "8")

    def start_scheduler(self) -> Proc:
        """Start the scheduler and wait until it has registered and claimed its start-up
        runs. Before that, a jump would meet a start-up run claimed late: the jump's slot
        would then be skipped behind it, as the scheduler's rules say it must."""
        since = clock_now(self).replace(second=0, microsecond=0)
        with read_session(self.runtime.sessions) as session:
            before = session.scalar(select(func.count()).select_from(SchedulerInstance)) or 0
        at_start = [
            entry.name
            for entry in self.table.values()
            if entry.task.run_at_start and not entry.schedule.off
        ]

        def started() -> bool:
            self._check_alive()
            with read_session(self.runtime.sessions) as session:
                count = session.scalar(select(func.count()).select_from(SchedulerInstance))
                claimed = set(
                    session.scalars(
                        select(ScheduleRun.task).where(
                            ScheduleRun.task.in_(at_start), ScheduleRun.slot >= since
                        )
                    )
                )
            return (count or 0) > before and claimed == set(at_start)

        self.scheduler = self.fleet.start("scheduler", self.env, "scheduler", "run")
        self.scheduler_down = False
        self.wait_until("the scheduler registered with its start-up runs", started, timeout=120)
        return self.scheduler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def mark(self, kind: str, text: str, at: datetime | None = None) -> None:
        """A timeline entry, at `at` or the platform's time now."""
        self.marks.append(Mark(at or clock_now(self), kind, text))

    # -- time --------------------------------------------------------------------------

    def advance(self, to: datetime, *, settle: bool = True) -> None:
        """Jump every process's clock to `to`, then wait until settled. Time flows between
        jumps: a `to` the clock has already passed leaves it where it is (never back)."""
        to = max(to, clock_now(self))
        self.now = to
        clock.set_file(self.clock_file, to)
        if settle:
            self.settle()

    def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Until no job is due and unfinished, no billed job waits for its link, and the
        scheduler (when it runs) has handled the latest slot of every task."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if not self._busy():
                return
            time.sleep(0.05)
        raise AssertionError(f"not settled within {timeout:.0f} s at {self.now}: {self._busy()}")

    def _busy(self) -> str | None:
        now = clock_now(self)
        with read_session(self.runtime.sessions) as session:
            due = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.status.in_(ACTIVE),
                    or_(Job.retry_at.is_(None), Job.retry_at <= now),
                )
            )
            if due:
                return f"{due} jobs due and unfinished"
            # A link asked for and not saved a while ago (the disk was full as Stripe's
            # answer came) is reconciliation's to ask again at its next slot, not now.
            pending_links = session.scalar(
                select(func.count())
                .select_from(Job)
                .outerjoin(JobPayment, JobPayment.job_id == Job.id)
                .where(
                    Job.status == "done",
                    Job.payment_status == "link_pending",
                    or_(
                        JobPayment.job_id.is_(None),
                        JobPayment.link_attempts == 0,
                        JobPayment.updated_at >= now - LINK_ASKED_WITHIN,
                    ),
                )
            )
            if pending_links:
                return f"{pending_links} jobs wait for a payment link"
            if self.scheduler_down:
                return None
            # Slots first, then runs: on PostgreSQL each query sees what was committed before
            # it, so a run claimed between the two would otherwise pass both unseen.
            born = clock.as_utc(store.first_start(session))
            for name, entry in self.table.items():
                slot = entry.schedule.latest(self.now)
                if slot is None or entry.schedule.off or born is None or slot < born:
                    continue  # no scheduler ran then: nothing was missed
                seen = session.scalar(
                    select(func.max(ScheduleRun.slot)).where(
                        ScheduleRun.task == name, ScheduleRun.trigger != "manual"
                    )
                )
                if seen is None or clock.as_utc(seen) < slot:  # type: ignore[operator]
                    return f"the scheduler has not handled {name}'s slot {slot}"
            running = session.scalar(
                select(func.count()).select_from(ScheduleRun).where(ScheduleRun.status == "running")
            )
            if running:
                return f"{running} scheduled runs running"
        return None

    def _check_alive(self) -> None:
        for proc in [self.api, *self.workers, None if self.scheduler_down else self.scheduler]:
            if proc is not None and proc.process.poll() is not None:
                raise AssertionError(
                    f"{proc.name} died (rc {proc.process.returncode}):\n"
                    + self.fleet.output(proc.name)[-3000:]
                )

    def scheduler_heartbeat(self) -> datetime | None:
        with read_session(self.runtime.sessions) as session:
            return clock.as_utc(session.scalar(select(func.max(SchedulerInstance.heartbeat_at))))

    # -- the API's clients -------------------------------------------------------------

    def post_job(self, spec: dict[str, Any], *, patient: bool = True) -> httpx.Response | None:
        """POST a job; retries a refused connection (the API restarting: nothing was sent)
        and, when `patient`, a 503 (nothing was saved) until it is answered otherwise."""
        for _ in range(600):
            try:
                response = self.client.post(self.url + "/api/jobs", json=spec)
            except httpx.ConnectError:
                time.sleep(0.05)
                continue
            if response.status_code == 503:
                body = response.json()
                assert response.headers.get("retry-after"), response.headers
                with self.accepted.lock:
                    self.accepted.unavailable.append(body["error"]["code"])
                if patient:
                    time.sleep(0.2)
                    continue
            return response
        raise AssertionError(f"job {spec.get('name')} never answered")

    def submit(self, specs: list[dict[str, Any]], *, threads: int = 4) -> None:
        """Submit `specs` from several clients at once; record what each was told."""

        def one(spec: dict[str, Any]) -> None:
            response = self.post_job(spec)
            assert response is not None
            body = response.json()
            with self.accepted.lock:
                if response.status_code == 201:
                    assert spec["name"] not in self.accepted.ids, f"{spec['name']} twice"
                    self.accepted.ids[spec["name"]] = int(body["data"]["id"])
                else:
                    assert 400 <= response.status_code < 500, (response.status_code, body)
                    error = body["error"]
                    self.accepted.refused[spec["name"]] = f"{error['code']}: {error['message']}"

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            for result in [pool.submit(one, spec) for spec in specs]:
                result.result()

    # -- Stripe's side -----------------------------------------------------------------

    def deliver(self, event: dict[str, Any]) -> int:
        """POST one event to the webhook as Stripe does: signed at delivery time (the
        simulated clock's); the status code answered."""
        body = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            body, WEBHOOK_SECRET, timestamp=int(clock_now(self).timestamp())
        )
        for _ in range(600):
            try:
                response = self.client.post(
                    self.url + "/webhook/stripe",
                    content=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
            except httpx.ConnectError:
                time.sleep(0.05)
                continue
            return response.status_code
        raise AssertionError("the webhook never answered")

    # -- the embedded database made unreachable ----------------------------------------

    @contextlib.contextmanager
    def database_locked(self) -> Any:
        """SQLite: another process holds the write lock (a stuck backup); nothing writes."""
        conn = sqlite3.connect(self.home / "echopilot.db", timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

    def alerts_seen(self) -> list[dict[str, Any]]:
        return list(self.hooks.posts)

    def wait_until(self, what: str, predicate: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout:.0f} s (at {self.now})")


def clock_now(world: World) -> datetime:
    """The platform's time now: the instant set, plus the real time since."""
    return clock.file_time(world.clock_file)


def wait_api(world: World) -> None:
    assert world.api is not None
    wait_healthy(world.api, timeout=120)
