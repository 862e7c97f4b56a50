"""Overload (issue 8): above its capacity the API sheds load visibly and keeps answering.

Against a real `echopilot serve` on a seeded database, each test first measures the
endpoint's capacity with a short closed loop, then sends an open loop at OVERLOAD_FACTOR
times that capacity for OVERLOAD_SECONDS (bench/loadgen.py: requests start on schedule
whatever the server does, latency counted from the scheduled time). What a user cares about:

- every request is answered, 200 or 503, within ANSWER_WITHIN_S (no timeout, no socket
  error, no other status);
- the server keeps doing useful work: the 200 answers of every second after the first two
  stay above a floor (a stall answers almost none), and over the run they reach a generous
  share of the capacity (bench/api.py reports the 80 % target; a loaded 2-core CI machine
  must not make this test flaky);
- a 503 carries Retry-After and the JSON envelope;
- api.log has no pool time-out and no traceback, and /health answers right after the load.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from bench.loadgen import LoadResult, closed_loop, open_loop
from prometheus_client import CollectorRegistry

from echopilot.api import pool
from echopilot.config import Settings
from tests.api_support import TEST_KEY, Child, running
from tests.conftest import run_cli, wait_for

pytestmark = pytest.mark.slow

OVERLOAD_SECONDS = 15.0  # the issue asks 30 s; 15 s shows a stall as clearly, in half the time
OVERLOAD_FACTOR = 3.0
CAPACITY_SECONDS = 4.0
CAPACITY_CONNECTIONS = 16  # enough to keep one server process busy
ANSWER_WITHIN_S = 2.0
# The generator waits longer than ANSWER_WITHIN_S, so a late answer is measured, not cut off.
GENERATOR_TIMEOUT_S = 5.0
MIN_SHARE_OF_CAPACITY = 0.4  # 200 answers a second over the run, against the capacity
STALL_FLOOR_SHARE = 0.1  # no second after the first two below this share of the capacity
SEED_DAYS = 30
# About 3,000 jobs (2 s to seed): full pages for the listing. The summary's aggregates cost
# less than on a large database; that changes the capacity measured, not the behaviour above it.
SEED_JOBS_PER_DAY = 100
KEY = {"X-Dash-Key": TEST_KEY}
LOG_PROBLEMS = ("QueuePool limit", "Traceback", "IllegalStateChangeError")


@pytest.fixture
def seeded(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(ai_provider="offline")
    seeded = run_cli(
        settings,
        "demo",
        "seed",
        "--days",
        str(SEED_DAYS),
        "--jobs-per-day",
        str(SEED_JOBS_PER_DAY),
        "--json",
        check=True,
    )
    assert json.loads(seeded.stdout)["jobs"] > 1000, seeded.stdout
    return settings


@contextmanager
def serving(settings: Settings, **env: str) -> Iterator[Child]:
    with running(settings, "serve", env={"DASHBOARD_KEY": TEST_KEY, **env}) as child:
        yield child


def capacity(url: str) -> float:
    """200 answers a second of a closed loop, its first (warm-up) second left out."""
    result = closed_loop(url, CAPACITY_CONNECTIONS, CAPACITY_SECONDS, KEY, GENERATOR_TIMEOUT_S)
    report = "\n".join(result.lines())
    assert result.timeouts == 0 and result.errors == 0, f"the closed loop failed:\n{report}"
    steady = result.ok_per_second[1 : int(CAPACITY_SECONDS)]
    measured = sum(steady) / len(steady)
    assert measured >= 5, f"no capacity to speak of:\n{report}"
    return measured


def log_problems(settings: Settings, child: Child) -> list[str]:
    api_log = settings.home / "logs" / "api.log"
    text = (api_log.read_text(errors="replace") if api_log.exists() else "") + child.text()
    return [line[:300] for line in text.splitlines() if any(p in line for p in LOG_PROBLEMS)]


def assert_never_stalls(url: str, settings: Settings, child: Child) -> None:
    measured = capacity(url)
    result: LoadResult = open_loop(
        url, OVERLOAD_FACTOR * measured, OVERLOAD_SECONDS, KEY, GENERATOR_TIMEOUT_S
    )
    report = f"capacity {measured:.1f} req/s (closed loop); then\n" + "\n".join(result.lines())

    # Every request answered, 200 or 503, in time.
    assert result.timeouts == 0 and result.errors == 0, f"unanswered requests:\n{report}"
    assert set(result.statuses) <= {200, 503}, f"answers other than 200 and 503:\n{report}"
    assert result.answered == result.sent, report
    assert result.longest_wait_s <= ANSWER_WITHIN_S, f"answers later than 2 s:\n{report}"

    # Useful work all along: no stalled second, and a fair share of the capacity overall.
    steady = result.steady_ok_per_second(skip=2)
    floor = STALL_FLOOR_SHARE * measured
    assert min(steady) >= floor, f"a second with under {floor:.0f} answers (a stall):\n{report}"
    share = MIN_SHARE_OF_CAPACITY * measured
    assert result.ok_rate >= share, f"under {share:.0f} answers of 200 a second:\n{report}"

    # Load shed visibly: 503 with Retry-After, in the envelope.
    assert result.missing_retry_after == 0, f"503 without Retry-After:\n{report}"
    assert result.not_envelope == {}, f"503 not in the JSON error envelope:\n{report}"

    # Nothing went wrong inside, and the server serves at once afterwards.
    assert log_problems(settings, child) == [], report
    wait_for(lambda: healthy(child), timeout=5)
    # The refusals are counted where an operator looks.
    shed = shed_total(child)
    assert shed >= result.statuses.get(503, 0) * 0.99, (shed, report)


def shed_total(child: Child) -> float:
    text = httpx.get(child.url + "/metrics", headers=KEY, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("echopilot_api_shed_total{")
    )


def healthy(child: Child) -> bool:
    try:
        return httpx.get(child.url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_jobs_listing_never_stalls_at_3x_its_capacity(seeded: Settings) -> None:
    with serving(seeded) as child:
        assert_never_stalls(child.url + "/api/jobs?limit=50", seeded, child)


def test_the_uncached_metrics_summary_never_stalls_at_3x_its_capacity(seeded: Settings) -> None:
    with serving(seeded, ECHOPILOT_METRICS_CACHE_SECONDS="0") as child:
        assert_never_stalls(child.url + "/api/metrics-summary", seeded, child)


def test_the_load_generator_shows_a_stalled_server_as_such() -> None:
    """A server that accepts connections and never answers: every request is sent on
    schedule, and each is counted as a time-out after waiting its whole timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conns.append(conn)  # read nothing, answer nothing: a stalled server
        for conn in conns:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = open_loop(f"http://127.0.0.1:{port}/", 20, 2, timeout=1.0)
        assert time.monotonic() - started < 30
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert result.sent == 40
    assert result.timeouts == 40 and result.answered == 0
    assert result.ok_per_second == [0, 0]
    assert 0.99 <= result.longest_wait_s < 1.5


