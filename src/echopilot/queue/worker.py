"""`echopilot worker`: a Huey consumer running jobs on threads, plus lease upkeep.

Model calls wait on the network, so one process runs `concurrency` jobs on threads.
Huey deletes a message when a worker takes it, so the queue is never the record of
what is running: each running job holds a lease in the database, which a keeper thread
renews. SIGTERM and SIGINT both drain: no new messages are taken, running jobs get
ECHOPILOT_WORKER_SHUTDOWN_SECONDS to finish, and those still running are handed back
(processing -> queued, re-enqueued) before the process exits. A worker killed outright
leaves leases that expire; the recovery sweep of any worker then re-enqueues the jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta

from huey.consumer import Consumer, ConsumerStopped
from sqlalchemy import delete, update

from echopilot.clock import utcnow
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import Job, JobAttempt, WorkerHeartbeat
from echopilot.db.outage import first_line, log_failure
from echopilot.jobs import pipeline
from echopilot.jobs.pipeline import SpendSaver
from echopilot.jobs.status import Status, change, lock_job
from echopilot.queue.app import set_executor
from echopilot.queue.liveness import beat_seconds
from echopilot.queue.quiet import quiet_consumer_outages
from echopilot.queue.recovery import sweep, unfinished_elsewhere, waiting
from echopilot.runtime import Runtime

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 0.25
SHUTDOWN = "worker shut down before the attempt finished"
UNSETTLED = "the attempt's end could not be recorded (database unavailable)"
# How often a worker checks that the scheduler lives (its alert fires from here).
WATCH_SCHEDULER = timedelta(minutes=5)


class LeaseKeeper:
    """Holds the leases of this process's running jobs and renews them in one statement."""

    def __init__(self, runtime: Runtime, concurrency: int) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self._held: dict[str, int] = {}
        self._unsettled: dict[str, SpendSaver] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renew_every = beat_seconds(runtime.settings.lease_seconds)
        self._registered = False
        self._next_sweep = time.monotonic() + runtime.settings.sweep_interval_seconds
        # By the one clock: on a simulated clock the watch keeps simulated time.
        self._next_watch = utcnow() + WATCH_SCHEDULER

    def hold(self, token: str, job_id: int) -> None:
        with self._lock:
            self._held[token] = job_id

    def release(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def unsettled(self, token: str, job_id: int, save_spend: SpendSaver) -> None:
        # Its lease stays held (and renewed): no other worker takes the job meanwhile.
        with self._lock:
            self._unsettled[token] = save_spend

    def settle(self) -> None:
        """Hand back the jobs whose attempts ended without their end being recorded; those
        the database still refuses wait for the next round."""
        for token, job_id in self.held().items():
            with self._lock:
                save_spend = self._unsettled.get(token)
            if save_spend is not None:
                self._give_back(token, job_id, save_spend)

    def hand_back_all(self) -> None:
        """At shutdown: every job still held goes back to the queue."""
        for token, job_id in self.held().items():
            with self._lock:
                save_spend = self._unsettled.get(token)
            self._give_back(token, job_id, save_spend)

    def _give_back(self, token: str, job_id: int, save_spend: SpendSaver | None) -> None:
        try:
            handed = hand_back(self.runtime, token, job_id, save_spend=save_spend)
        except Exception as exc:  # its lease will expire and the sweep will recover it
            log.warning("job %s: could not hand it back yet (%s)", job_id, first_line(exc))
            return
        with self._lock:
            self._unsettled.pop(token, None)
            self._held.pop(token, None)
        if handed:
            why = "its last attempt could not be recorded" if save_spend else "shutdown"
            log.warning("job %s handed back to the queue (%s)", job_id, why)

    def start(self) -> None:
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.held():
            # Jobs that could not be handed back: the row lets the next sweep see at once
            # that their holder is gone, rather than waiting out their leases.
            return
        with write_session(self.runtime.sessions) as session:
            session.execute(
                delete(WorkerHeartbeat).where(WorkerHeartbeat.worker == self.runtime.identity)
            )

    def _loop(self) -> None:
        last_round = time.monotonic()
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
                self._beat()
                self.settle()
                # A round that took long was held up by the database, which held up every
                # worker's heartbeat too: other hosts' workers are not judged by it now.
                held_up = time.monotonic() - last_round > 3 * self.renew_every
                last_round = time.monotonic()
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = (
                        time.monotonic() + self.runtime.settings.sweep_interval_seconds
                    )
                    # This process's own jobs are alive by definition, whatever their
                    # lease says after a database stall.
                    sweep(
                        self.runtime,
                        own_tokens=frozenset(self.held()),
                        judge_remote=not held_up,
                    )
                now = utcnow()
                # Also when the clock stepped back (NTP, a restored VM): due at once.
                if now >= self._next_watch or self._next_watch - now > WATCH_SCHEDULER:
                    self._next_watch = now + WATCH_SCHEDULER
                    watch_scheduler(self.runtime)
            except Exception:  # the keeper must outlive a database hiccup
                log_failure(log, "lease keeper round failed; trying again")

    def renew(self) -> None:
        tokens = list(self.held())
        if not tokens:
            return
        with write_session(self.runtime.sessions) as session:
            # The deadline counts from the write, not from before a wait for the database:
            # after a stall, a deadline computed earlier would already have passed.
            session.connection()
            until = utcnow() + timedelta(seconds=self.runtime.settings.lease_seconds)
            session.execute(
                update(Job)
                .where(Job.lease_token.in_(tokens), Job.status == Status.PROCESSING)
                .values(lease_until=until)
            )

    def _beat(self) -> None:
        with write_session(self.runtime.sessions) as session:
            now = utcnow()
            row = session.get(WorkerHeartbeat, self.runtime.identity)
            if row is None or not self._registered:
                # A new process (even one that reuses a dead worker's pid) starts a new row:
                # its start time tells it apart from the dead one.
                if row is None:
                    row = WorkerHeartbeat(worker=self.runtime.identity)
                    session.add(row)
                row.started_at = now
                row.concurrency = self.concurrency
                self._registered = True
            row.heartbeat_at = now
            row.in_flight = len(self._held)


class _Consumer(Consumer):  # type: ignore[misc]
    """Huey's consumer with SIGINT made as graceful as SIGTERM."""

    def __init__(self, runtime: Runtime, concurrency: int, shutdown_seconds: float) -> None:
        super().__init__(
            runtime.queue.huey,
            workers=concurrency,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.2,
            max_delay=1.0,
            scheduler_interval=1,
            shutdown_timeout=shutdown_seconds,
            graceful_signal="TERM",
        )
        # Map the other signal to a graceful stop too (restart=False, graceful=True).
        self._signal_actions[signal.SIGINT] = (False, True)


def hand_back(
    runtime: Runtime, token: str, job_id: int, *, save_spend: SpendSaver | None = None
) -> bool:
    """Return a job this worker holds but did not finish to the queue. At shutdown its
    attempt is not held against it. After an attempt whose end could not be recorded
    (`save_spend` given, to add that attempt's model spend), it counts as a lost lease, as a
    worker's death does: a job whose end never records cannot go round for ever."""
    now = utcnow()
    max_lost = runtime.settings.max_lost_leases
    with write_session(runtime.sessions) as session:
        job = lock_job(session, job_id)
        if job is None or job.status != Status.PROCESSING or job.lease_token != token:
            return False
        why, lost, target, error = SHUTDOWN, job.lost_leases, Status.QUEUED, job.error
        if save_spend is not None:
            save_spend(session.connection())
            why, lost = UNSETTLED, lost + 1
            if lost >= max_lost:
                target = Status.DEAD
                error = (
                    f"{lost} attempts ended without their end recorded (limit "
                    f"ECHOPILOT_MAX_LOST_LEASES={max_lost}); see the worker log"
                )
        change(
            session,
            job,
            target,
            reason=f"handed back: {why}",
            now=now,
            guard=lambda j: j.lease_token == token,
            lease_token=None,
            lease_until=None,
            enqueued_at=now,
            lost_leases=lost,
            max_attempts=job.max_attempts + 1,
            error=error,
            error_kind="transient" if target == Status.DEAD else job.error_kind,
            finished_at=now if target == Status.DEAD else None,
        )
        session.execute(
            update(JobAttempt)
            .where(
                JobAttempt.job_id == job_id,
                JobAttempt.n == job.attempts,
                JobAttempt.status == "running",
            )
            .values(status="handed_back", finished_at=now, error=why)
        )
        priority = job.priority
    if target == Status.QUEUED:
        try:
            runtime.queue.enqueue(job_id, priority=priority)
        except Exception as exc:  # queued in the database: the recovery sweep enqueues it
            log.warning(
                "job %s handed back; its enqueue waits for the sweep (%s)", job_id, first_line(exc)
            )
    return True


def watch_scheduler(runtime: Runtime) -> None:
    """The scheduler runs the alert check, so a dead scheduler cannot say it is dead:
    workers check that one rule now and then."""
    from echopilot.alerts.engine import check

    check(runtime, only=["scheduler_stale"], actor="worker")


def run_worker(runtime: Runtime, *, concurrency: int | None = None, burst: bool = False) -> int:
    """Run until a signal (or, with `burst`, until no job is runnable); return an exit code."""
    settings = runtime.settings
    concurrency = concurrency or settings.worker_concurrency
    keeper = LeaseKeeper(runtime, concurrency)
    set_executor(lambda job_id: _execute(runtime, keeper, job_id))
    start = sweep(runtime, orphan_min_age=timedelta(0))
    log.info(
        "worker %s starting with concurrency %s (%s); start-up sweep: %s",
        runtime.identity,
        concurrency,
        runtime.provider.name,
        start.as_dict(),
    )
    keeper.start()
    quiet_consumer_outages()
    consumer = _Consumer(runtime, concurrency, settings.worker_shutdown_seconds)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    consumer.start()
    try:
        _main_loop(runtime, consumer, keeper, burst)
    finally:
        # A consumer thread still waiting on the queue (a blocking Redis pop lasts up to a
        # second) may yet take a message, even one handed back below: it goes back too.
        set_executor(lambda job_id: runtime.queue.enqueue(int(job_id)))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        keeper.hand_back_all()
        keeper.stop()
    log.info("worker %s stopped", runtime.identity)
    return 0


def _execute(runtime: Runtime, keeper: LeaseKeeper, job_id: int) -> None:
    pipeline.process(runtime, int(job_id), leases=keeper)


def _main_loop(runtime: Runtime, consumer: _Consumer, keeper: LeaseKeeper, burst: bool) -> None:
    health = time.monotonic()
    next_idle_check = time.monotonic() + IDLE_CHECK_SECONDS
    while True:
        try:
            health = consumer.loop(health)
        except ConsumerStopped:
            return
        if burst and time.monotonic() >= next_idle_check:
            next_idle_check = time.monotonic() + IDLE_CHECK_SECONDS
            if _idle(runtime, keeper):
                consumer.stop(graceful=True)
                return


def _idle(runtime: Runtime, keeper: LeaseKeeper) -> bool:
    """True when nothing is running here, nothing waits in the queue, no job is runnable (one
    held by a spending limit is not) and no job is still `processing` under a dead worker
    (those are recovered and run)."""
    if keeper.held() or runtime.queue.huey.pending_count():
        return False
    now = utcnow()
    with read_session(runtime.sessions) as session:
        runnable, _ = waiting(session, runtime.settings, now)
        orphaned = unfinished_elsewhere(session, now, frozenset(keeper.held()))
    if not runnable and not orphaned:
        return True
    # Work the queue does not hold: stuck or orphaned. Recover what can be and keep going.
    sweep(runtime, now=now, orphan_min_age=timedelta(0))
    return False
