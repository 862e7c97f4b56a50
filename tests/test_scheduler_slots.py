"""Which slots run, and when: the scheduler's rules with the clock in the test's hands."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from echopilot.db.engine import read_session
from echopilot.db.models import SchedulerInstance, ScheduleRun
from echopilot.errors import ConfigError
from echopilot.runtime import Runtime
from echopilot.scheduler import store
from echopilot.scheduler.daemon import Scheduler
from echopilot.scheduler.executor import InlineRunner, Outcome
from echopilot.scheduler.table import build
from tests.conftest import builtin_tasks_off
from tests.services import PostgresServer, fill, small_disk

T0 = datetime(2026, 11, 26, 7, 59, 50, tzinfo=UTC)
PROBES = "tests.fakes.probe_tasks"


class World:
    """A scheduler on a shared database whose clock the test sets."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.now = T0
        self.instances: list[Scheduler] = []

    def scheduler(self, start: bool = True) -> Scheduler:
        sched = Scheduler(
            self.runtime,
            build(self.runtime.settings),
            InlineRunner(self.runtime),
            clock=lambda: self.now,
        )
        self.instances.append(sched)
        if start:
            sched.start(self.now)
            sched.wait_idle()
        return sched

    def at(self, sched: Scheduler, moment: datetime) -> list[str]:
        self.now = moment
        started = sched.tick(moment)
        sched.wait_idle()
        return started

    def runs(self, task: str = "probe") -> list[tuple[datetime, str, str]]:
        with read_session(self.runtime.sessions) as session:
            rows = session.scalars(
                select(ScheduleRun).where(ScheduleRun.task == task).order_by(ScheduleRun.slot)
            )
            return [(r.slot, r.trigger, r.status) for r in rows]

    def ran(self, task: str = "probe") -> list[datetime]:
        return [slot for slot, _, status in self.runs(task) if status == "ok"]


@pytest.fixture
def world(make_runtime: Callable[..., Runtime]) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(**schedules: str) -> World:
        catchup = {
            k.removeprefix("catchup_"): v for k, v in schedules.items() if k.startswith("catchup_")
        }
        plain = {k: v for k, v in schedules.items() if not k.startswith("catchup_")}
        rt = make_runtime(
            task_modules=PROBES,
            schedules={
                **builtin_tasks_off(),
                **plain,
            },
            catchup=catchup,
        )
        made.append(World(rt))
        return made[-1]

    yield make
    for w in made:
        for sched in w.instances:
            sched.shutdown(0)


def at(hour: int, minute: int = 0, second: float = 0, day: int = 26) -> datetime:
    whole = int(second)
    return datetime(2026, 11, day, hour, minute, whole, int((second - whole) * 1e6), tzinfo=UTC)


def test_a_daily_slot_runs_once_at_its_time(world: Callable[..., World]) -> None:
    w = world(probe="daily 08:00")
    sched = w.scheduler()
    assert w.at(sched, at(7, 59, 59)) == []
    assert w.at(sched, at(8, 0, 0.4)) == ["probe"]
    assert w.at(sched, at(8, 0, 30)) == []
    assert w.at(sched, at(12, 0)) == []
    assert w.at(sched, at(8, 0, 1, day=27)) == ["probe"]
    assert w.ran() == [at(8), at(8, day=27)]
    assert [t for _, t, _ in w.runs()] == ["scheduled", "scheduled"]


def test_interval_slots_are_aligned_and_run_once_each(world: Callable[..., World]) -> None:
    w = world(probe="every 15m")
    sched = w.scheduler()
    for minute in (0, 1, 14, 15, 29, 30, 44):
        w.at(sched, at(9, minute, 0.2))
    assert w.ran() == [at(9, 0), at(9, 15), at(9, 30)]


def test_a_cron_override_replaces_the_default_schedule(world: Callable[..., World]) -> None:
    w = world(probe="*/5 9-10 * * *")
    sched = w.scheduler()
    for minute in range(0, 60, 1):
        w.at(sched, at(8, minute, 0.5))
    for minute in range(0, 12):
        w.at(sched, at(9, minute, 0.5))
    assert w.ran() == [at(9, 0), at(9, 5), at(9, 10)]


