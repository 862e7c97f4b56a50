"""Slot lateness, duplicates and missed slots of several schedulers sharing one database.

    .venv/bin/python bench/scheduler.py                  # full run: 120 s measured
    .venv/bin/python bench/scheduler.py --seconds 20     # smoke run

One temporary folder (removed afterwards) holds one SQLite database shared by every
scheduler and one EchoPilot home per scheduler (a home runs one scheduler, as a machine
does in production). --tasks bench tasks (bench/sched_tasks.py, through ECHOPILOT_TASK_MODULES) are
scheduled `every 1s` with the built-in tasks off, and --schedulers `python -m echopilot
scheduler run` processes run them. Once every scheduler has logged `scheduler_started`,
the window starts at the next whole second and lasts --seconds; a few seconds after it the
schedulers get SIGTERM. From every home's logs/scheduler.log and bench_runs.log (one line
per task body run) and the schedule_runs table:

- lateness of slot starts (p50, p99, max): `lateness_ms` of the `run_started` lines. The
  daemon computes it from the start of the tick that claimed the slot, not from the claim
  itself, so the task body's own start (slot to its line in bench_runs.log) is shown too;
- duplicates: (task, slot) pairs started or run more than once;
- missed: (task, slot) pairs of the window with no run at all; skipped slots are counted
  apart, with the reasons from the `note` column;
- CPU of each scheduler (/proc/<pid>/stat): the daemon itself, and its fork server with the
  task processes it forked (one process per run).

The figures are printed, never asserted. The exit code is 1 when the set-up failed or a
(task, slot) ran twice (a correctness problem, not a slow machine). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common import machine, percentile
from echopilot.config import load_settings
from echopilot.db.engine import read_session
from echopilot.db.models import ScheduleRun
from echopilot.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[1]
TASK_MODULE = "bench.sched_tasks"
# Keep in step with bench/sched_tasks.py.
TASK_COUNT = 20
RUNS_FILE = "bench_runs.log"
SCHEDULE = "every 1s"
INTERVAL_SECONDS = 1
BUILT_INS_OFF = ("RECOVERY_SWEEP", "RETENTION")

DEFAULT_SECONDS = 120
DEFAULT_SCHEDULERS = 3
SETTLE_SECONDS = 3.0  # after the window, so that its last slots can still be claimed
START_TIMEOUT_SECONDS = 120.0
SHUTDOWN_SECONDS = 20.0  # ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS (its default)
STOP_TIMEOUT_SECONDS = SHUTDOWN_SECONDS + 20.0
LATENESS_P99_TARGET_MS = 1000.0


class SetupError(RuntimeError):
    """The benchmark could not be set up (not a slow machine: something is broken)."""


def task_name(index: int) -> str:
    return f"bench_task_{index:02d}"


# -- processes --------------------------------------------------------------------------


def _child_env(home: Path, database_url: str, tasks: int) -> dict[str, str]:
    """This process's environment without any EchoPilot setting, pinned to `home` and the
    shared database, with the bench tasks every second and the built-in tasks off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECHOPILOT_", "OPENAI_")) and k != "DASHBOARD_KEY"
    }
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        {
            "ECHOPILOT_HOME": str(home),
            "ECHOPILOT_DATABASE_URL": database_url,
            "ECHOPILOT_AI_PROVIDER": "offline",
            "ECHOPILOT_TASK_MODULES": TASK_MODULE,
            "ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS": str(SHUTDOWN_SECONDS),
            "PYTHONPATH": os.pathsep.join(python_path),
        }
    )
    for name in BUILT_INS_OFF:
        env[f"ECHOPILOT_SCHEDULE_{name}"] = "off"
    for index in range(tasks):
        env[f"ECHOPILOT_SCHEDULE_{task_name(index).upper()}"] = SCHEDULE
    return env


@dataclass(frozen=True)
class Proc:
    ppid: int
    own: float  # user + system seconds of the process (all its threads)
    children: float  # user + system seconds of its children it has waited for


def _process_table() -> dict[int, Proc]:
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        table[int(entry.name)] = Proc(
            ppid=int(fields[1]),
            own=(int(fields[11]) + int(fields[12])) / ticks,
            children=(int(fields[13]) + int(fields[14])) / ticks,
        )
    return table


@dataclass(frozen=True)
class CpuSample:
    daemon: float  # the scheduler process itself
    tasks: float  # its descendants: the fork server and the task processes it forked


