"""`echopilot up`: one command runs the API, a worker and the scheduler, prints what a
newcomer needs, restarts a crashed child, and stops everything on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from echopilot.runtime import Runtime
from tests.api_support import Child, assert_ok, start_child
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
ROLES = {("serve", "--quiet"): "api", ("worker",): "worker", ("scheduler", "run"): "scheduler"}
STOP_WITHIN_SECONDS = 10


def child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def descendants(pid: int) -> list[int]:
    found = []
    for child in child_pids(pid):
        found += [child, *descendants(child)]
    return found


def role(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if "echopilot" not in argv:
        return None
    args = tuple(a for a in argv[argv.index("echopilot") + 1 :] if a)
    return ROLES.get(args)


def roles(pid: int) -> dict[str, int]:
    """The supervisor's children by role, once all three run."""
    found = {r: p for p in child_pids(pid) if (r := role(p)) is not None}
    return found if len(found) == len(ROLES) else {}


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def start_up(rt: Runtime) -> tuple[Child, dict[str, int]]:
    child = start_child(rt.settings, "up")
    child.wait_healthy()
    kids = wait_for(lambda: roles(child.process.pid), timeout=30)
    return child, kids


def test_up_serves_prints_the_banner_and_stops_every_child_on_sigterm(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    home = rt.settings.home
    child, kids = start_up(rt)
    try:
        health = assert_ok(httpx.get(child.url + "/health"))
        assert health["status"] == "ok"
        banner = child.text()
        key = (home / "dashboard.key").read_text().strip()
        assert f"http://127.0.0.1:{child.port}/dashboard" in banner
        assert str(home / "dashboard.key") in banner, "where the key is"
        assert f"Database: sqlite:///{home / 'echopilot.db'}" in banner
        assert f"Queue: sqlite:///{home / 'queue.db'}" in banner
        assert "AI provider: offline" in banner
        assert banner.count(key) <= 1, "the key is shown at most once"
        assert_ok(httpx.get(child.url + "/api/jobs", headers={"X-Dash-Key": key}))

        everything = descendants(child.process.pid)
        assert set(kids.values()) <= set(everything)
        started = time.monotonic()
        os.kill(child.process.pid, signal.SIGTERM)
        code = child.process.wait(timeout=STOP_WITHIN_SECONDS + 5)
        took = time.monotonic() - started
        assert code == 0, child.text()[-3000:]
        assert took <= STOP_WITHIN_SECONDS, f"stopping took {took:.1f}s"
        wait_for(lambda: all(gone(p) for p in everything), timeout=max(0.5, 10 - took))
    finally:
        child.stop(signal.SIGKILL)
        for pid in kids.values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_up_restarts_a_killed_worker_and_logs_the_crash(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(ai_provider="offline")
    child, kids = start_up(rt)
    try:
        old_worker = kids["worker"]
        os.kill(old_worker, signal.SIGKILL)

        def new_worker() -> int | None:
            worker = roles(child.process.pid).get("worker")
            return worker if worker not in (None, old_worker) else None

        restarted = wait_for(new_worker, timeout=30)
        assert gone(old_worker)
        now = roles(child.process.pid)
        assert now["api"] == kids["api"] and now["scheduler"] == kids["scheduler"]
        assert httpx.get(child.url + "/health").status_code == 200

        log = rt.settings.home / "logs" / "up.log"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        crashes = [line for line in lines if "worker exited with code -9" in line["event"]]
        assert crashes, [line["event"] for line in lines]
        assert crashes[0]["level"] == "error"
        assert any(str(restarted) in line["event"] for line in lines), "the restart is logged"

        os.kill(child.process.pid, signal.SIGTERM)
        assert child.process.wait(timeout=STOP_WITHIN_SECONDS + 5) == 0
        wait_for(lambda: gone(restarted) and all(gone(p) for p in now.values()), timeout=10)
    finally:
        child.stop(signal.SIGKILL)
        for pid in [*kids.values(), *roles(child.process.pid).values()]:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
