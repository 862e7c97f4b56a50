"""An open-loop HTTP/1.1 load generator (stdlib only), for overload runs against one server.

    .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/health --rate 500 --seconds 10
    .venv/bin/python bench/loadgen.py URL --rate 300 --seconds 15 -H "X-Dash-Key: ..."
    .venv/bin/python bench/loadgen.py URL --closed 32 --seconds 5       # closed loop
    .venv/bin/python bench/loadgen.py URL --rate 300 --seconds 15 --json  # LoadResult as JSON

Open loop: request i is started at t0 + i / rate whatever the server does, so a server that
stalls keeps receiving requests, as it would from real users. Its latency is counted from
that scheduled time, not from the moment a connection was free to send it: the time a request
waits for a connection (or behind a late generator) is part of its latency, so a stall is
never hidden by the generator slowing down (no "coordinated omission").

Requests go over a pool of keep-alive connections (one request at a time on each, no
pipelining) that grows as needed up to --max-connections; a request that finds no idle
connection and the pool at its cap waits for one. Each request has --timeout seconds from its
scheduled time to be answered; then it counts as a timeout and its connection is closed.

Closed loop (--closed K): K connections each sending its next request when the previous one
is answered, for the server's capacity (requests/s) on the same client.

`open_loop()` and `closed_loop()` run the generator in a child process of its own (a plain
`python bench/loadgen.py --spec -`), so that it never shares a GIL with the caller or with a
server the caller runs in-process; they return a LoadResult. bench/api.py and
tests/test_api_overload.py use them; bench/README.md says how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 2000
# A connection idle for longer is closed, not reused: EchoPilot's server closes idle
# keep-alive connections after 5 s, and a request written as the server closes its end would
# fail for a reason that has nothing to do with load.
IDLE_REUSE_SECONDS = 2.0
START_DELAY = 0.1  # t0 = now + this: the first requests are not late because of set-up
ERROR_PAUSE = 0.01  # a closed-loop client pauses after a socket error (no spinning)
ANSWER_KINDS = 20  # kinds of non-200 answers counted apart (the rest: "<status> (other)")
BODY_CHARS = 500  # of a sample body
MAX_HEAD_BYTES = 64 * 1024
NO_BODY_STATUSES = (204, 304)


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds (None when there was nothing to measure)."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Percentiles:
        if not values_ms:
            return cls()
        ordered = sorted(values_ms)

        def rank(p: float) -> float:  # nearest rank
            return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

        return cls(len(ordered), rank(50), rank(90), rank(99), ordered[-1])


@dataclass(frozen=True)
class LoadResult:
    """What one run of the generator saw. Seconds of the run are counted from t0 (the first
    request's scheduled time); an answer belongs to the second in which it arrived."""

    url: str
    mode: str  # "open" or "closed"
    rate: float | None  # requests/s scheduled (open loop)
    connections: int | None  # closed-loop clients
    seconds: float  # the sending window
    timeout: float  # per request, from its scheduled time
    sent: int  # requests scheduled (open loop: int(rate * seconds))
    statuses: dict[int, int]  # answers by HTTP status
    timeouts: int  # no answer within `timeout` of the scheduled time
    errors: int  # connection refused, reset, closed before a whole answer
    error_kinds: dict[str, int]
    all_ms: Percentiles  # latency of every answer (any status)
    ok_ms: Percentiles  # latency of the 200 answers
    ok_per_second: list[int]  # 200 answers that arrived in each second of the window
    answered_per_second: list[int]  # answers of any status, likewise
    late_answers: int  # answers that arrived after the window (the open loop's drain)
    longest_wait_s: float  # the longest any request waited, answered or not (timeouts too)
    elapsed_s: float  # t0 to the last answer or give-up
    connections_opened: int
    max_open_connections: int
    send_lag_p99_ms: float  # how late the generator started requests (open loop)
    send_lag_max_ms: float
    generator_cpu_s: float  # the generator process's CPU time (user + system)
    missing_retry_after: int  # 503 answers without a Retry-After header
    # Non-200 answers by kind: "<status> <error code>" when the body is EchoPilot's error
    # envelope, else "<status> <start of the body>"; with one sample body a kind.
    answer_kinds: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    # Non-200 answers by status whose body is not the envelope
    # {"ok": false, "data": null, "error": {"code": str, "message": str, ...}}.
    not_envelope: dict[int, int] = field(default_factory=dict)

    # Derived figures

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def shed(self) -> int:
        return self.statuses.get(503, 0)

    @property
    def other(self) -> int:
        """Answers that are neither 200 nor 503."""
        return sum(n for status, n in self.statuses.items() if status not in (200, 503))

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok_rate(self) -> float:
        """200 answers a second over the window (answers of the drain left out)."""
        return sum(self.ok_per_second) / self.seconds if self.seconds > 0 else 0.0

    def steady_ok_per_second(self, skip: int = 2) -> list[int]:
        """ok_per_second without the first `skip` seconds (start-up) and without a last,
        partial second of the window."""
        whole = int(self.seconds + 1e-9)
        return self.ok_per_second[skip:whole]

    @property
    def generator_cpu_percent(self) -> float:
        return 100 * self.generator_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        data: dict[str, Any] = json.loads(text)
        data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
        data["not_envelope"] = {int(k): v for k, v in data["not_envelope"].items()}
        data["all_ms"] = Percentiles(**data["all_ms"])
        data["ok_ms"] = Percentiles(**data["ok_ms"])
        return cls(**data)

    def lines(self) -> list[str]:
        """The figures, for people."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        def pct(p: Percentiles) -> str:
            return (
                f"p50 {ms(p.p50)} / p90 {ms(p.p90)} / p99 {ms(p.p99)} / max {ms(p.max)} ms "
                f"({p.count})"
            )

        if self.mode == "open":
            load = f"open loop, {self.rate:g} req/s for {self.seconds:g} s"
        else:
            load = f"closed loop, {self.connections} connections for {self.seconds:g} s"
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())) or "none"
        steady = self.steady_ok_per_second()
        out = [
            f"{self.url}: {load}, timeout {self.timeout:g} s",
            f"  sent {self.sent}; answered {self.answered} ({statuses}); "
            f"timeouts {self.timeouts}; errors {self.errors}",
            f"  all answers: {pct(self.all_ms)}",
            f"  200 answers: {pct(self.ok_ms)}",
            f"  200/s over the window: {self.ok_rate:.1f}; per second: "
            + " ".join(str(n) for n in self.ok_per_second),
        ]
        if steady:
            out.append(
                f"  200/s after the first 2 s: min {min(steady)}, "
                f"mean {sum(steady) / len(steady):.1f}"
            )
        out.append(
            f"  longest wait {self.longest_wait_s:.2f} s; answers after the window "
            f"{self.late_answers}; last answer at {self.elapsed_s:.2f} s"
        )
        out.append(
            f"  connections opened {self.connections_opened}, at most "
            f"{self.max_open_connections} open; generator: send lag p99 "
            f"{self.send_lag_p99_ms:.1f} / max {self.send_lag_max_ms:.1f} ms, CPU "
            f"{self.generator_cpu_percent:.0f}% of a core"
        )
        if self.shed:
            out.append(f"  503 answers without Retry-After: {self.missing_retry_after}")
        for kind, count in sorted(self.error_kinds.items(), key=lambda kv: -kv[1]):
            out.append(f"  error {kind}: {count}")
        for kind, count in sorted(self.answer_kinds.items(), key=lambda kv: -kv[1])[:5]:
            out.append(f"  answer {kind} x{count}: {self.samples.get(kind, '')[:200]}")
        for status, count in sorted(self.not_envelope.items()):
            out.append(f"  {status} answers not in the JSON error envelope: {count}")
        return out


# -- the HTTP client ----------------------------------------------------------------------


class ProtocolError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    close: bool  # the server will close the connection after this answer


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[_Answer] | None = None
        self.closed = False
        self.idle_since = 0.0

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return  # unasked-for bytes: the next request's parse will fail on them
        try:
            answer = self._parse()
        except ProtocolError as exc:
            self.waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            self.waiter.set_result(answer)

    def eof_received(self) -> bool:
        # An answer without a length ends at the close; anything else is cut short.
        self._finish_at_close()
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish_at_close(exc)
        self.closed = True
        self.pool.lost(self)

    # used by the generator

    def request(self, payload: bytes) -> asyncio.Future[_Answer]:
        assert self.transport is not None
        self.buffer.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # parsing

    def _finish_at_close(self, exc: Exception | None = None) -> None:
        if self.waiter is None or self.waiter.done():
            return
        head = self._head()
        if head is not None and head[3] is None and not head[4]:  # body until the close
            status, headers, start, _, _ = head
            self.waiter.set_result(_Answer(status, headers, bytes(self.buffer[start:]), True))
            return
        reason = "closed by the server" if not self.buffer else "closed mid-answer"
        self.waiter.set_exception(exc or ConnectionError(reason))

    def _head(self) -> tuple[int, dict[str, str], int, int | None, bool] | None:
        """(status, headers, body start, content length or None, chunked), or None while
        the head is incomplete."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("answer head too large")
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(parts[1])
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length: int | None = None
        if status in NO_BODY_STATUSES or 100 <= status < 200:
            length = 0
        elif not chunked and "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad content-length") from None
        return status, headers, end + 4, length, chunked

    def _parse(self) -> _Answer | None:
        head = self._head()
        if head is None:
            return None
        status, headers, start, length, chunked = head
        close = headers.get("connection", "").lower() == "close"
        if chunked:
            body = self._dechunk(start)
            if body is None:
                return None
            return _Answer(status, headers, body, close)
        if length is None:
            return None  # the body runs until the server closes (_finish_at_close)
        if len(self.buffer) < start + length:
            return None
        return _Answer(status, headers, bytes(self.buffer[start : start + length]), close)

    def _dechunk(self, at: int) -> bytes | None:
        body = bytearray()
        while True:
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size_text = bytes(self.buffer[at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            at = line_end + 2
            if size == 0:  # trailers, then an empty line
                return bytes(body) if self.buffer.find(b"\r\n\r\n", at - 2) >= 0 else None
            if len(self.buffer) < at + size + 2:
                return None
            body += self.buffer[at : at + size]
            at += size + 2


class _Pool:
    """Keep-alive connections to one host: reused last-in first-out (so the busy ones stay
    warm and the spare ones age out), opened on demand up to `cap`."""

    def __init__(self, host: str, port: int, cap: int) -> None:
        self.host, self.port, self.cap = host, port, cap
        self.idle: list[_Connection] = []
        self.open = 0
        self.opened = 0
        self.max_open = 0
        self.waiters: list[asyncio.Future[_Connection | None]] = []
        self._counted: set[int] = set()  # ids of the connections counted in `open`

    async def acquire(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self.idle:
                conn = self.idle.pop()
                if conn.closed:
                    continue
                if now - conn.idle_since > IDLE_REUSE_SECONDS:
                    conn.close()
                    continue
                return conn
            if self.open < self.cap:
                return await self._connect()
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                conn_or_none = await waiter  # None: a slot is free, open a connection
            except asyncio.CancelledError:
                # Timed out just as a connection (or a free slot) was handed over: pass it on.
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is None:
                        self._wake(None)
                    else:
                        self.release(handed, reusable=True)
                raise
            if conn_or_none is not None:
                return conn_or_none

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except BaseException:
            self.open -= 1
            self._wake(None)
            raise
        self.opened += 1
        self._counted.add(id(conn))
        return conn

    def release(self, conn: _Connection, reusable: bool) -> None:
        if not reusable or conn.closed:
            conn.close()  # connection_lost will free its slot
            return
        if self._wake(conn):
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        if id(conn) in self._counted:
            self._counted.discard(id(conn))
            self.open -= 1
            self._wake(None)

    def _wake(self, conn: _Connection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():  # a waiter whose request timed out is cancelled
                waiter.set_result(conn)
                return True
        return False

    def close_all(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# -- the generator ------------------------------------------------------------------------


class _Run:
    """The bookkeeping of one run; figures are counted as answers arrive."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, cap: int) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported: {url}")
        self.url = url
        port = parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        head = [f"GET {target} HTTP/1.1", f"Host: {host_header}", "Accept: */*"]
        names = {name.lower() for name in headers}
        if "user-agent" not in names:
            head.append("User-Agent: echopilot-loadgen")
        head += [f"{name}: {value}" for name, value in headers.items()]
        self.payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.pool = _Pool(parts.hostname, port, cap)
        self.timeout = timeout
        self.t0 = 0.0
        self.window = 0.0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.timeouts = 0
        self.all_ms: list[float] = []
        self.ok_ms: list[float] = []
        self.ok_per_second: list[int] = []
        self.answered_per_second: list[int] = []
        self.late = 0
        self.longest_wait = 0.0
        self.last_event = 0.0
        self.lags_ms: list[float] = []
        self.missing_retry_after = 0
        self.answer_kinds: Counter[str] = Counter()
        self.samples: dict[str, str] = {}
        self.not_envelope: Counter[int] = Counter()

    def start(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + START_DELAY
        self.window = seconds
        buckets = max(1, math.ceil(seconds - 1e-9))
        self.ok_per_second = [0] * buckets
        self.answered_per_second = [0] * buckets

    async def one(self, scheduled: float) -> bool:
        """Send one request scheduled at `scheduled` (loop time); True if it was answered."""
        loop = asyncio.get_running_loop()
        answer: _Answer | None = None
        try:
            async with asyncio.timeout_at(scheduled + self.timeout):
                conn = await self.pool.acquire()
                try:
                    answer = await conn.request(self.payload)
                finally:
                    self.pool.release(conn, reusable=answer is not None and not answer.close)
        except TimeoutError:
            self.timeouts += 1
            self._waited(scheduled, loop.time())
            return False
        except (OSError, ProtocolError) as exc:
            self.errors[_error_kind(exc)] += 1
            self._waited(scheduled, loop.time())
            return False
        self._answered(scheduled, loop.time(), answer)
        return True

    def _waited(self, scheduled: float, now: float) -> None:
        self.longest_wait = max(self.longest_wait, now - scheduled)
        self.last_event = max(self.last_event, now)

    def _answered(self, scheduled: float, now: float, answer: _Answer) -> None:
        self._waited(scheduled, now)
        latency_ms = (now - scheduled) * 1000
        self.statuses[answer.status] += 1
        self.all_ms.append(latency_ms)
        second = math.floor(now - self.t0)
        in_window = 0 <= second < len(self.ok_per_second) and now - self.t0 < self.window
        if in_window:
            self.answered_per_second[second] += 1
        else:
            self.late += 1
        if answer.status == 200:
            self.ok_ms.append(latency_ms)
            if in_window:
                self.ok_per_second[second] += 1
            return
        if answer.status == 503 and "retry-after" not in answer.headers:
            self.missing_retry_after += 1
        code = _envelope_code(answer.body)
        if code is None:
            self.not_envelope[answer.status] += 1
            text = answer.body[:80].decode("utf-8", errors="replace")
            kind = f"{answer.status} {' '.join(text.split())}"
        else:
            kind = f"{answer.status} {code}"
        if kind not in self.answer_kinds and len(self.answer_kinds) >= ANSWER_KINDS:
            kind = f"{answer.status} (other)"
        self.answer_kinds[kind] += 1
        if kind not in self.samples:
            self.samples[kind] = answer.body[:BODY_CHARS].decode("utf-8", errors="replace")

    def result(
        self, mode: str, rate: float | None, connections: int | None, sent: int, cpu: float
    ) -> LoadResult:
        lags = sorted(self.lags_ms)
        lag_p99 = lags[max(0, math.ceil(0.99 * len(lags)) - 1)] if lags else 0.0
        return LoadResult(
            url=self.url,
            mode=mode,
            rate=rate,
            connections=connections,
            seconds=self.window,
            timeout=self.timeout,
            sent=sent,
            statuses=dict(sorted(self.statuses.items())),
            timeouts=self.timeouts,
            errors=sum(self.errors.values()),
            error_kinds=dict(self.errors),
            all_ms=Percentiles.of(self.all_ms),
            ok_ms=Percentiles.of(self.ok_ms),
            ok_per_second=self.ok_per_second,
            answered_per_second=self.answered_per_second,
            late_answers=self.late,
            longest_wait_s=self.longest_wait,
            elapsed_s=max(0.0, self.last_event - self.t0),
            connections_opened=self.pool.opened,
            max_open_connections=self.pool.max_open,
            send_lag_p99_ms=lag_p99,
            send_lag_max_ms=lags[-1] if lags else 0.0,
            generator_cpu_s=cpu,
            missing_retry_after=self.missing_retry_after,
            answer_kinds=dict(self.answer_kinds),
            samples=self.samples,
            not_envelope=dict(sorted(self.not_envelope.items())),
        )


def _envelope_code(body: bytes) -> str | None:
    """The error code of EchoPilot's error envelope, or None if `body` is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"ok", "data", "error"}:
        return None
    error = data["error"]
    if data["ok"] is not False or data["data"] is not None or not isinstance(error, dict):
        return None
    code, message = error.get("code"), error.get("message")
    if not (isinstance(code, str) and code and isinstance(message, str) and message):
        return None
    return code


def _error_kind(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:80]}"


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _raise_fd_limit(connections: int) -> None:
    """Allow `connections` sockets (and some spare) if the hard limit lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


async def _run_open(
    url: str, rate: float, seconds: float, headers: dict[str, str], timeout: float, cap: int
) -> LoadResult:
    loop = asyncio.get_running_loop()
    cpu_before = _cpu_seconds()
    run = _Run(url, headers, timeout, cap)
    total = int(rate * seconds + 1e-9)
    run.start(seconds)
    pending: set[asyncio.Task[bool]] = set()
    for i in range(total):
        scheduled = run.t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        run.lags_ms.append(max(0.0, loop.time() - scheduled) * 1000)
        task = loop.create_task(run.one(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    while pending:  # every request ends by its own timeout
        await asyncio.wait(set(pending))
    run.pool.close_all()
    return run.result("open", rate, None, total, _cpu_seconds() - cpu_before)


async def _run_closed(
    url: str, connections: int, seconds: float, headers: dict[str, str], timeout: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    cpu_before = _cpu_seconds()
    run = _Run(url, headers, timeout, connections)
    run.start(seconds)
    sent = 0
    await asyncio.sleep(max(0.0, run.t0 - loop.time()))
    end = run.t0 + seconds

    async def client() -> None:
        nonlocal sent
        while loop.time() < end:
            sent += 1
            if not await run.one(loop.time()):
                await asyncio.sleep(ERROR_PAUSE)

    await asyncio.gather(*(client() for _ in range(connections)))
    run.pool.close_all()
    return run.result("closed", None, connections, sent, _cpu_seconds() - cpu_before)


def run_open_loop(
    url: str,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> LoadResult:
    """The open loop in this process (open_loop() runs it in a child process)."""
    if rate <= 0 or seconds <= 0 or timeout <= 0 or max_connections < 1:
        raise ValueError("rate, seconds and timeout must be above 0, max_connections >= 1")
    _raise_fd_limit(max_connections)
    return asyncio.run(_run_open(url, rate, seconds, headers or {}, timeout, max_connections))


def run_closed_loop(
    url: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LoadResult:
    """The closed loop in this process (closed_loop() runs it in a child process)."""
    if connections < 1 or seconds <= 0 or timeout <= 0:
        raise ValueError("connections must be at least 1, seconds and timeout above 0")
    _raise_fd_limit(connections)
    return asyncio.run(_run_closed(url, connections, seconds, headers or {}, timeout))


# -- in a child process -------------------------------------------------------------------


def _in_child(spec: dict[str, Any], wait: float) -> LoadResult:
    """Run `spec` in `python bench/loadgen.py --spec -`; the spec (headers included) goes
    through stdin, so a key never shows in the process list."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--spec", "-"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=wait,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator exited {done.returncode}: {done.stderr[-2000:]}")
    return LoadResult.from_json(done.stdout)


def open_loop(
    url: str,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> LoadResult:
    """GET `url` at `rate` requests/s for `seconds` (open loop), in a child process."""
    spec = {
        "mode": "open",
        "url": url,
        "rate": rate,
        "seconds": seconds,
        "headers": headers or {},
        "timeout": timeout,
        "max_connections": max_connections,
    }
    return _in_child(spec, wait=seconds + timeout + 60)


def closed_loop(
    url: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> LoadResult:
    """GET `url` from `connections` closed-loop clients for `seconds`, in a child process."""
    spec = {
        "mode": "closed",
        "url": url,
        "connections": connections,
        "seconds": seconds,
        "headers": headers or {},
        "timeout": timeout,
    }
    return _in_child(spec, wait=seconds + timeout + 60)


def _run_spec(spec: dict[str, Any]) -> LoadResult:
    if spec["mode"] == "open":
        return run_open_loop(
            spec["url"],
            float(spec["rate"]),
            float(spec["seconds"]),
            spec["headers"],
            float(spec["timeout"]),
            int(spec["max_connections"]),
        )
    return run_closed_loop(
        spec["url"],
        int(spec["connections"]),
        float(spec["seconds"]),
        spec["headers"],
        float(spec["timeout"]),
    )


# -- command line -------------------------------------------------------------------------


def _headers(values: Iterable[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"not a header (Name: value): {value!r}")
        headers[name.strip()] = text.strip()
    return headers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Open-loop (or closed-loop) HTTP/1.1 GET load against one URL; prints the "
        "figures (latency from each request's scheduled time, 200 answers per second)."
    )
    parser.add_argument("url", nargs="?", help="http://host:port/path?query")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--rate", type=float, help="open loop: requests started per second")
    load.add_argument("--closed", type=int, metavar="K", help="closed loop with K connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending window (10)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds from a request's scheduled time to its answer ({DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open loop: cap of the connection pool ({DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header sent with every request (repeatable), e.g. 'X-Dash-Key: ...'",
    )
    parser.add_argument("--json", action="store_true", help="print the LoadResult as JSON")
    parser.add_argument("--spec", help=argparse.SUPPRESS)  # "-": a JSON run spec on stdin
    args = parser.parse_args(argv)
    if args.spec is not None:
        spec = json.loads(sys.stdin.read() if args.spec == "-" else args.spec)
        print(_run_spec(spec).to_json())
        return 0
    if not args.url or (args.rate is None and args.closed is None):
        parser.error("give a URL and --rate N (open loop) or --closed K (closed loop)")
    try:
        headers = _headers(args.header)
        if args.rate is not None:
            result = run_open_loop(
                args.url, args.rate, args.seconds, headers, args.timeout, args.max_connections
            )
        else:
            result = run_closed_loop(args.url, args.closed, args.seconds, headers, args.timeout)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    print(result.to_json() if args.json else "\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
