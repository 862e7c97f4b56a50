"""The outside heartbeat: a GET to ECHOPILOT_HEARTBEAT_URL every minute while the scheduler
runs, and <url>/fail after a failed run, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from echopilot.integrations.heartbeat import HeartbeatPinger
from echopilot.runtime import Runtime
from echopilot.scheduler.daemon import Scheduler
from echopilot.scheduler.executor import InlineRunner
from echopilot.scheduler.table import build
from tests.conftest import builtin_tasks_off, wait_for


class Monitor:
    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/check-uuid"


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor()
    yield m
    m.server.shutdown()


def test_it_pings_every_minute_and_reports_a_failed_run(
    make_runtime: Callable[..., Runtime], monitor: Monitor
) -> None:
    rt = make_runtime(
        task_modules="tests.fakes.probe_tasks",
        schedules={
            **builtin_tasks_off(),
            "boom": "every 1m",
        },
        heartbeat_url=monitor.url,
    )
    now = datetime(2026, 11, 26, 9, 0, 30, tzinfo=UTC)
    clock = {"now": now}
    sched = Scheduler(
        rt,
        build(rt.settings),
        InlineRunner(rt),
        clock=lambda: clock["now"],
        pinger=HeartbeatPinger(rt.settings.heartbeat_url or ""),
    )
    try:
        sched.start(now)  # first ping: healthy
        wait_for(lambda: len(monitor.paths) == 1, timeout=10)
        clock["now"] = now + timedelta(seconds=30)  # 09:01:00: `boom` runs and fails
        sched.tick(clock["now"])
        sched.wait_idle()
        clock["now"] = now + timedelta(seconds=45)  # within the minute: no ping
        sched.tick(clock["now"])
        clock["now"] = now + timedelta(seconds=61)
        sched.tick(clock["now"])  # the minute is up: report the failure
        wait_for(lambda: len(monitor.paths) == 2, timeout=10)
        clock["now"] = now + timedelta(seconds=122)
        sched.tick(clock["now"])  # pings (nothing failed since the last one), then 09:02 fails
        sched.wait_idle()
        wait_for(lambda: len(monitor.paths) == 3, timeout=10)  # pings travel on threads
        clock["now"] = now + timedelta(seconds=183)
        sched.tick(clock["now"])
        wait_for(lambda: len(monitor.paths) == 4, timeout=10)
    finally:
        sched.shutdown(0)
    ok, fail = "/ping/check-uuid", "/ping/check-uuid/fail"
    assert monitor.paths == [ok, fail, ok, fail]


def test_an_unreachable_monitor_never_stops_the_scheduler() -> None:
    HeartbeatPinger("http://127.0.0.1:9/ping")(False)  # logs a warning, raises nothing