def cpu_samples(pids: Iterable[int]) -> dict[int, CpuSample]:
    table = _process_table()
    kids: dict[int, list[int]] = defaultdict(list)
    for pid, proc in table.items():
        kids[proc.ppid].append(pid)
    samples = {}
    for root in pids:
        if root not in table:
            samples[root] = CpuSample(0.0, 0.0)
            continue
        tasks = 0.0
        pending = list(kids[root])
        while pending:
            pid = pending.pop()
            tasks += table[pid].own + table[pid].children
            pending.extend(kids[pid])
        samples[root] = CpuSample(daemon=table[root].own, tasks=tasks)
    return samples


def _run_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "echopilot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"echopilot {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def start_schedulers(envs: list[dict[str, str]], cwd: Path) -> list[subprocess.Popen[bytes]]:
    processes = []
    for index, env in enumerate(envs):
        out = (cwd / f"scheduler-{index}.out").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "echopilot", "scheduler", "run"],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
        out.close()
    return processes


def read_log(path: Path) -> list[dict[str, Any]]:
    """The NDJSON lines of `path` (the scheduler's events and its logging share the file)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entries.append({"event": "unparsed line", "level": "error", "line": line})
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def wait_started(
    logs: list[Path], processes: list[subprocess.Popen[bytes]], cwd: Path
) -> dict[int, float]:
    """Wait until every process has logged `scheduler_started`; return {pid: seconds it
    took from now}."""
    began = time.monotonic()
    wanted = {p.pid for p in processes}
    started: dict[int, float] = {}
    deadline = began + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for index, process in enumerate(processes):
            if process.poll() is not None:
                tail = (cwd / f"scheduler-{index}.out").read_text(errors="replace")[-2000:]
                raise SetupError(f"scheduler {process.pid} exited ({process.returncode}): {tail}")
        for entry in (e for log in logs for e in read_log(log)):
            pid = entry.get("pid")
            if entry.get("event") == "scheduler_started" and pid in wanted and pid not in started:
                started[pid] = time.monotonic() - began
        if len(started) == len(wanted):
            return started
        time.sleep(0.1)
    raise SetupError(
        f"{len(started)} of {len(wanted)} schedulers started in {START_TIMEOUT_SECONDS:.0f} s"
    )


def stop_schedulers(processes: list[subprocess.Popen[bytes]]) -> dict[int, int | None]:
    """SIGTERM each (by its pid), wait; SIGKILL one that does not stop. {pid: exit code}."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes: dict[int, int | None] = {}
    for process in processes:
        try:
            codes[process.pid] = process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)
            codes[process.pid] = None  # had to be killed
    return codes


def _sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 1.0))


# -- analysis ---------------------------------------------------------------------------


def _epoch(slot: str | datetime) -> int:
    moment = datetime.fromisoformat(slot) if isinstance(slot, str) else slot
    return round(moment.timestamp())


def _generic(note: str) -> str:
    """A skip note with its run ids and timestamps blanked, so that equal reasons group."""
    note = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d)?", "<time>", note)
    return re.sub(r"\b\d+\b", "<n>", note)


@dataclass(frozen=True)
class DbRun:
    task: str
    slot: int
    status: str
    trigger: str
    note: str | None
    error: str | None
    pid: int


def read_runs(home: Path, database_url: str, tasks: list[str]) -> list[DbRun]:
    settings = load_settings(home=home, database_url=database_url, queue_url=None, _env_file=None)
    runtime = Runtime(settings, pool_size=1)
    try:
        with read_session(runtime.sessions) as session:
            return [
                DbRun(r.task, _epoch(r.slot), r.status, r.trigger, r.note, r.error, r.pid)
                for r in session.scalars(select(ScheduleRun).where(ScheduleRun.task.in_(tasks)))
            ]
    finally:
        runtime.close()


@dataclass(frozen=True)
class BodyRun:
    task: str
    slot: int
    pid: int
    ran_at: float


def read_body_runs(path: Path) -> list[BodyRun]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        task, slot, _trigger, pid, ran_at = line.split()
        runs.append(BodyRun(task, _epoch(slot), int(pid), float(ran_at)))
    return runs


