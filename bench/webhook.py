"""Stripe webhook: events a second, answer time, and exactly-once under concurrent replays.

    .venv/bin/python bench/webhook.py                        # 1,000 events at 8 and 32 clients
    .venv/bin/python bench/webhook.py --jobs 200 --concurrency 4      # smoke run

For each --concurrency, a fresh temporary home on the embedded default (SQLite), with
Stripe on through the environment (a test secret key, a webhook signing secret, and
ECHOPILOT_STRIPE_API_BASE on a local port nobody listens on, so that nothing leaves the
machine), is migrated and given --jobs billed jobs (done, `unpaid`, a price each) written
straight into the jobs table. Then one `echopilot serve` child process answers on a free
local port, and --concurrency clients (httpx, one keep-alive connection each) send:

1. the baseline: as many GET /health requests as there are deliveries below (routing,
   middleware, one `SELECT 1` and the queue depth);
2. the deliveries: one distinct event for each job but a tenth (70 % of the events
   `payment_intent.succeeded`, 20 % `checkout.session.completed` paying the job's price,
   10 % `charge.refunded`: a partial refund of a job that another event pays), then
   --replays of them sent again (a redelivery: the same event id and body, signed again),
   every replay after its original in the list but shuffled with the rest, so that some
   race their original at the server. Each refund comes after its payment in the list.
   Every delivery is signed at the moment it is sent, as Stripe signs each attempt. A 503
   answer (the API shedding load) is retried after its Retry-After, and counted.

Printed: events a second, p50/p95/p99 of the 200 answers' times, the server's CPU a
request, the answers by outcome (`applied`, `duplicate`), the 503 retries, each against
/health's. Then exactly-once is checked in the database: `stripe_events` holds one row per
distinct event, all applied; the ledger's payment and refund entries are as many as the
events that pay and refund, with the expected cents in total and for every job; every
job's `payment_status` is what its events make it (paid, partially refunded, or still
unpaid). Times are printed, never asserted; the exit code is 1 when a check fails, an
answer is neither 200 nor 503, the server logged an error, or the set-up failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import stripe
from sqlalchemy import create_engine, insert

from echopilot.clock import utcnow
from echopilot.db.models import Job

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    SetupError,
    cpu_seconds,
    log_problems,
    machine,
    percentile,
    start_server,
    stop_server,
)

DEFAULT_JOBS = 1_000
DEFAULT_CONCURRENCY = (8, 32)
DEFAULT_REPLAYS = 0.2  # of the distinct events, sent again
CHECKOUT_SHARE = 0.2  # of the distinct events
REFUND_SHARE = 0.1  # of the distinct events: partial refunds of jobs paid by another event
KEY = "bench-webhook-key-0123456789abcdef"
SECRET = "whsec_bench_0123456789abcdefghijklmnopqrstuv"
STRIPE_KEY = "sk_test_bench_0123456789abcdefghijklmnop"
TIMEOUT_SECONDS = 60.0
MAX_RETRIES = 50  # 503s for one delivery before it counts as failed


@dataclass(frozen=True)
class Delivery:
    event_id: str
    body: bytes
    job_id: int
    replay: bool


@dataclass
class Plan:
    """What is sent, and what the database must hold afterwards."""

    deliveries: list[Delivery]
    distinct: int
    by_type: Counter[str]
    payments: dict[int, int]  # job id -> cents paid
    refunds: dict[int, int]  # job id -> cents refunded
    statuses: dict[int, str]  # job id -> expected payment_status


@dataclass
class Load:
    """One run of requests at some concurrency."""

    label: str
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]  # of the 200 answers
    statuses: Counter[int]
    outcomes: Counter[str]
    retries_503: int
    failed: list[str]  # deliveries that never got a 200: why
    server_cpu_s: float
    client_cpu_s: float
    wrong_job: int = 0  # 200 answers naming another job than the event's

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies_ms, q) or 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else 0.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class LevelResult:
    clients: int
    setup_s: float
    health: Load
    webhook: Load
    load_average: tuple[float, float]  # the machine's 1-minute load, before and after
    racing: int = 0  # replays sent within `clients` sends of their original
    checks: list[Check] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(c.ok for c in self.checks)
            and not self.log_problems
            and not self.webhook.failed
            and not self.health.failed
        )


# -- home, jobs and events -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(home: Path) -> dict[str, str]:
    """This process's environment without any EchoPilot or Stripe setting, pinned to
    `home`, Stripe on in test mode against a local port that nothing listens on."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECHOPILOT_", "OPENAI_", "STRIPE_")) and k != "DASHBOARD_KEY"
    }
    env.update(
        ECHOPILOT_HOME=str(home),
        ECHOPILOT_AI_PROVIDER="offline",
        ECHOPILOT_LOG_LEVEL="warning",
        DASHBOARD_KEY=KEY,
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET=SECRET,
        ECHOPILOT_STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}",
    )
    return env


