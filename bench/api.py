"""Latency and throughput of the HTTP API on a large embedded database, against /health.

    .venv/bin/python bench/api.py                       # full run: 100,000 jobs, 20 s a read
    .venv/bin/python bench/api.py --jobs 3000 --seconds 3 --clients 10   # smoke run

One temporary folder (removed afterwards) holds an EchoPilot home with its embedded SQLite
database. `echopilot demo seed` fills it with about --jobs demo jobs over 30 days, then a
real `python -m echopilot serve` child process answers on a free local port, and each
endpoint gets --clients concurrent closed-loop clients for --seconds:

1. GET /health: the baseline, the framework's own overhead (routing, middleware, one
   `SELECT 1` and the queue depth);
2. GET /api/metrics-summary: the dashboard's KPI cards (SQL aggregates over 7 days);
3. GET /api/jobs?limit=50: the first page of the jobs list.

The load generator is `wrk` when it is installed (`apt-get install -y wrk`), else an
asyncio + httpx client in a separate process, so that it never shares the server's GIL.
The figures are printed, never asserted: the exit code is 1 only when the set-up failed
(seed, server start, an endpoint not answering 200). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

from common import machine
from echopilot.metrics import percentile

DAYS = 30
DEFAULT_JOBS = 100_000
DEFAULT_CLIENTS = 50
DEFAULT_SECONDS = 20.0
DEFAULT_TIMEOUT = 30.0
P99_TARGET_MS = 50.0
# A known 32-character key (the server refuses keys under 16 characters).
DASHBOARD_KEY = "bench-api-key-0123456789abcdefgh"
KEY_HEADER = "X-Dash-Key"
IDLE_REQUESTS = 20  # sequential requests per endpoint before its load run (warm-up too)
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    baseline: bool = False


ENDPOINTS = (
    Endpoint("GET /health", "/health", baseline=True),
    Endpoint("GET /api/metrics-summary", "/api/metrics-summary"),
    Endpoint("GET /api/jobs?limit=50", "/api/jobs?limit=50"),
)


@dataclass(frozen=True)
class SeedFigure:
    jobs: int
    attempts: int
    seconds: float
    db_bytes: int
    wal_bytes: int


@dataclass(frozen=True)
class LoadFigure:
    endpoint: Endpoint
    tool: str
    clients: int
    seconds: float  # measured duration, as the load generator reports it
    requests: int  # answered requests (2xx and others)
    errors: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float | None
    p99_ms: float | None
    idle_p50_ms: float  # one client, sequential, before the load run
    server_cpu_seconds: float  # server process CPU (user + system) during the load run
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_cpu_percent(self) -> float:
        return 100 * self.server_cpu_seconds / self.seconds if self.seconds > 0 else 0.0


class SetupError(RuntimeError):
    """The benchmark could not be set up (not a slow machine: something is broken)."""


# -- environment and processes ----------------------------------------------------------


def _child_env(home: Path) -> dict[str, str]:
    """The environment of the child `echopilot` processes: this process's, without any
    EchoPilot setting, pinned to `home` (embedded database and queue) and the known key."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECHOPILOT_", "OPENAI_")) and k != "DASHBOARD_KEY"
    }
    env.update(
        {
            "ECHOPILOT_HOME": str(home),
            "ECHOPILOT_AI_PROVIDER": "offline",
            "ECHOPILOT_LOG_LEVEL": "warning",
            "DASHBOARD_KEY": DASHBOARD_KEY,
        }
    )
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (its threads included), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)", field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def seed(env: dict[str, str], cwd: Path, home: Path, jobs: int) -> SeedFigure:
    """`echopilot demo seed` with enough jobs a day for about `jobs` jobs over DAYS days."""
    per_day = max(1, math.ceil(jobs / DAYS))
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "echopilot",
            "demo",
            "seed",
            "--jobs-per-day",
            str(per_day),
            "--days",
            str(DAYS),
            "--json",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SetupError(f"demo seed exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    db = home / "echopilot.db"
    wal = home / "echopilot.db-wal"
    return SeedFigure(
        jobs=int(result["jobs"]),
        attempts=int(result["attempts"]),
        seconds=seconds,
        db_bytes=db.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
    )


def start_server(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m echopilot serve --port <port>`, returned once /health answers 200."""
    out = (cwd / "serve.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "echopilot", "serve", "--port", str(port), "--quiet"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (cwd / "serve.out").read_text(errors="replace")[-2000:]
                raise SetupError(f"the server exited at start ({process.returncode}): {tail}")
            try:
                if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    stop_server(process)
    raise SetupError(f"the server did not answer /health within {START_TIMEOUT_SECONDS:.0f} s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)


# -- load generators --------------------------------------------------------------------


def idle_p50_ms(url: str, requests: int = IDLE_REQUESTS) -> float:
    """Median latency of `requests` sequential requests; SetupError unless all answer 200."""
    latencies = []
    with httpx.Client(headers={KEY_HEADER: DASHBOARD_KEY}, timeout=60.0) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SetupError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return percentile(latencies, 50) or 0.0


_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _WRK_UNITS_MS[match.group(2)]


@dataclass(frozen=True)
class RawLoad:
    seconds: float
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    notes: list[str] = field(default_factory=list)


def parse_wrk(output: str) -> RawLoad:
    """Figures from `wrk --latency` output."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    if total is None:
        raise SetupError(f"cannot read wrk's output:\n{output}")
    requests = int(total.group(1))
    seconds = _wrk_ms(total.group(2) + total.group(3)) / 1000
    percentiles = {
        int(m.group(1)): _wrk_ms(m.group(2))
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m|h))\s*$", output, re.MULTILINE)
    }
    errors = 0
    notes = []
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        connect, read, write, timeout = (int(g) for g in socket_errors.groups())
        errors += connect + read + write + timeout
        notes.append(
            f"socket errors: connect {connect}, read {read}, write {write}, timeout {timeout}"
        )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
        notes.append(f"non-2xx answers: {non_2xx.group(1)}")
    return RawLoad(seconds, requests, errors, percentiles.get(50), percentiles.get(99), notes)


def run_wrk(url: str, clients: int, seconds: float, timeout: float) -> RawLoad:
    threads = max(1, min(clients, _cpus()))
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout))}s",
            "--latency",
            "-H",
            f"{KEY_HEADER}: {DASHBOARD_KEY}",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


async def _httpx_load(
    url: str, clients: int, seconds: float, timeout: float
) -> tuple[list[float], int, float]:
    """`clients` closed-loop clients for `seconds`; (latencies of 2xx in ms, errors, elapsed)."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        headers={KEY_HEADER: DASHBOARD_KEY}, timeout=timeout, limits=limits
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if 200 <= response.status_code < 300:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def _httpx_child(url: str, clients: int, seconds: float, timeout: float, conn: Connection) -> None:
    try:
        conn.send(asyncio.run(_httpx_load(url, clients, seconds, timeout)))
    finally:
        conn.close()


def run_httpx(url: str, clients: int, seconds: float, timeout: float) -> RawLoad:
    """The asyncio + httpx load generator, in its own process (its own GIL)."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_httpx_child, args=(url, clients, seconds, timeout, sender))
    child.start()
    sender.close()
    try:
        latencies, errors, elapsed = receiver.recv()
    except EOFError:
        raise SetupError(f"the httpx load process died (exit code {child.exitcode})") from None
    finally:
        child.join(STOP_TIMEOUT_SECONDS)
    requests = len(latencies) + errors
    return RawLoad(elapsed, requests, errors, percentile(latencies, 50), percentile(latencies, 99))


# -- the run ----------------------------------------------------------------------------


def measure(
    endpoint: Endpoint,
    base_url: str,
    server_pid: int,
    tool: str,
    clients: int,
    seconds: float,
    timeout: float,
) -> LoadFigure:
    url = base_url + endpoint.path
    idle = idle_p50_ms(url)
    cpu_before = _cpu_seconds(server_pid)
    if tool == "wrk":
        raw = run_wrk(url, clients, seconds, timeout)
    else:
        raw = run_httpx(url, clients, seconds, timeout)
    cpu = _cpu_seconds(server_pid) - cpu_before
    return LoadFigure(
        endpoint=endpoint,
        tool=tool,
        clients=clients,
        seconds=raw.seconds,
        requests=raw.requests,
        errors=raw.errors,
        p50_ms=raw.p50_ms,
        p99_ms=raw.p99_ms,
        idle_p50_ms=idle,
        server_cpu_seconds=cpu,
        notes=raw.notes,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def print_report(seed_figure: SeedFigure, figures: list[LoadFigure], tool: str) -> None:
    print()
    print("EchoPilot API benchmark")
    print(f"machine: {machine()}")
    print(f"load generator: {tool}")
    print(
        f"database: {seed_figure.jobs} demo jobs, {seed_figure.attempts} attempts over {DAYS} "
        f"days; seeded in {seed_figure.seconds:.1f} s "
        f"({seed_figure.jobs / seed_figure.seconds:.0f} jobs/s); "
        f"echopilot.db {_mb(seed_figure.db_bytes)}, WAL {_mb(seed_figure.wal_bytes)}"
    )
    print()
    header = (
        f"  {'endpoint':<26}  {'clients':>7}  {'seconds':>7}  {'requests':>8}  {'req/s':>7}  "
        f"{'p50 ms':>7}  {'p99 ms':>7}  {'errors':>6}  {'p99/health':>10}  "
        f"{'1-client ms':>11}  {'server CPU':>10}"
    )
    print(header)
    baseline = next((f for f in figures if f.endpoint.baseline), None)
    for f in figures:
        relative = "baseline"
        if not f.endpoint.baseline:
            relative = "-"
            if baseline and baseline.p99_ms and f.p99_ms is not None:
                relative = f"{f.p99_ms / baseline.p99_ms:.1f}x"
        print(
            f"  {f.endpoint.label:<26}  {f.clients:>7}  {f.seconds:>7.1f}  {f.requests:>8}  "
            f"{f.rate:>7.1f}  {_ms(f.p50_ms):>7}  {_ms(f.p99_ms):>7}  {f.errors:>6}  "
            f"{relative:>10}  {f.idle_p50_ms:>11.1f}  {f.server_cpu_percent:>9.0f}%"
        )
    for f in figures:
        for note in f.notes:
            print(f"    {f.endpoint.label}: {note}")
    print()
    reads = [f for f in figures if not f.endpoint.baseline]
    verdicts = []
    for f in reads:
        met = f.p99_ms is not None and f.p99_ms < P99_TARGET_MS and f.errors == 0
        verdicts.append(met)
        print(
            f"  {f.endpoint.label:<26}  p99 {_ms(f.p99_ms)} ms at {f.clients} clients: "
            f"{'met' if met else 'missed'}"
        )
    overall = "met" if verdicts and all(verdicts) else "missed"
    print(f"target: p99 under {P99_TARGET_MS:.0f} ms for the two API reads: {overall}")
    print(
        "  (1-client ms: median of sequential requests before the load run; server CPU: the "
        "serve process's user + system time over the run, 100% = one core)"
    )


def _log_problems(home: Path, shown: int = 5) -> list[str]:
    """Warnings and errors the server logged (<home>/logs/api.log)."""
    path = home / "logs" / "api.log"
    if not path.exists():
        return []
    problems = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(line)
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            problems.append(f"{entry.get('level')}: {entry.get('event', line)}")
    if len(problems) > shown:
        return [*problems[:shown], f"... and {len(problems) - shown} more"]
    return problems


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="p50/p99 latency and requests/s of EchoPilot's API reads against /health "
        "(prints, never asserts, figures; exit code 1 only when the set-up failed)."
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"demo jobs to seed, about (default {DEFAULT_JOBS}; seeded as "
        f"ceil(jobs / {DAYS}) a day over {DAYS} days)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"concurrent closed-loop clients (connections) (default {DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"load duration per endpoint (default {DEFAULT_SECONDS:.0f})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"a request slower than this counts as an error (default {DEFAULT_TIMEOUT:.0f} s)",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator: wrk when installed (auto, the default), or asyncio + httpx",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.timeout <= 0:
        parser.error("--clients must be at least 1, --seconds and --timeout above 0")
    if not 1 <= math.ceil(args.jobs / DAYS) <= 20_000:
        parser.error(f"--jobs must be between 1 and {20_000 * DAYS}")
    if args.loadgen == "auto":
        args.loadgen = "wrk" if shutil.which("wrk") else "httpx"
    elif args.loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk), use --loadgen httpx")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="echopilot-bench-api-") as tmp:
        cwd = Path(tmp)  # no .env here: the children read only the environment we give
        home = cwd / "home"
        env = _child_env(home)
        try:
            print(f"  seeding about {args.jobs} demo jobs ...", end="", flush=True)
            seed_figure = seed(env, cwd, home, args.jobs)
            print(f" {seed_figure.seconds:.1f} s ({seed_figure.jobs} jobs)", flush=True)
            port = _free_port()
            server = start_server(env, cwd, port)
            figures: list[LoadFigure] = []
            try:
                for endpoint in ENDPOINTS:
                    print(
                        f"  {endpoint.label}: {args.clients} clients for {args.seconds:g} s "
                        f"({args.loadgen}) ...",
                        end="",
                        flush=True,
                    )
                    figure = measure(
                        endpoint,
                        f"http://127.0.0.1:{port}",
                        server.pid,
                        args.loadgen,
                        args.clients,
                        args.seconds,
                        args.timeout,
                    )
                    figures.append(figure)
                    print(f" {figure.rate:.1f} req/s, p99 {_ms(figure.p99_ms)} ms", flush=True)
            finally:
                stop_server(server)
        except SetupError as exc:
            print(f"\nFAILED: {exc}")
            return 1
        for problem in _log_problems(home):
            print(f"    server log {problem}")
        print_report(seed_figure, figures, args.loadgen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