def test_a_bad_schedule_stops_start_up_naming_the_setting(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(task_modules=PROBES, schedules={"probe": "every tuesday"})
    with pytest.raises(ConfigError, match="ECHOPILOT_SCHEDULE_PROBE"):
        build(rt.settings)
    rt2 = make_runtime(schedules={"nosuchtask": "every 5m"})
    with pytest.raises(ConfigError, match="ECHOPILOT_SCHEDULE_NOSUCHTASK: no task"):
        build(rt2.settings)
    rt3 = make_runtime(task_modules=PROBES, catchup={"probe": "twice"})
    with pytest.raises(ConfigError, match="ECHOPILOT_CATCHUP_PROBE"):
        build(rt3.settings)


def test_missed_slots_after_downtime_coalesce_into_one_catch_up_run(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 6h")
    w.now = at(17, 0, day=25)
    first = w.scheduler()
    w.at(first, at(18, 0, 0.1, day=25))  # ran at 18:00 on the 25th, then the machine went down
    first.shutdown(0)

    w.now = at(7, 30, day=26)  # back after 00:00 and 06:00 (across midnight) were missed
    w.scheduler()
    assert w.runs() == [(at(18, day=25), "scheduled", "ok"), (at(6, day=26), "catchup", "ok")]


def test_a_daily_task_down_at_its_time_runs_once_when_the_scheduler_returns(
    world: Callable[..., World],
) -> None:
    w = world(probe="daily 08:00")
    w.now = at(7, 0)
    w.scheduler().shutdown(0)  # it ran until 07:00, then stopped
    w.now = at(9, 30)
    sched = w.scheduler()
    assert w.runs() == [(at(8), "catchup", "ok")]
    w.at(sched, at(9, 31))
    assert len(w.ran()) == 1


def test_the_skip_policy_does_not_catch_up(world: Callable[..., World]) -> None:
    w = world(probe="daily 08:00", catchup_probe="skip")
    w.now = at(7, 0)
    w.scheduler().shutdown(0)
    w.now = at(9, 30)
    w.scheduler()
    assert w.runs() == [(at(8), "catchup", "skipped")]


def test_a_slot_past_its_grace_window_is_not_run(world: Callable[..., World]) -> None:
    w = world(probe="0 8 * * 1")  # weekly, Mondays 08:00; grace is capped at 24 h
    w.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    w.scheduler().shutdown(0)  # installed the week before, then down over Monday
    w.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # Wednesday: Monday's slot is 49 h old
    w.scheduler()
    assert w.runs() == []
    w.now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # Tuesday 20:00: 36 h old, also too late
    w.scheduler()
    assert w.runs() == []


def test_the_debounce_floor_keeps_a_restart_from_running_an_hourly_task_twice(
    world: Callable[..., World],
) -> None:
    w = world(probe="0 * * * *")
    w.now = at(9, 30)
    sched = w.scheduler()
    w.at(sched, at(10, 0, 0.2))
    sched.shutdown(0)
    # A restart at 10:20 and the 11:00 slot. The restart's catch-up of 10:00 finds it done;
    w.now = at(10, 20)
    again = w.scheduler()
    # 11:00 is more than 55 min after 10:00, so it runs.
    w.at(again, at(11, 0, 0.1))
    assert w.ran() == [at(10), at(11)]


def test_a_startup_run_counts_for_the_debounce_floor(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    from echopilot.scheduler import tasks
    from tests.fakes import probe_tasks  # noqa: F401  (registers the probe)

    probe = tasks._REGISTRY["probe"]
    monkeypatch.setitem(
        tasks._REGISTRY,
        "probe",
        tasks.TaskDef(name="probe", func=probe.func, default_schedule="off", run_at_start=True),
    )
    w = world(probe="0 * * * *")
    w.now = at(9, 40)
    sched = w.scheduler()  # runs once at start
    w.at(sched, at(10, 0, 0.1))  # 20 min later: inside the 55-minute floor, skipped
    w.at(sched, at(11, 0, 0.1))
    assert w.runs() == [
        (at(9, 40), "startup", "ok"),
        (at(10), "scheduled", "skipped"),
        (at(11), "scheduled", "ok"),
    ]


def test_fast_tasks_have_no_debounce(world: Callable[..., World]) -> None:
    w = world(probe="every 10s")
    w.now = at(7, 59, 55)
    sched = w.scheduler()
    for second in (0, 10, 20, 30):
        w.at(sched, at(8, 0, second + 0.1))
    assert len(w.ran()) == 4


def test_pause_stops_new_runs_and_resume_catches_up_once(world: Callable[..., World]) -> None:
    w = world(probe="every 15m")
    w.now = at(8, 50)
    sched = w.scheduler()
    w.at(sched, at(9, 0, 0.1))
    store.set_paused(w.runtime.sessions, True, "test")
    for minute in (15, 30, 45):
        assert w.at(sched, at(9, minute, 0.1)) == []
    store.set_paused(w.runtime.sessions, False, "test")
    w.at(sched, at(9, 50))
    assert w.runs() == [(at(9, 0), "scheduled", "ok"), (at(9, 45), "catchup", "ok")]


def test_paused_state_survives_a_restart(world: Callable[..., World]) -> None:
    w = world(probe="every 15m")
    store.set_paused(w.runtime.sessions, True, "test")
    w.now = at(8, 50)
    sched = w.scheduler()
    w.at(sched, at(9, 0, 0.1))
    assert w.runs() == []
    assert store.is_paused(w.runtime.sessions)


def test_a_manual_run_is_recorded_and_does_not_take_the_next_slot(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 15m")
    sched = w.scheduler()
    w.now = at(9, 7)
    sched.run_manual(sched.table["probe"], w.now)
    w.at(sched, at(9, 15, 0.1))
    assert w.runs() == [(at(9, 7), "manual", "ok"), (at(9, 15), "scheduled", "ok")]


def test_two_schedulers_on_one_database_run_a_slot_once(world: Callable[..., World]) -> None:
    w = world(probe="every 1m")
    a, b = w.scheduler(), w.scheduler()
    for minute in range(5):
        w.at(a, at(9, minute, 0.1))
        w.at(b, at(9, minute, 0.2))
    assert w.ran() == [at(9, m) for m in range(5)]


def test_a_run_that_outlasts_its_interval_is_flagged_not_overlapped(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    gate = threading.Event()
    sched.runner = Held(InlineRunner(w.runtime), gate)
    sched.tick(at(9, 0, 0.1))  # the 09:00 run starts and is held
    w.now = at(9, 1, 0.1)
    sched.tick(w.now)
    gate.set()
    sched.wait_idle()
    runs = {r.slot: r for r in _rows(w)}
    assert runs[at(9, 1)].status == "skipped"
    assert "drift" in (runs[at(9, 1)].note or "")
    assert runs[at(9, 0)].status == "ok"
    assert "drift" in (runs[at(9, 0)].note or "")


def test_a_run_claimed_here_but_never_started_does_not_hold_back_its_task(
    world: Callable[..., World],
) -> None:
    """A claim committed whose answer was lost in an outage: the row says "running", under
    this very scheduler, and nothing runs it."""
    w = world(probe="every 1m")
    sched = w.scheduler()
    _claim_nine(w, sched.instance_id)
    w.at(sched, at(9, 1, 0.1))
    runs = {r.slot: r for r in _rows(w)}
    assert runs[at(9, 0)].status == "abandoned"
    assert "never started" in (runs[at(9, 0)].error or "")
    assert runs[at(9, 1)].status == "ok"


class Wrapping:
    """A runner that runs tasks through `inner`, and something of its own around them."""

    def __init__(self, inner: InlineRunner) -> None:
        self.inner = inner

    def run(self, *args: Any) -> Outcome:
        return self.inner.run(*args)

    def warm(self) -> None:
        pass

    def stop_all(self) -> None:
        pass


class Held(Wrapping):
    """A runner whose runs wait for `gate` before they run."""

    def __init__(self, inner: InlineRunner, gate: threading.Event) -> None:
        super().__init__(inner)
        self.gate = gate

    def run(self, *args: Any) -> Outcome:
        assert self.gate.wait(30), "the test never let the run go"
        return self.inner.run(*args)


def test_a_failing_task_is_recorded_failed_and_the_scheduler_goes_on(
    world: Callable[..., World],
) -> None:
    w = world(boom="every 1m", probe="every 1m")
    sched = w.scheduler()
    w.at(sched, at(9, 0, 0.1))
    w.at(sched, at(9, 1, 0.1))
    boom = [r for r in _rows(w, "boom")]
    assert [r.status for r in boom] == ["failed", "failed"]
    assert "failed on purpose" in (boom[0].error or "")
    assert len(w.ran("probe")) == 2


def test_a_dead_schedulers_running_run_is_abandoned_and_its_task_runs_again(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 1m")
    dead = w.scheduler()
    _claim_nine(w, dead.instance_id)
    store.beat(w.runtime.sessions, dead.instance_id, at(9, 0))
    survivor = w.scheduler()
    w.at(survivor, at(9, 1, 0.1))  # the dead one's heartbeat is 60 s old by now
    statuses = {r.slot: r.status for r in _rows(w)}
    assert statuses == {at(9, 0): "abandoned", at(9, 1): "ok"}


def _claim_nine(w: World, scheduler_id: str) -> None:
    """The probe's 09:00 slot claimed by `scheduler_id`, as if its run had started."""
    store.claim(
        w.runtime.sessions,
        task="probe",
        slot=at(9, 0),
        trigger="scheduled",
        scheduler_id=scheduler_id,
        now=at(9, 0),
    )


def _rows(w: World, task: str = "probe") -> list[Any]:
    with read_session(w.runtime.sessions) as session:
        return list(
            session.scalars(
                select(ScheduleRun).where(ScheduleRun.task == task).order_by(ScheduleRun.slot)
            )
        )


def test_slot_math_across_a_day_boundary() -> None:
    from echopilot.scheduler.spec import parse

    every6 = parse("every 6h")
    assert every6.latest(at(23, 59, day=25)) == at(18, day=25)
    assert every6.following(at(23, 59, day=25)) == at(0, day=26)
    daily = parse("daily 08:00")
    assert daily.latest(at(7, 59, 59)) == at(8, day=25)
    assert daily.latest(at(8)) == at(8)
    assert daily.interval(at(8)) == timedelta(days=1)


def test_the_default_clock_can_be_travelled_with_time_machine(
    world: Callable[..., World],
) -> None:
    """Nothing is handed a clock here: the scheduler and the status read the real one."""
    import time_machine

    from echopilot.scheduler import control

    w = world(probe="daily 08:00")
    with time_machine.travel(at(7, 0), tick=False) as traveller:
        sched = Scheduler(w.runtime, build(w.runtime.settings), InlineRunner(w.runtime))
        w.instances.append(sched)
        sched.start()
        traveller.move_to(at(8, 0, 0.5))
        sched.tick(sched.clock())
        sched.wait_idle()
        traveller.move_to(at(8, 0, 30))
        status = control.status(w.runtime)
    assert w.ran() == [at(8)]
    (probe,) = [row for row in status["schedule"] if row["task"] == "probe"]
    assert probe["last_run"]["status"] == "ok"
    assert probe["next_run"] == at(8, day=27).isoformat()
    assert status["heartbeat_age_s"] == 29.5  # its last beat was at the 08:00:00.5 tick


def _instance(w: World, instance_id: str, host: str, pid: int, heartbeat: datetime) -> None:
    with w.runtime.sessions.begin() as session:
        session.add(
            SchedulerInstance(
                id=instance_id, host=host, pid=pid, started_at=heartbeat, heartbeat_at=heartbeat
            )
        )


def _dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def test_a_run_whose_scheduler_process_died_on_this_host_is_reclaimed_at_once(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    pid = _dead_pid()
    _instance(w, f"{store.HOST}:{pid}:dead", store.HOST, pid, at(9, 0, 50))
    _claim_nine(w, f"{store.HOST}:{pid}:dead")
    # Its heartbeat is 10 s old, far from stale (60 s): only its death can free the task.
    assert w.at(sched, at(9, 1, 0.1)) == ["probe"]
    runs = {r.slot: r for r in _rows(w)}
    assert runs[at(9, 0)].status == "abandoned"
    assert f"its scheduler (pid {pid}) died" in (runs[at(9, 0)].error or "")
    assert runs[at(9, 0)].finished_at == at(9, 1, 0.1)
    assert runs[at(9, 0)].note is None, "not drift"
    assert runs[at(9, 1)].status == "ok"
    with read_session(w.runtime.sessions) as session:
        dead = session.get(SchedulerInstance, f"{store.HOST}:{pid}:dead")
        assert dead is not None and dead.stopped_at == at(9, 1, 0.1)


def test_a_silent_owner_elsewhere_is_waited_for_until_stale_and_it_is_not_drift(
    world: Callable[..., World],
) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    _instance(w, "elsewhere:123:silent", "elsewhere", 123, at(9, 0, 50))
    _claim_nine(w, "elsewhere:123:silent")
    assert w.at(sched, at(9, 1, 0.1)) == []
    runs = {r.slot: r for r in _rows(w)}
    assert runs[at(9, 1)].status == "skipped"
    assert runs[at(9, 1)].note == (
        "owner scheduler elsewhere:123:silent silent for 10 s; waiting for the stale time "
        "(ECHOPILOT_SCHEDULER_STALE_SECONDS=60) before reclaiming"
    )
    assert runs[at(9, 0)].status == "running" and runs[at(9, 0)].note is None, "not drift"
    # Once stale (60 s), its run is abandoned and the task runs at its next slot.
    assert w.at(sched, at(9, 2, 0.1)) == ["probe"]
    runs = {r.slot: r for r in _rows(w)}
    assert (runs[at(9, 0)].status, runs[at(9, 2)].status) == ("abandoned", "ok")


def test_an_owner_that_beats_is_drift(world: Callable[..., World]) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    _instance(w, "elsewhere:123:busy", "elsewhere", 123, at(9, 0, 58))
    _claim_nine(w, "elsewhere:123:busy")
    assert w.at(sched, at(9, 1, 0.1)) == []
    runs = {r.slot: r for r in _rows(w)}
    assert "(drift)" in (runs[at(9, 1)].note or "")
    assert "drift" in (runs[at(9, 0)].note or "")


def test_a_slot_claimed_late_after_a_stall_is_a_catchup_run(world: Callable[..., World]) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    assert w.at(sched, at(9, 0, 0.1)) == ["probe"]
    # The tick saw 09:01:00.1, but the database stalled it: the claim happened at 09:01:30.
    w.now = at(9, 1, 30)
    assert sched.tick(at(9, 1, 0.1)) == ["probe"]
    sched.wait_idle()
    assert [(slot, trigger) for slot, trigger, _ in w.runs()] == [
        (at(9, 0), "scheduled"),
        (at(9, 1), "catchup"),
    ]


# -- A run's end recorded through a full disk and a database outage ----------------------


def test_a_full_disk_under_the_event_logs_neither_strands_a_run_nor_tears_a_line(
    world: Callable[..., World], home: Path
) -> None:
    w = world(probe="every 1m")
    sched = w.scheduler()
    w.at(sched, at(9, 0, 0.1))
    logs = home / "logs"
    kept = (logs / "scheduler.log").read_text()
    with small_disk(logs, 1):
        # A log whose last page has 40 bytes left: the next line is cut short by the disk.
        (logs / "scheduler.log").write_text(kept + _pad_line(len(kept.encode()), room=40))
        filler = fill(logs / "filler.bin")
        for minute in (1, 2, 3):
            w.at(sched, at(9, minute, 0.1))
        filler.unlink()
        w.at(sched, at(9, 4, 0.1))
        lines = (logs / "scheduler.log").read_text().splitlines()
    # Before: the run's "started" line raised, and the claimed run stayed "running" for
    # ever, every later slot skipped as drift.
    assert [status for _, _, status in w.runs()] == ["ok"] * 5
    events = [json.loads(line) for line in lines]  # each line whole: no torn one
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["slot"] == at(9, 4).isoformat()


def _pad_line(size: int, room: int, page: int = 4096) -> str:
    """An event line that brings a file of `size` bytes to `room` bytes short of a page."""
    frame = '{"event": "pad", "pad": ""}\n'
    wanted = (page - room - size) % page
    if wanted < len(frame):
        wanted += page
    return frame.replace('""', '"' + "x" * (wanted - len(frame)) + '"')


def test_an_outcome_the_database_refuses_is_recorded_as_a_plain_failure(
    make_runtime: Callable[..., Runtime], postgres_url: str
) -> None:
    rt = make_runtime(
        task_modules=PROBES,
        schedules={**builtin_tasks_off(), "nul": "every 1m"},
        database_url=postgres_url,
    )
    w = World(rt)
    sched = w.scheduler()
    w.at(sched, at(9, 0, 0.1))
    w.at(sched, at(9, 1, 0.1))
    runs = _rows(w, "nul")
    assert [r.status for r in runs] == ["failed", "failed"]
    assert "its outcome could not be stored (DataError)" in (runs[0].error or "")


def _probe_every_minute(make_runtime: Callable[..., Runtime], pg: PostgresServer) -> Runtime:
    """The probe task every minute, on a PostgreSQL server the test may stop."""
    return make_runtime(
        task_modules=PROBES,
        schedules={**builtin_tasks_off(), "probe": "every 1m"},
        database_url=pg.url,
    )


def test_a_run_ending_in_a_database_outage_is_recorded_when_the_database_returns(
    make_runtime: Callable[..., Runtime],
) -> None:
    pg = PostgresServer().init().start()
    sched: Scheduler | None = None
    try:
        rt = _probe_every_minute(make_runtime, pg)
        w = World(rt)
        inline = InlineRunner(rt)
        outage: list[threading.Thread] = []

        class EndsInAnOutage(Wrapping):
            """Runs the task, then stops the database for two seconds as the run ends."""

            def run(self, *args: Any) -> Outcome:
                outcome = self.inner.run(*args)
                pg.stop("immediate")
                back = threading.Timer(2.0, pg.start)
                back.start()
                outage.append(back)
                return outcome

        sched = Scheduler(rt, build(rt.settings), inline, clock=lambda: w.now)
        sched.start(at(8, 59, 30))
        sched.runner = EndsInAnOutage(inline)
        w.at(sched, at(9, 0, 0.1))
        outage[0].join()
        sched.runner = inline
        w.at(sched, at(9, 1, 0.1))
        # Before: the 09:00 run stayed "running" under a live scheduler, so 09:01 and every
        # later slot were skipped as drift.
        assert w.runs() == [(at(9, 0), "scheduled", "ok"), (at(9, 1), "scheduled", "ok")]
    finally:
        if sched is not None:
            with contextlib.suppress(Exception):  # ends a retry that a failure left going
                sched.shutdown(0)
        pg.remove()


def test_a_database_outage_neither_spins_the_loop_nor_floods_the_log(
    make_runtime: Callable[..., Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    pg = PostgresServer().init().start()
    sched: Scheduler | None = None
    loop: threading.Thread | None = None
    try:
        rt = _probe_every_minute(make_runtime, pg)
        w = World(rt)
        sched = Scheduler(rt, build(rt.settings), InlineRunner(rt), clock=lambda: w.now)
        sched.start(at(8, 59, 30))
        pg.stop("immediate")
        w.now = at(9, 0, 0.1)  # a slot is due while nothing can be read
        caplog.clear()
        cpu = time.process_time()
        loop = threading.Thread(target=sched.run_forever, daemon=True)
        loop.start()
        time.sleep(3)
        spent = time.process_time() - cpu
        warnings = [
            r.getMessage() for r in caplog.records if r.name == "echopilot.scheduler.daemon"
        ]
        pg.start()
        deadline = time.monotonic() + 15
        while not w.ran() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Before: about a thousand ticks a second, each logging a warning, for the whole outage.
        said = sorted(m.split(";")[0] for m in warnings)
        assert said == ["cannot read the pause switch", "scheduler upkeep failed"], warnings[:5]
        assert spent < 1.0, f"{spent:.2f} s of CPU in a 3 s outage"
        assert w.runs() == [(at(9, 0), "scheduled", "ok")]
    finally:
        if sched is not None:
            sched.stop()
            if loop is not None:
                loop.join(5)
            with contextlib.suppress(Exception):
                sched.shutdown(0)
        pg.remove()