@dataclass
class Analysis:
    expected: int
    ok: int
    claim_lateness_ms: list[float]
    body_lateness_ms: list[float]
    first_task_lateness_ms: list[float]  # task body lateness of the first task of the table
    last_task_lateness_ms: list[float]  # and of the last one
    duplicates_log: int
    duplicates_body: int
    duplicates_db: int
    missed: int
    missed_examples: list[str]
    missed_seconds: Counter[int]  # slot -> tasks missed at that slot
    skipped: int
    skip_reasons: Counter[str]
    other: Counter[str]  # failed, abandoned, running: a run, but not ok
    other_errors: Counter[str]
    catchup: int  # runs started more than 5 s after their slot (trigger catchup)
    runs_by_pid: Counter[int]
    skips_by_pid: Counter[int]
    stopped: list[dict[str, Any]] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return max(self.duplicates_log, self.duplicates_body, self.duplicates_db)


def analyse(
    homes: list[Path], database_url: str, tasks: list[str], first_slot: int, last_slot: int
) -> Analysis:
    window = range(first_slot, last_slot + 1)
    expected = {(task, slot) for task in tasks for slot in window}
    entries = [e for home in homes for e in read_log(home / "logs" / "scheduler.log")]
    started = [e for e in entries if e.get("event") == "run_started" and e.get("task") in tasks]
    db_runs = read_runs(homes[0], database_url, tasks)
    body_runs = [r for home in homes for r in read_body_runs(home / RUNS_FILE) if r.task in tasks]

    started_pairs = Counter((e["task"], _epoch(e["slot"])) for e in started)
    body_pairs = Counter((r.task, r.slot) for r in body_runs)
    db_pairs = Counter((r.task, r.slot) for r in db_runs)
    in_window = [e for e in started if (e["task"], _epoch(e["slot"])) in expected]
    claim = [float(e["lateness_ms"]) for e in in_window]
    body = [(r.ran_at - r.slot) * 1000 for r in body_runs if (r.task, r.slot) in expected]

    by_pair = {(r.task, r.slot): r for r in db_runs}
    ok = skipped = missed = 0
    skip_reasons: Counter[str] = Counter()
    other: Counter[str] = Counter()
    other_errors: Counter[str] = Counter()
    skips_by_pid: Counter[int] = Counter()
    missed_examples: list[str] = []
    missed_seconds: Counter[int] = Counter()
    for task, slot in sorted(expected, key=lambda pair: (pair[1], pair[0])):
        run = by_pair.get((task, slot))
        if run is None:
            missed += 1
            missed_seconds[slot] += 1
            if len(missed_examples) < 3:
                missed_examples.append(f"{task}@{datetime.fromtimestamp(slot).time()}")
        elif run.status == "ok":
            ok += 1
        elif run.status == "skipped":
            skipped += 1
            skip_reasons[_generic(run.note or "(no note)")] += 1
            skips_by_pid[run.pid] += 1
        else:
            other[run.status] += 1
            other_errors[_generic(run.error or "(no error)")] += 1
    problems = [
        f"{e.get('level')}: {e.get('event')}"
        for e in entries
        if e.get("level") in ("warning", "error", "critical")
    ]
    return Analysis(
        expected=len(expected),
        ok=ok,
        claim_lateness_ms=claim,
        body_lateness_ms=body,
        first_task_lateness_ms=[
            (r.ran_at - r.slot) * 1000
            for r in body_runs
            if r.task == tasks[0] and (r.task, r.slot) in expected
        ],
        last_task_lateness_ms=[
            (r.ran_at - r.slot) * 1000
            for r in body_runs
            if r.task == tasks[-1] and (r.task, r.slot) in expected
        ],
        duplicates_log=sum(1 for n in started_pairs.values() if n > 1),
        duplicates_body=sum(1 for n in body_pairs.values() if n > 1),
        duplicates_db=sum(1 for n in db_pairs.values() if n > 1),
        missed=missed,
        missed_examples=missed_examples,
        missed_seconds=missed_seconds,
        skipped=skipped,
        skip_reasons=skip_reasons,
        other=other,
        other_errors=other_errors,
        catchup=sum(1 for e in in_window if e.get("trigger") == "catchup"),
        runs_by_pid=Counter(int(e["pid"]) for e in in_window),
        skips_by_pid=skips_by_pid,
        stopped=[e for e in entries if e.get("event") == "scheduler_stopped"],
        log_problems=problems,
    )


