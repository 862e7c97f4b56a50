"""The scheduler daemon: decides which (task, slot) is due, claims it, runs it.

Rules (see docs/scheduler.md):
- Only a task's most recent slot is ever considered, so missed slots coalesce into one run.
- A slot runs when it is within its grace window (until the next slot, at most 24 h);
  a late one is a "catchup" run, or skipped under the `skip` policy.
- The claim is the unique (task, slot) row, so any number of schedulers run a slot once.
- Tasks scheduled hourly or less often keep a 55-minute floor between started runs
  (startup runs included), read from the database, so a restart never runs one twice.
- A slot that comes while the previous run still runs is skipped and the run is flagged
  as drifting, never overlapped; unless that run's scheduler is dead: a process on this
  host that is gone, or one silent for the stale time. Then the run is abandoned and the
  slot runs. A silent owner not yet stale is waited for, and the skip says so.
- Paused (a flag in the database) means no new claims.
Time comes from `clock`, so tests drive the loop with `tick(now)`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from echopilot import clock, ndjson, procs
from echopilot.clock import utcnow
from echopilot.db.engine import read_session
from echopilot.db.models import SchedulerInstance, ScheduleRun
from echopilot.db.outage import EveryFew, log_failure, outage_of
from echopilot.errors import ConflictError
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from echopilot.scheduler.executor import Outcome, Runner
from echopilot.scheduler.table import Entry

log = logging.getLogger(__name__)

MAX_GRACE = timedelta(hours=24)
DEBOUNCE = timedelta(minutes=55)
DEBOUNCE_APPLIES_FROM = timedelta(hours=1)
# A run starting this late after its slot is a catch-up, not an on-time run.
ON_TIME = timedelta(seconds=5)
HEARTBEAT_EVERY = timedelta(seconds=2)
# An owner whose heartbeat is this old has missed about three beats: something is wrong.
SILENT_AFTER = 3 * HEARTBEAT_EVERY
ABANDON_CHECK_EVERY = timedelta(seconds=5)
PING_EVERY = timedelta(minutes=1)
MAX_SLEEP_SECONDS = 1.0
# Recording a run's end through an outage: tries back off from the first to the most,
# which is short, so that the run's next slot finds it closed soon after the outage.
FINISH_RETRY_FIRST_SECONDS = 0.5
FINISH_RETRY_MAX_SECONDS = 2.0
FINISH_MANUAL_TRIES = 3
# On a simulated clock (a clock file) time jumps when the test says: look often.
SIMULATED_SLEEP_SECONDS = 0.05
# A tick that could not reach the database waits this long before the next: an outage must
# not turn the loop into a hot one. Short enough that a slot after it is still on time.
FAILING_TICK_WAIT_SECONDS = 0.5
# One warning per kind of tick failure this often: an outage is a line, not a flood.
FAILING_TICK_LOG_SECONDS = 10.0


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        table: dict[str, Entry],
        runner: Runner,
        *,
        clock: Callable[[], datetime] = utcnow,
        pinger: Callable[[bool], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.table = table
        self.runner = runner
        self.clock = clock
        self.pinger = pinger
        # The process's stamp tells others at once when it dies; the suffix tells apart
        # several Scheduler objects of one process (the API's run-now, tests).
        self.instance_id = f"{procs.own_stamp()}/{uuid.uuid4().hex[:8]}"
        self._handled: dict[str, datetime] = {}
        self._born: datetime | None = None
        self._paused = False
        self._pool = ThreadPoolExecutor(
            max_workers=runtime.settings.scheduler_max_parallel, thread_name_prefix="run"
        )
        self._running: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._killing = threading.Event()
        self._grace_over = threading.Event()
        self._next_beat = self._next_abandon_check = self._next_ping = datetime.min.replace(
            tzinfo=utcnow().tzinfo
        )
        self._failed_since_ping = False
        self._tick_failed = False
        self._complaints = EveryFew(seconds=FAILING_TICK_LOG_SECONDS)
        self._log = ndjson.log_path(runtime.settings.home, "scheduler")
        self._stale_after = timedelta(seconds=runtime.settings.scheduler_stale_seconds)

    # -- life cycle -------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> None:
        self.runner.warm()
        now = now or self.clock()
        store.register_instance(self.runtime.sessions, self.instance_id, now)
        with read_session(self.runtime.sessions) as session:
            self._born = store.first_start(session)
        self._housekeeping(now)
        ndjson.append(
            self._log,
            "scheduler_started",
            now=now,
            scheduler=self.instance_id,
            host=store.HOST,
            pid=os.getpid(),
            tasks={n: e.schedule.text for n, e in self.table.items()},
        )
        # Catch up missed slots first: a start-up run after them is then debounced rather
        # than flagged as drifting by the catch-up.
        self.tick(now)
        if not store.is_paused(self.runtime.sessions):
            self._startup_runs(now)

    def run_forever(self) -> None:
        """Loop until stop() is called; the caller handles signals."""
        while not self._stop.is_set():
            self.tick(self.clock())
            self._stop.wait(self._seconds_to_next_slot(self.clock()))

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self, grace_seconds: float) -> list[int]:
        """Stop claiming, let running runs finish up to `grace_seconds`, stop the rest and
        mark them abandoned; return the ids abandoned."""
        self._stop.set()
        with self._lock:
            pending = dict(self._running)
        deadline = threading.Event()
        timer = threading.Timer(grace_seconds, deadline.set)
        timer.start()
        for future in pending.values():
            while not future.done() and not deadline.is_set():
                deadline.wait(0.1)
        timer.cancel()
        self._grace_over.set()
        self._killing.set()
        self.runner.stop_all()
        now = self.clock()
        store.mark_stopped(self.runtime.sessions, self.instance_id, now)
        abandoned = store.abandon_orphaned_runs(
            self.runtime.sessions, now, self._timeouts(), self._stale_after
        )
        for future in pending.values():
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        ndjson.append(
            self._log,
            "scheduler_stopped",
            now=now,
            scheduler=self.instance_id,
            host=store.HOST,
            pid=os.getpid(),
            abandoned=abandoned,
        )
        return abandoned

    def wait_idle(self, timeout: float = 30) -> None:
        """Block until no run is in progress (tests)."""
        with self._lock:
            futures = list(self._running.values())
        for future in futures:
            future.result(timeout=timeout)

    # -- decisions --------------------------------------------------------------------

    def tick(self, now: datetime) -> list[str]:
        """One round: upkeep, then every task whose latest slot is new; return the tasks
        started."""
        self._tick_failed = False
        self._housekeeping(now)
        try:
            self._paused = store.is_paused(self.runtime.sessions)
        except Exception:
            self._complain("pause", "cannot read the pause switch; trying again")
            return []
        if self._paused:
            return []
        started = []
        for name, entry in self.table.items():
            slot = entry.schedule.latest(now)
            if slot is None or self._handled.get(name) == slot:
                continue
            try:
                if self._consider(entry, slot, now):
                    started.append(name)
            except Exception:  # a database hiccup must not kill the daemon
                self._complain(
                    f"slot:{name}", "deciding %s's slot %s failed; trying again", name, slot
                )
                continue  # not marked handled: the next tick tries the slot again
            self._handled[name] = slot
        return started

    def _consider(self, entry: Entry, slot: datetime, now: datetime) -> bool:
        interval = entry.schedule.interval(slot) or MAX_GRACE
        grace = min(interval, MAX_GRACE)
        late = now - slot
        if late >= grace:
            return False  # its window passed; the next slot will come
        if self._born is not None and slot < self._born:
            return False  # no scheduler ran then, so nothing was missed
        trigger = "scheduled" if late <= ON_TIME else "catchup"
        if trigger == "catchup" and entry.catchup == "skip":
            self._skip(entry.name, slot, now, trigger, "missed slot; catch-up policy is skip")
            return False
        return self._start_if_allowed(entry, slot, now, trigger, interval)

    def _startup_runs(self, now: datetime) -> None:
        slot = now.replace(second=0, microsecond=0)
        for entry in self.table.values():
            if entry.task.run_at_start and not entry.schedule.off:
                interval = entry.schedule.interval(now) or MAX_GRACE
                self._start_if_allowed(entry, slot, now, "startup", interval)

    def _start_if_allowed(
        self, entry: Entry, slot: datetime, now: datetime, trigger: str, interval: timedelta
    ) -> bool:
        name = entry.name
        with read_session(self.runtime.sessions) as session:
            running = store.running_run(session, name)
            owner = (
                store.instance(session, running.scheduler_id)
                if running is not None and running.scheduler_id
                else None
            )
            previous = (
                store.last_started(session, name, include_manual=False)
                if interval >= DEBOUNCE_APPLIES_FROM
                else None
            )
        if running is not None:
            blocked = self._blocked_by(running, owner, slot, now)
            if blocked is not None:
                self._skip(name, slot, now, trigger, blocked)
                return False
        if previous is not None and now - previous.started_at < DEBOUNCE:
            self._skip(
                name,
                slot,
                now,
                trigger,
                f"debounce: last run started {previous.started_at.isoformat()}",
            )
            return False
        # The claim's own time, not the tick's: a slow tick must not hide lateness.
        claimed_at = max(now, self.clock())
        if trigger == "scheduled" and claimed_at - slot > ON_TIME:
            trigger = "catchup"
            if entry.catchup == "skip":
                self._skip(name, slot, now, trigger, "started late; catch-up policy is skip")
                return False
        claimed = store.claim(
            self.runtime.sessions,
            task=name,
            slot=slot,
            trigger=trigger,
            scheduler_id=self.instance_id,
            now=claimed_at,
        )
        if claimed is None:
            return False  # another scheduler has this slot
        self._launch(entry, claimed, claimed_at)
        return True

    def _blocked_by(
        self,
        running: ScheduleRun,
        owner: SchedulerInstance | None,
        slot: datetime,
        now: datetime,
    ) -> str | None:
        """Why the task's `running` run keeps `slot` from starting (the skip's note); None
        when its owner turned out dead and the run was abandoned here."""
        if running.scheduler_id == self.instance_id and not self._is_ours_running(running.id):
            # Claimed here, but never launched: the claim's answer was lost in an outage
            # after it was committed. Nothing runs it, so it must not hold the slot back.
            reason = "claimed while the database was failing, and never started"
            store.finish(
                self.runtime.sessions, running.id, status="abandoned", now=now, error=reason
            )
            self._log_abandoned(running.id, now, reason)
            return None
        if owner is not None and owner.id != self.instance_id:
            if _owner_dead(owner):
                self._close_dead(owner, now)
                return None
            silent = now - owner.heartbeat_at
            if owner.stopped_at is not None or silent >= self._stale_after:
                if running.id in self._abandon_orphans(now):
                    return None
            elif silent > SILENT_AFTER:
                return (
                    f"owner scheduler {owner.id} silent for {silent.total_seconds():.0f} s; "
                    "waiting for the stale time (ECHOPILOT_SCHEDULER_STALE_SECONDS="
                    f"{self._stale_after.total_seconds():g}) before reclaiming"
                )
        store.flag(
            self.runtime.sessions,
            running.id,
            f"drift: still running when slot {slot.isoformat()} came",
        )
        return f"previous run {running.id} still running (drift)"

    def _is_ours_running(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._running

    def _close_dead(self, owner: SchedulerInstance, now: datetime) -> None:
        """`owner` ran on this host and its process is gone: close its records now rather
        than after the stale time."""
        reason = f"its scheduler (pid {owner.pid}) died before the run finished"
        for run_id in store.close_dead_scheduler(
            self.runtime.sessions, now=now, reason=reason, instance_id=owner.id
        ):
            self._log_abandoned(run_id, now, reason)

    def _abandon_orphans(self, now: datetime) -> list[int]:
        abandoned = store.abandon_orphaned_runs(
            self.runtime.sessions, now, self._timeouts(), self._stale_after
        )
        for run_id in abandoned:
            self._log_abandoned(run_id, now, "its scheduler stopped before the run finished")
        return abandoned

    def _log_abandoned(self, run_id: int, now: datetime, reason: str) -> None:
        ndjson.append(
            self._log,
            "run_abandoned",
            now=now,
            run_id=run_id,
            status="abandoned",
            reason=reason,
            host=store.HOST,
            pid=os.getpid(),
        )

    def _skip(self, task: str, slot: datetime, now: datetime, trigger: str, reason: str) -> None:
        claimed = store.claim(
            self.runtime.sessions,
            task=task,
            slot=slot,
            trigger=trigger,
            scheduler_id=self.instance_id,
            now=now,
            status="skipped",
            note=reason,
        )
        if claimed is not None:
            ndjson.append(
                self._log,
                "run_skipped",
                now=now,
                task=task,
                slot=slot.isoformat(),
                status="skipped",
                reason=reason,
                duration_ms=0,
                host=store.HOST,
                pid=os.getpid(),
            )

    # -- execution --------------------------------------------------------------------

    def run_manual(self, entry: Entry, now: datetime | None = None) -> store.Claimed:
        """Run `entry` now, outside its schedule, and wait for it (up to its timeout).

        Raises ConflictError while a run of the task is in progress: runs never overlap.
        """
        now = now or self.clock()
        with read_session(self.runtime.sessions) as session:
            running = store.running_run(session, entry.name)
        if running is not None:
            raise ConflictError(
                f"{entry.name} is running (run {running.id}, started "
                f"{running.started_at.isoformat()}); try again when it has finished"
            )
        claimed = store.claim(
            self.runtime.sessions,
            task=entry.name,
            slot=now,
            trigger="manual",
            scheduler_id=None,
            now=now,
        )
        assert claimed is not None, "a manual slot is the current instant"
        self._execute(entry, claimed)
        return claimed

    def _launch(self, entry: Entry, claimed: store.Claimed, now: datetime) -> None:
        ndjson.append(
            self._log,
            "run_started",
            now=now,
            task=entry.name,
            slot=claimed.slot.isoformat(),
            trigger=claimed.trigger,
            status="running",
            host=store.HOST,
            pid=os.getpid(),
            lateness_ms=int((now - claimed.slot).total_seconds() * 1000),
        )
        future = self._pool.submit(self._execute, entry, claimed)
        with self._lock:
            self._running[claimed.id] = future
        future.add_done_callback(functools.partial(self._forget, claimed.id))

    def _forget(self, run_id: int, _future: object = None) -> None:
        with self._lock:
            self._running.pop(run_id, None)

    def _execute(self, entry: Entry, claimed: store.Claimed) -> None:
        try:
            outcome = self.runner.run(
                entry.name, claimed.slot, claimed.started_at, claimed.trigger, entry.task.timeout
            )
        except Exception as exc:  # the daemon outlives any task
            log.exception("task %s crashed the runner", entry.name)
            outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        if self._killing.is_set() and outcome.status == "failed":
            outcome = Outcome("abandoned", error="the scheduler stopped before the run finished")
        self._record(entry.name, claimed, outcome)

    def _record(self, task: str, claimed: store.Claimed, outcome: Outcome) -> None:
        now, duration = self._finish(task, claimed, outcome)
        if outcome.status == "failed":
            self._failed_since_ping = True
        fields: dict[str, Any] = {
            "task": task,
            "slot": claimed.slot.isoformat(),
            "trigger": claimed.trigger,
            "status": outcome.status,
            "duration_ms": duration,
            "host": store.HOST,
            "pid": os.getpid(),
        }
        if outcome.error:
            fields["error"] = outcome.error[:500]
        ndjson.append(self._log, "run_finished", now=now, **fields)

    def _finish(
        self, task: str, claimed: store.Claimed, outcome: Outcome
    ) -> tuple[datetime, int | None]:
        """Close the run's row. Through an outage, try again until the database answers: a
        run left "running" by its live owner would hold back its task's later slots. A
        scheduled run gives up only when the scheduler's shutdown grace is over (the
        shutdown then closes its open runs as abandoned); a manual one, which a caller waits
        for, after a few tries (a scheduler abandons it at twice its timeout). An outcome
        the database refuses for what it holds is recorded as a plain failure instead."""
        wait, tries, plain = FINISH_RETRY_FIRST_SECONDS, 0, False
        while True:
            tries += 1
            now = self.clock()
            try:
                return now, store.finish(
                    self.runtime.sessions,
                    claimed.id,
                    status=outcome.status,
                    now=now,
                    summary=_jsonable(outcome.summary),
                    error=outcome.error,
                )
            except Exception as exc:
                if outage_of(exc) is None:
                    log.exception("the outcome of %s's run %s cannot be stored", task, claimed.id)
                    if plain:
                        raise  # a bug; the next slot's check abandons the run
                    plain = True
                    outcome = Outcome(
                        "failed", error=f"its outcome could not be stored ({type(exc).__name__})"
                    )
                    continue
                log_failure(log, "recording the end of %s's run %s failed", task, claimed.id)
                gave_up = claimed.trigger == "manual" and tries >= FINISH_MANUAL_TRIES
                if gave_up or self._grace_over.wait(wait):
                    raise
                wait = min(wait * 2, FINISH_RETRY_MAX_SECONDS)

    # -- upkeep -----------------------------------------------------------------------

    def _housekeeping(self, now: datetime) -> None:
        try:
            if now >= self._next_beat:
                self._next_beat = now + HEARTBEAT_EVERY
                store.beat(self.runtime.sessions, self.instance_id, now)
            if now >= self._next_abandon_check:
                self._next_abandon_check = now + ABANDON_CHECK_EVERY
                self._abandon_orphans(now)
            if self.pinger is not None and now >= self._next_ping:
                self._next_ping = now + PING_EVERY
                failed, self._failed_since_ping = self._failed_since_ping, False
                # In its own thread: a slow monitor must not delay slots or heartbeats.
                threading.Thread(target=self.pinger, args=(failed,), daemon=True).start()
        except Exception:
            self._complain("upkeep", "scheduler upkeep failed; trying again")

    def _complain(self, kind: str, message: str, *args: object) -> None:
        """In an `except` block of a tick: the tick failed (the loop waits before the next)
        and, once per FAILING_TICK_LOG_SECONDS for each `kind`, the log says why."""
        self._tick_failed = True
        if self._complaints.due(kind):
            log_failure(log, message, *args)

    def _timeouts(self) -> dict[str, timedelta]:
        return {name: entry.task.timeout for name, entry in self.table.items()}

    def _seconds_to_next_slot(self, now: datetime) -> float:
        """Until the next slot, at most a second; none when a slot came during the tick,
        unless the tick failed."""
        if self._tick_failed:
            return FAILING_TICK_WAIT_SECONDS
        for name, entry in () if self._paused else self.table.items():
            latest = entry.schedule.latest(now)
            if latest is not None and self._handled.get(name, latest) != latest:
                return 0.0
        longest = SIMULATED_SLEEP_SECONDS if clock.simulated() else MAX_SLEEP_SECONDS
        upcoming = [entry.schedule.following(now) for entry in self.table.values()]
        due = [slot for slot in upcoming if slot is not None]
        if not due:
            return longest
        wait = (min(due) - now).total_seconds()
        return max(0.0, min(wait, longest))


def _owner_dead(owner: SchedulerInstance) -> bool:
    """Whether the scheduler process of `owner` is known to be gone. Its stamp answers
    exactly on its own machine; an older row without one is judged by its pid."""
    stamp = procs.Stamp.parse(owner.id.split("/", 1)[0])
    if stamp is not None:
        return procs.alive(stamp) is False
    if owner.host != procs.HOST:
        return False
    if owner.pid == os.getpid():
        return True  # our own pid under another row: an earlier process's
    return not procs.running(owner.pid) or procs.is_echopilot(owner.pid) is False


def _jsonable(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if summary is None else json.loads(json.dumps(summary, default=str))