def make_home(home: Path, env: dict[str, str], jobs: int, rng: random.Random) -> dict[int, int]:
    """A migrated home with `jobs` done, billed, unpaid jobs; their prices by id."""
    subprocess.run(
        [sys.executable, "-m", "echopilot", "db", "upgrade"],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    now = utcnow()
    rows = []
    for n in range(jobs):
        finished = now - timedelta(minutes=rng.uniform(1, 24 * 60))
        rows.append(
            {
                "name": f"bench job {n}",
                "task_type": "research",
                "input": "[bench input]",
                "status": "done",
                "provider": "openai",
                "model": "gpt-4o",
                "attempts": 1,
                "cost_micros": rng.randint(1_000, 90_000),
                "unpriced_models": [],
                "price_cents": rng.randint(500, 5_000),
                "payment_status": "unpaid",
                "created_at": finished - timedelta(seconds=rng.uniform(5, 600)),
                "finished_at": finished,
                "updated_at": finished,
            }
        )
    engine = create_engine(f"sqlite:///{home / 'echopilot.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(insert(Job), rows)
            found = conn.exec_driver_sql(
                "SELECT id, price_cents FROM jobs WHERE payment_status = 'unpaid' ORDER BY id"
            ).all()
    finally:
        engine.dispose()
    if len(found) != jobs:
        raise SetupError(f"{len(found)} unpaid jobs in the database, {jobs} inserted")
    return {int(job_id): int(price) for job_id, price in found}


def _stripe_id(prefix: str, rng: random.Random) -> str:
    return f"{prefix}_{rng.getrandbits(96):024x}"


def _event(
    kind: str, obj: dict[str, object], created: int, rng: random.Random
) -> dict[str, object]:
    return {
        "id": _stripe_id("evt", rng),
        "object": "event",
        "api_version": "2024-06-20",
        "type": kind,
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def plan(prices: dict[int, int], replay_share: float, rng: random.Random) -> Plan:
    """One distinct event a job but a tenth, refunds of some paid jobs, then replays."""
    ids = list(prices)
    refunds_n = round(len(ids) * REFUND_SHARE)
    checkout_n = round(len(ids) * CHECKOUT_SHARE)
    paid = ids[: len(ids) - refunds_n]  # the last tenth stays unpaid
    rng.shuffle(paid)
    by_checkout = set(paid[:checkout_n])
    refunded = set(rng.sample(paid, refunds_n))
    created = int(time.time()) - 3600
    events: list[tuple[dict[str, object], int]] = []  # (event, job id)
    payments: dict[int, int] = {}
    refunds: dict[int, int] = {}
    charges: dict[int, tuple[str, str]] = {}
    for job_id in paid:
        price = prices[job_id]
        meta = {"job_id": str(job_id), "source": "echopilot"}
        intent, charge = _stripe_id("pi", rng), _stripe_id("ch", rng)
        charges[job_id] = (intent, charge)
        created += 1
        if job_id in by_checkout:
            obj: dict[str, object] = {
                "id": _stripe_id("cs", rng),
                "object": "checkout.session",
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid",
                "amount_total": price,
                "currency": "usd",
                "payment_intent": intent,
                "payment_link": _stripe_id("plink", rng),
                "metadata": meta,
            }
            events.append((_event("checkout.session.completed", obj, created, rng), job_id))
        else:
            obj = {
                "id": intent,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": price,
                "amount_received": price,
                "currency": "usd",
                "latest_charge": charge,
                "metadata": meta,
            }
            events.append((_event("payment_intent.succeeded", obj, created, rng), job_id))
        payments[job_id] = price
    for job_id in sorted(refunded):
        price = prices[job_id]
        intent, charge = charges[job_id]
        amount = rng.randint(1, price - 1)  # partial: the job stays partially refunded
        obj = {
            "id": charge,
            "object": "charge",
            "status": "succeeded",
            "paid": True,
            "amount": price,
            "amount_captured": price,
            "amount_refunded": amount,
            "refunded": False,
            "currency": "usd",
            "payment_intent": intent,
            "metadata": {"job_id": str(job_id), "source": "echopilot"},
        }
        events.append((_event("charge.refunded", obj, created + 7200, rng), job_id))
        refunds[job_id] = amount

    # The order: shuffled, each refund after its job's payment, each replay after its
    # original (some close enough to race it at the server).
    rng.shuffle(events)
    at = {job_id: i for i, (e, job_id) in enumerate(events) if e["type"] != "charge.refunded"}
    for i, (e, job_id) in enumerate(events):
        j = at[job_id]
        if e["type"] == "charge.refunded" and j > i:
            events[i], events[j] = events[j], events[i]
            at[job_id] = i
    keyed: list[tuple[float, Delivery]] = []
    for i, (e, job_id) in enumerate(events):
        keyed.append((i, Delivery(str(e["id"]), json.dumps(e).encode(), job_id, False)))
    for i in rng.sample(range(len(events)), round(len(events) * replay_share)):
        original = keyed[i][1]
        again = Delivery(original.event_id, original.body, original.job_id, True)
        keyed.append((rng.uniform(i + 0.01, len(events)), again))
    keyed.sort(key=lambda pair: pair[0])

    statuses = {job_id: "unpaid" for job_id in ids}
    statuses.update({job_id: "paid" for job_id in payments})
    statuses.update({job_id: "partially_refunded" for job_id in refunds})
    return Plan(
        deliveries=[d for _, d in keyed],
        distinct=len(events),
        by_type=Counter(str(e["type"]) for e, _ in events),
        payments=payments,
        refunds=refunds,
        statuses=statuses,
    )


# -- server -----------------------------------------------------------------------------------


# -- load ---------------------------------------------------------------------------------


async def _drive(
    base: str, label: str, clients: int, deliveries: Sequence[Delivery] | None, count: int, pid: int
) -> Load:
    """`count` requests by `clients` concurrent clients: POSTs of `deliveries` (each signed
    as it is sent, retried after Retry-After on a 503), or GET /health when None."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    failed: list[str] = []
    retries = 0
    wrong_job = 0
    next_index = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        nonlocal retries, wrong_job
        delivery = deliveries[index] if deliveries is not None else None
        for _ in range(MAX_RETRIES + 1):
            started = time.perf_counter()
            try:
                if delivery is None:
                    response = await client.get("/health")
                else:
                    header = stripe.WebhookSignature.generate_signature_header(
                        delivery.body.decode(), SECRET, timestamp=int(time.time())
                    )
                    response = await client.post(
                        "/webhook/stripe",
                        content=delivery.body,
                        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                    )
            except httpx.HTTPError as exc:
                failed.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            elapsed = (time.perf_counter() - started) * 1000
            statuses[response.status_code] += 1
            if response.status_code == 503:
                retries += 1
                await asyncio.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            if response.status_code != 200:
                failed.append(f"{response.status_code}: {response.text[:200]}")
                return
            latencies.append(elapsed)
            if delivery is not None:
                data = response.json()["data"]
                outcomes[data["outcome"]] += 1
                if data["outcome"] != "duplicate" and data["job_id"] != delivery.job_id:
                    wrong_job += 1
            return
        failed.append(f"still 503 after {MAX_RETRIES} retries")

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await one(client, index)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=TIMEOUT_SECONDS) as client:
        cpu0, client0, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(pid) - cpu0, time.process_time() - client0
    return Load(
        label=label,
        clients=clients,
        requests=count,
        seconds=seconds,
        latencies_ms=latencies,
        statuses=statuses,
        outcomes=outcomes,
        retries_503=retries,
        failed=failed,
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        wrong_job=wrong_job,
    )


# -- exactly-once ---------------------------------------------------------------------------


def verify(db: Path, p: Plan, load: Load) -> list[Check]:
    """What the database and the answers must show if each event took effect exactly once."""
    checks: list[Check] = []
    replays = sum(d.replay for d in p.deliveries)
    applied, duplicate = load.outcomes["applied"], load.outcomes["duplicate"]
    others = {k: v for k, v in load.outcomes.items() if k not in ("applied", "duplicate")}
    checks.append(
        Check(
            "answers: each event applied once, each replay a duplicate",
            applied == p.distinct and duplicate == replays and not others,
            f"applied {applied} of {p.distinct}, duplicate {duplicate} of {replays}"
            + (f", other {dict(others)}" if others else ""),
        )
    )
    checks.append(
        Check(
            "answers name the event's job",
            load.wrong_job == 0,
            f"{load.wrong_job} named another job",
        )
    )
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows, done = con.execute(
            "SELECT count(*), coalesce(sum(outcome = 'applied'), 0) FROM stripe_events"
        ).fetchone()
        checks.append(
            Check(
                "stripe_events: one row per distinct event, all applied",
                rows == p.distinct and done == p.distinct,
                f"{rows} rows, {done} applied, {p.distinct} distinct events sent",
            )
        )
        kinds = {
            kind: (int(n), int(total))
            for kind, n, total in con.execute(
                "SELECT kind, count(*), sum(amount_cents) FROM payments GROUP BY kind"
            )
        }
        for kind, want in (("payment", p.payments), ("refund", p.refunds)):
            n, total = kinds.pop(kind, (0, 0))
            sign = -1 if kind == "refund" else 1
            expected = sign * sum(want.values())
            checks.append(
                Check(
                    f"ledger: {kind} entries and their cents",
                    n == len(want) and total == expected,
                    f"{n} entries of {len(want)}, {total} cents of {expected}",
                )
            )
        checks.append(
            Check("ledger: no other kind of entry", not kinds, f"others: {kinds}" if kinds else "")
        )
        per_job = {
            int(job_id): int(total)
            for job_id, total in con.execute(
                "SELECT job_id, sum(amount_cents) FROM payments GROUP BY job_id"
            )
        }
        want_net = {j: c - p.refunds.get(j, 0) for j, c in p.payments.items()}
        off = [j for j in set(per_job) | set(want_net) if per_job.get(j) != want_net.get(j)]
        checks.append(
            Check(
                "ledger: every job's net cents",
                not off,
                f"{len(want_net)} jobs with money, {len(off)} off"
                + (
                    f" (e.g. job {off[0]}: {per_job.get(off[0])} of {want_net.get(off[0])})"
                    if off
                    else ""
                ),
            )
        )
        found = {int(j): s for j, s in con.execute("SELECT id, payment_status FROM jobs")}
        wrong = [j for j, s in p.statuses.items() if found.get(j) != s]
        tally = Counter(found.values())
        checks.append(
            Check(
                "jobs: every payment_status right",
                not wrong,
                ", ".join(f"{s} {n}" for s, n in sorted(tally.items()))
                + (
                    f"; {len(wrong)} wrong (e.g. job {wrong[0]}: {found.get(wrong[0])}, "
                    f"expected {p.statuses[wrong[0]]})"
                    if wrong
                    else ""
                ),
            )
        )
    finally:
        con.close()
    return checks


def racing(deliveries: Sequence[Delivery], clients: int) -> int:
    """Replays sent within `clients` sends of their original: both can be in flight at once."""
    first: dict[str, int] = {}
    close = 0
    for i, d in enumerate(deliveries):
        if not d.replay:
            first[d.event_id] = i
        elif i - first[d.event_id] <= clients:
            close += 1
    return close


# -- a run ------------------------------------------------------------------------------------


def run_level(tmp: Path, clients: int, args: argparse.Namespace) -> tuple[LevelResult, Plan]:
    cwd = tmp / f"c{clients}"
    home = cwd / "home"
    home.mkdir(parents=True)
    env = child_env(home)
    rng = random.Random(args.seed * 1000 + clients)
    started = time.perf_counter()
    try:
        prices = make_home(home, env, args.jobs, rng)
    except subprocess.CalledProcessError as failed:
        raise SetupError(
            f"db upgrade exited {failed.returncode}: {failed.stderr[-2000:]}"
        ) from None
    p = plan(prices, args.replays, rng)
    setup = time.perf_counter() - started
    port = free_port()
    server = start_server(env, cwd, port)
    load_before = os.getloadavg()[0]
    base = f"http://127.0.0.1:{port}"
    try:
        count = len(p.deliveries)
        print(f"  {clients} clients: GET /health x{count} ...", end="", flush=True)
        health = asyncio.run(_drive(base, "GET /health", clients, None, count, server.pid))
        print(f" {health.rate:,.0f}/s; POST /webhook/stripe x{count} ...", end="", flush=True)
        hook = asyncio.run(
            _drive(base, "POST /webhook/stripe", clients, p.deliveries, count, server.pid)
        )
        print(f" {hook.rate:,.0f}/s", flush=True)
    finally:
        stop_server(server)
    result = LevelResult(clients, setup, health, hook, (load_before, os.getloadavg()[0]))
    result.racing = racing(p.deliveries, clients)
    result.checks = verify(home / "echopilot.db", p, hook)
    result.log_problems = log_problems(home)
    return result, p


def report(results: list[LevelResult], p: Plan) -> None:
    types = ", ".join(f"{n} {t}" for t, n in p.by_type.most_common())
    replays = sum(d.replay for d in p.deliveries)
    print(
        f"\nper run: {len(p.statuses):,} billed jobs; {p.distinct:,} distinct events ({types}) "
        f"+ {replays} replays = {len(p.deliveries):,} deliveries, shuffled"
    )
    print(
        f"\n  {'run':<22} {'clients':>7} {'requests':>8} {'secs':>6} {'req/s':>7} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'503s':>5} {'srv CPU':>7} "
        f"{'CPU ms/req':>10} {'gen CPU':>7} {'vs /health':>10}"
    )
    for r in results:
        for load in (r.health, r.webhook):
            ratio = "" if load is r.health else f"{r.health.rate / load.rate:.1f}x slower"
            srv = 100 * load.server_cpu_s / load.seconds if load.seconds else 0.0
            gen = 100 * load.client_cpu_s / load.seconds if load.seconds else 0.0
            print(
                f"  {load.label:<22} {load.clients:>7} {load.requests:>8} {load.seconds:>6.1f} "
                f"{load.rate:>7.0f} {load.ms(50):>7.1f} {load.ms(95):>7.1f} {load.ms(99):>7.1f} "
                f"{load.retries_503:>5} {srv:>6.0f}% {load.cpu_ms_per_request:>10.2f} "
                f"{gen:>6.0f}% {ratio:>10}"
            )
    for r in results:
        hook = r.webhook
        outcomes = ", ".join(f"{k} {v}" for k, v in hook.outcomes.most_common())
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(hook.statuses.items()))
        print(
            f"\n{r.clients} clients (home set up in {r.setup_s:.1f} s; the machine's 1-minute "
            f"load average {r.load_average[0]:.1f} before the run, {r.load_average[1]:.1f} after)"
        )
        print(
            f"  webhook answers: {statuses}; outcomes: {outcomes}; 503 retries "
            f"{hook.retries_503}; replays sent within {r.clients} sends of their original "
            f"(both can be in flight at once): {r.racing}"
        )
        cost = (
            hook.cpu_ms_per_request / r.health.cpu_ms_per_request
            if r.health.cpu_ms_per_request
            else 0
        )
        print(
            f"  against /health: {r.health.rate / hook.rate:.1f}x fewer requests a second, "
            f"p50 {hook.ms(50) / r.health.ms(50):.1f}x, server CPU a request {cost:.1f}x "
            f"({hook.cpu_ms_per_request:.2f} against {r.health.cpu_ms_per_request:.2f} ms)"
        )
        for load in (r.health, r.webhook):
            for why, n in Counter(load.failed).most_common(5):
                print(f"  FAILED {load.label}: x{n} {why}")
        for c in r.checks:
            print(f"  exactly-once: {c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})")
        for problem in r.log_problems:
            print(f"  server log {problem}")
    print(
        "\n  (times of the 200 answers, each from its send; a 503's wait and retry are not in "
        "them but in the secs; srv CPU: the serve process's user + system time over the run, "
        "100% = one core; gen CPU: this process's, which signs and sends)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="billed jobs (default 1000)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=list(DEFAULT_CONCURRENCY),
        help="concurrent clients; one fresh home and server each (default 8 32)",
    )
    parser.add_argument(
        "--replays",
        type=float,
        default=DEFAULT_REPLAYS,
        help="share of the distinct events sent again (default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args(argv)
    if args.jobs < 20 or min(args.concurrency) < 1 or not 0 <= args.replays <= 1:
        parser.error("--jobs at least 20, --concurrency at least 1, --replays within 0..1")
    print(f"machine: {machine()}", flush=True)
    results: list[LevelResult] = []
    with tempfile.TemporaryDirectory(prefix="ep-bench-webhook-") as tmp:
        try:
            for clients in args.concurrency:
                result, p = run_level(Path(tmp), clients, args)
                results.append(result)
        except SetupError as exc:
            print(f"\nFAILED: {exc}")
            return 1
    report(results, p)
    ok = all(r.ok for r in results)
    print(f"\nexactly-once: {'every check passed' if ok else 'FAILED (see above)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
