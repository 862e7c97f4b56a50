"""The API's blocking work (database reads and writes) on a bounded thread pool, and what
happens when more arrives than it can do.

A route does its blocking work in one call to `answer()`: a thread opens what it needs
(a connection, a session), does the work, closes it, and serialises the answer, all in one
hop. No connection is ever held by a request that waits for a thread, so the threads
(ECHOPILOT_API_THREADS, few: the work is mostly CPU under one GIL, and every busy thread
takes turns on it with the event loop that answers and refuses requests) never outnumber
the pooled connections and can never all wait on the pool.

Above capacity the API sheds load early and visibly rather than queueing into timeouts.
When every thread is busy, more than a BURST of requests wait, and they now wait over half
of QUEUE_WAIT_SECONDS for a thread (or ADMITTED_PER_THREAD requests a thread already
wait), a new request is answered 503 with `Retry-After` before anything else is done:
first thing in the middleware, and again on the way to the pool. A request that queued
behind such a queue and still waited longer than QUEUE_WAIT_SECONDS is answered 503 rather
than run late; one that found a thread free or a short queue runs however long the machine
took to start it (a dashboard's burst, a paused process, a starved CPU is no overload, and
refusing it would only make it retry). Both refusals are counted in /metrics as
`echopilot_api_shed_total`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter

# Requests waiting for or holding a thread, per thread, beyond which a new one is refused
# at once whatever the waits: a bound on what a flood can pile up in memory.
ADMITTED_PER_THREAD = 64
# Requests beyond the threads that are never refused, however long they wait: one
# dashboard load sends a dozen at once, and on a cold or slow machine they may queue a
# while; that is a burst to serve, not an overload (which piles up far more, and fast).
BURST = 16
QUEUE_WAIT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 1
# Paths refused when over capacity (Stripe delivers a refused webhook again later).
# /health and /metrics never are: a load balancer and Prometheus must see the server (and
# the refusals counted) most of all then.
SHED_PREFIXES = ("/api/", "/webhook/")
SHED_PREFIXES_BYTES = tuple(prefix.encode() for prefix in SHED_PREFIXES)
T = TypeVar("T")


class Overloaded(Exception):
    """The request was refused to keep the API answering: 503 with Retry-After."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the server is busy ({reason}); retry in {RETRY_AFTER_SECONDS} s")
        self.reason = reason


# The admission of the app this process serves, for the HTTP protocol (api/server.py) to
# refuse a request before any of the app runs.
current: Admission | None = None


class Admission:
    """Counts this process's requests that wait for or hold a thread, remembers how long
    the last one to get a thread had waited, and counts the refused ones.

    Only work on the pool counts: a request still sending its body holds nothing (the
    server's request deadline deals with slow clients)."""

    def __init__(self, registry: CollectorRegistry, threads: int) -> None:
        self.threads = threads
        self.in_flight = 0
        self.limit = ADMITTED_PER_THREAD * threads
        self.last_wait = 0.0  # seconds; written by pool threads, read by the event loop
        self.shed = Counter(
            "echopilot_api_shed",
            "Requests answered 503 because the API was over capacity",
            ["reason"],
            registry=registry,
        )
        self._shed_by_reason: dict[str, Any] = {}

    def full(self) -> bool:
        """Whether a new request would only wait too long: every thread is busy and the
        queue is long, by count or by how long requests now wait before a thread."""
        if self.in_flight < self.threads + BURST:
            return False  # a thread is free, or a burst: served (a remembered wait is past)
        return self.in_flight >= self.limit or self.last_wait > QUEUE_WAIT_SECONDS / 2

    def refuse(self, reason: str) -> None:
        counter = self._shed_by_reason.get(reason)
        if counter is None:
            counter = self._shed_by_reason[reason] = self.shed.labels(reason)
        counter.inc()


# Controls that block for seconds (starting a scheduler, running a task now, retention)
# take threads of their own: they must not hold up the short requests.
SLOW_THREADS = 4


def connections_needed(threads: int) -> int:
    """Pooled connections for an API process: one for each of its threads, fast or slow,
    and a few for the key guard's, which run on anyio's default threads."""
    return threads + SLOW_THREADS + 4


def limit_threads(app: Any, threads: int) -> None:
    """Give the API's work `threads` threads of its own, and the slow controls SLOW_THREADS
    (call in the server's event loop). Files (the dashboard's scripts) and the key guard
    keep anyio's default threads: a page load must not queue behind database work, nor
    database work behind a page load."""
    app.state.pool_threads = anyio.CapacityLimiter(threads)
    app.state.slow_threads = anyio.CapacityLimiter(SLOW_THREADS)


async def in_pool(request: Request, work: Callable[[], T], *, shed: bool = True) -> T:
    """Run `work` on the pool; raise Overloaded when the pool's queue is full or the work
    waited too long for a thread (unless `shed` is False)."""
    admission: Admission | None = getattr(request.app.state, "admission", None)
    limiter = getattr(request.app.state, "pool_threads", None)
    if admission is None or not shed:
        return await anyio.to_thread.run_sync(work, limiter=limiter)
    if admission.full():
        admission.refuse("busy")
        raise Overloaded("too many requests in progress")
    queued = time.monotonic()
    behind_others = admission.in_flight >= admission.threads + BURST

    def run() -> T:
        waited = time.monotonic() - queued
        if behind_others:
            admission.last_wait = waited
            if waited > QUEUE_WAIT_SECONDS:
                raise Overloaded("waited too long for a thread")
        return work()

    admission.in_flight += 1
    try:
        return await anyio.to_thread.run_sync(run, limiter=limiter)
    except Overloaded:
        admission.refuse("late")
        raise
    finally:
        admission.in_flight -= 1


async def answer(
    request: Request,
    work: Callable[[], Any],
    status_code: int = 200,
    *,
    slow: bool = False,
    shed: bool = True,
) -> Response:
    """The envelope of what `work` returns, built and serialised on the pool in one hop
    (`slow`: on the threads of the controls that block for seconds, never shed; `shed`
    False: never refused)."""

    def respond() -> bytes:
        envelope = {"ok": True, "data": work(), "error": None}
        return orjson.dumps(envelope, default=str, option=orjson.OPT_NON_STR_KEYS)

    if slow:
        limiter = getattr(request.app.state, "slow_threads", None)
        body = await anyio.to_thread.run_sync(respond, limiter=limiter)
    else:
        body = await in_pool(request, respond, shed=shed)
    return Response(body, status_code=status_code, media_type="application/json")