# -- report -----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def print_report(
    args: argparse.Namespace,
    first_slot: int,
    result: Analysis,
    cpu_start: dict[int, CpuSample],
    cpu_end: dict[int, CpuSample],
    cpu_final: dict[int, CpuSample],
    startup: dict[int, float],
    exit_codes: dict[int, int | None],
) -> None:
    window = f"{datetime.fromtimestamp(first_slot).time()} + {args.seconds} s"
    claim = result.claim_lateness_ms
    body = result.body_lateness_ms
    p99 = percentile(claim, 99)
    print()
    print("EchoPilot scheduler benchmark")
    print(f"machine: {machine()}")
    print(
        f"{args.schedulers} `scheduler run` processes, {args.tasks} tasks `{SCHEDULE}`, one "
        f"embedded SQLite database; window {window} (local time): {result.expected} "
        "expected (task, slot) pairs"
    )
    print()
    print(f"  {'measure':<34}  {'value':>8}  {'target':>8}  {'verdict':>7}  note")

    def row(measure: str, value: str, target: str = "", verdict: str = "", note: str = "") -> None:
        print(f"  {measure:<34}  {value:>8}  {target:>8}  {verdict:>7}  {note}".rstrip())

    row(
        "slot start lateness p50 ms",
        _ms(percentile(claim, 50)),
        note="lateness_ms of run_started: slot to the start of the tick that claimed it",
    )
    row(
        "slot start lateness p99 ms",
        _ms(p99),
        f"< {LATENESS_P99_TARGET_MS:.0f}",
        _verdict(p99 is not None and p99 < LATENESS_P99_TARGET_MS),
        f"{len(claim)} starts in the window",
    )
    row("slot start lateness max ms", _ms(max(claim) if claim else None))
    row(
        "task body lateness p50/p99/max ms",
        "",
        note=f"{_ms(percentile(body, 50))} / {_ms(percentile(body, 99))} / "
        f"{_ms(max(body) if body else None)} (slot to the task's line in {RUNS_FILE})",
    )
    row(
        "task body lateness p50 first/last",
        "",
        note=f"{_ms(percentile(result.first_task_lateness_ms, 50))} / "
        f"{_ms(percentile(result.last_task_lateness_ms, 50))} ms "
        f"({task_name(0)} / {task_name(args.tasks - 1)}: a tick claims the tasks in turn)",
    )
    row("runs ok", str(result.ok), note=f"of {result.expected} expected")
    row(
        "duplicates",
        str(result.duplicates),
        "0",
        _verdict(result.duplicates == 0),
        f"(task, slot) started twice: log {result.duplicates_log}, ran twice: "
        f"{RUNS_FILE} {result.duplicates_body}, rows: table {result.duplicates_db}",
    )
    missed_note = "no run and no row at all"
    if result.missed_seconds:
        every = sum(1 for n in result.missed_seconds.values() if n == args.tasks)
        missed_note += (
            f", at {len(result.missed_seconds)} distinct slots ({every} with every task "
            f"missed), e.g. {', '.join(result.missed_examples)}"
        )
    row("missed", str(result.missed), "0", _verdict(result.missed == 0), missed_note)
    reasons = "; ".join(f"{n} x {reason!r}" for reason, n in result.skip_reasons.most_common(4))
    row("skipped", str(result.skipped), note=reasons or "none")
    if result.other:
        errors = "; ".join(f"{n} x {e!r}" for e, n in result.other_errors.most_common(3))
        row(
            "run, not ok",
            str(sum(result.other.values())),
            note=", ".join(f"{s} {n}" for s, n in sorted(result.other.items())) + f": {errors}",
        )
    row("catch-up starts (> 5 s late)", str(result.catchup))

    print()
    print(
        f"CPU over the {args.seconds} s window (/proc/<pid>/stat utime+stime; 'tasks' is the "
        "fork server and the task processes it forked, one a run)"
    )
    print(
        f"  {'scheduler pid':>13}  {'started in':>10}  {'runs':>5}  {'skips':>5}  "
        f"{'daemon s':>8}  {'tasks s':>7}  {'% of a core':>11}  {'CPU ms/run':>10}  "
        f"{'total s':>7}  {'exit':>4}"
    )
    runs_total = skips_total = 0
    daemon_total = tasks_total = whole_total = 0.0
    for pid in sorted(cpu_end):
        daemon = cpu_end[pid].daemon - cpu_start[pid].daemon
        tasks = cpu_end[pid].tasks - cpu_start[pid].tasks
        runs = result.runs_by_pid[pid]
        skips = result.skips_by_pid[pid]
        whole = cpu_final[pid].daemon + cpu_final[pid].tasks
        per_run = f"{1000 * (daemon + tasks) / runs:.0f}" if runs else "-"
        code = exit_codes.get(pid)
        print(
            f"  {pid:>13}  {startup[pid]:>9.1f}s  {runs:>5}  {skips:>5}  {daemon:>8.1f}  "
            f"{tasks:>7.1f}  {100 * (daemon + tasks) / args.seconds:>10.0f}%  {per_run:>10}  "
            f"{whole:>7.1f}  {'kill' if code is None else code:>4}"
        )
        runs_total += runs
        skips_total += skips
        daemon_total += daemon
        tasks_total += tasks
        whole_total += whole
    used = daemon_total + tasks_total
    per_run_total = f"{1000 * used / runs_total:.0f}" if runs_total else "-"
    print(
        f"  {'all':>13}  {'':>10}  {runs_total:>5}  {skips_total:>5}  {daemon_total:>8.1f}  "
        f"{tasks_total:>7.1f}  {100 * used / args.seconds:>10.0f}%  {per_run_total:>10}  "
        f"{whole_total:>7.1f}"
    )
    print(
        "  (runs/skips: slots of the window each process started or recorded as skipped; "
        "total s: CPU since the process started, measured before SIGTERM)"
    )
    abandoned = [a for e in result.stopped for a in e.get("abandoned") or []]
    if abandoned:
        print(f"  runs abandoned at shutdown: {len(abandoned)}")
    for problem in result.log_problems[:5]:
        print(f"    log {problem}")
    if len(result.log_problems) > 5:
        print(f"    log ... and {len(result.log_problems) - 5} more warnings or errors")