def raw_exchange(
    port: int, request: bytes, then: bytes | None = None, *, head: bool = False
) -> tuple[bytes, bytes]:
    """Send `request` on a fresh connection and read its answer (`head`: an answer to HEAD,
    which has no body); then, when given, send `then` on the same connection and read that
    answer too (b"" if the connection was closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        first = _read_answer(sock, head=head)
        if then is None:
            return first, b""
        try:
            sock.sendall(then)
            return first, _read_answer(sock)
        except OSError:
            return first, b""


def _read_answer(sock: socket.socket, *, head: bool = False) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.lower().split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
    while not head and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return top + b"\r\n\r\n" + body


def test_a_refusal_is_correct_http_for_every_kind_of_request(
    make_settings: Callable[..., Settings],
) -> None:
    """With the API's one thread held by a write waiting on a locked database and its queue
    full, new requests are refused by the server itself: a GET keeps its connection for
    the next request, a HEAD gets no body, HTTP/1.0 is closed, a POST with a body is
    answered once its body is read; every refusal is the 503 envelope with Retry-After."""
    import sqlite3

    settings = make_settings(ai_provider="offline", api_threads=1)
    # The write must still wait when a loaded machine is slow to send what follows (8 s was
    # not always enough on CI); the lock's release below ends the wait at once.
    with serving(settings, ECHOPILOT_API_THREADS="1", ECHOPILOT_SQLITE_BUSY_SECONDS="60") as child:
        holder = sqlite3.connect(settings.home / "echopilot.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        job = {"name": "n", "task_type": "summary", "input": "text"}
        waiting: list[threading.Thread] = []
        try:
            # One write holds the only thread; 64 reads fill its queue.
            blocked = threading.Thread(
                target=lambda: httpx.post(
                    child.url + "/api/jobs", json=job, headers=KEY, timeout=30
                )
            )
            blocked.start()
            time.sleep(0.5)
            for _ in range(64):
                reader = threading.Thread(
                    target=lambda: httpx.get(child.url + "/api/jobs", headers=KEY, timeout=30)
                )
                reader.start()
                waiting.append(reader)
            time.sleep(1.0)
            key = f"X-Dash-Key: {TEST_KEY}\r\n".encode()
            get = b"GET /api/jobs HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n"
            refused, after = raw_exchange(child.port, get, then=get)
            head_only, _ = raw_exchange(
                child.port, b"HEAD /api/jobs HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n", head=True
            )
            old, closed = raw_exchange(
                child.port, b"GET /api/jobs HTTP/1.0\r\n" + key + b"\r\n", then=get
            )
            body = json.dumps(job).encode()
            post = (
                b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + key
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            posted, _ = raw_exchange(child.port, post)
        finally:
            holder.rollback()
            holder.close()
            blocked.join(30)
            for reader in waiting:
                reader.join(30)
    for answer in (refused, after, head_only, old, posted):
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 1" in answer.lower(), answer[:400]
    for answer in (refused, after, old, posted):
        envelope = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert envelope["ok"] is False and envelope["error"]["code"] == "overloaded"
    assert head_only.partition(b"\r\n\r\n")[2] == b"", "no body for HEAD"
    assert b"connection: close" in old.lower()
    assert closed == b"", "an HTTP/1.0 connection is closed after the refusal"


def _wait_for_thread(held_by_others: int) -> str:
    """What a request gets when its thread starts 0.7 s late (QUEUE_WAIT_SECONDS is 0.5):
    the one thread is held from outside while `held_by_others` requests are counted as
    waiting for or holding it."""

    async def check() -> str:
        admission = pool.Admission(CollectorRegistry(), threads=1)
        admission.in_flight = held_by_others
        limiter = anyio.CapacityLimiter(1)
        request: Any = SimpleNamespace(
            app=SimpleNamespace(state=SimpleNamespace(admission=admission, pool_threads=limiter))
        )
        outcome = "not run"

        async def ask() -> None:
            nonlocal outcome
            try:
                outcome = await pool.in_pool(request, lambda: "answered")
            except pool.Overloaded as refused:
                outcome = f"refused: {refused.reason}"

        async with anyio.create_task_group() as group:
            await limiter.acquire()  # a paused machine, or another request, holds the thread
            group.start_soon(ask)
            await anyio.sleep(0.7)
            limiter.release()
        return outcome

    return anyio.run(check)


def test_a_lone_request_or_a_burst_is_never_refused_for_a_late_thread() -> None:
    # The wait was the machine's (or a dashboard's dozen requests at once), not an overload.
    assert _wait_for_thread(held_by_others=0) == "answered"
    assert _wait_for_thread(held_by_others=pool.BURST) == "answered"


def test_a_request_queued_behind_a_long_queue_is_refused_when_late() -> None:
    waiting = 1 + pool.BURST  # the one thread's request and a burst's worth more
    assert _wait_for_thread(held_by_others=waiting) == "refused: waited too long for a thread"