# -- the run ----------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Slot lateness, duplicates and missed slots of several EchoPilot "
        "schedulers on one SQLite database (prints, never asserts, figures; exit code 1 "
        "when the set-up failed or a slot ran twice)."
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=DEFAULT_SECONDS,
        help=f"measured window in seconds (default {DEFAULT_SECONDS})",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=TASK_COUNT,
        help=f"bench tasks scheduled `{SCHEDULE}` (1 to {TASK_COUNT}, default {TASK_COUNT})",
    )
    parser.add_argument(
        "--schedulers",
        type=int,
        default=DEFAULT_SCHEDULERS,
        help=f"`scheduler run` processes (default {DEFAULT_SCHEDULERS})",
    )
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.schedulers < 1 or not 1 <= args.tasks <= TASK_COUNT:
        parser.error(f"--seconds and --schedulers must be at least 1, --tasks 1 to {TASK_COUNT}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    print(f"machine: {machine()}", flush=True)
    tasks = [task_name(i) for i in range(args.tasks)]
    with tempfile.TemporaryDirectory(prefix="echopilot-bench-scheduler-") as tmp:
        cwd = Path(tmp)  # no .env here: the children read only the environment we give
        database_url = f"sqlite:///{cwd / 'shared.db'}"
        homes = [cwd / f"home-{index}" for index in range(args.schedulers)]
        envs = [_child_env(home, database_url, args.tasks) for home in homes]
        logs = [home / "logs" / "scheduler.log" for home in homes]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            # Migrate once and check the schedule table before the schedulers race to it.
            _run_cli(envs[0], cwd, "scheduler", "status", "--json")
            print(f"  starting {args.schedulers} schedulers ...", end="", flush=True)
            began = time.perf_counter()
            processes = start_schedulers(envs, cwd)
            startup = wait_started(logs, processes, cwd)
            print(f" {time.perf_counter() - began:.1f} s", flush=True)

            first_slot = math.floor(time.time()) + 1
            last_slot = first_slot + args.seconds - 1
            _sleep_until(first_slot)
            pids = [p.pid for p in processes]
            cpu_start = cpu_samples(pids)
            print(f"  measuring {args.seconds} s ...", end="", flush=True)
            _sleep_until(last_slot + INTERVAL_SECONDS)
            cpu_end = cpu_samples(pids)  # the window's CPU, without the settle time
            print(" done", flush=True)
            _sleep_until(last_slot + INTERVAL_SECONDS + SETTLE_SECONDS)
            cpu_final = cpu_samples(pids)  # CPU since each process started, before SIGTERM
            print("  stopping the schedulers (SIGTERM) ...", end="", flush=True)
            began = time.perf_counter()
            exit_codes = stop_schedulers(processes)
            print(f" {time.perf_counter() - began:.1f} s", flush=True)
        except SetupError as exc:
            print(f"\nFAILED: {exc}")
            return 1
        finally:
            stop_schedulers(processes)  # no-op unless set-up failed with some still running
        result = analyse(homes, database_url, tasks, first_slot, last_slot)
        print_report(args, first_slot, result, cpu_start, cpu_end, cpu_final, startup, exit_codes)
    if result.duplicates:
        print("\nFAILED: some (task, slot) pairs ran more than once")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
