"""A month of operations, fast: the real platform (API, two workers, the scheduler) on one
settable clock, through ECHOPILOT_SOAK_DAYS simulated days (30 by `make soak`; `.ci/run`
runs a shorter month that still meets every fault) with 50-200 jobs a day, payments,
alerts and one fault a day in rotation; then every promise is checked.

Run by `make soak` (marker `soak`; `make test` leaves it out).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.soak import verify
from tests.soak.month import FAULTS, Month
from tests.soak.summary import write
from tests.soak.world import World

pytestmark = pytest.mark.soak
DAYS = int(os.environ.get("ECHOPILOT_SOAK_DAYS") or "30")
SEED = int(os.environ.get("ECHOPILOT_SOAK_SEED", "20261204"))
REPORTS = Path(os.environ.get("ECHOPILOT_SOAK_REPORTS", "var/reports/soak"))
# A rotation of one's own (comma-separated fault names), to look into one fault.
ONLY = tuple(f for f in os.environ.get("ECHOPILOT_SOAK_FAULTS", "").split(",") if f)


@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("kind", ["embedded", "production"])
def test_a_month_of_operations(tmp_path: Path, kind: str) -> None:
    """`production` runs PostgreSQL and Redis servers of its own (so that it may stop them)."""
    began = time.monotonic()
    with World(tmp_path, kind, SEED, keep=DAYS) as world:
        month = Month(world, DAYS, SEED, ONLY)
        try:
            month.run()
        except BaseException:
            # The timeline up to the failure is what one wants to see.
            write(REPORTS / kind, {"backend": kind, "failed_at": world.now}, world.marks)
            raise
        figures: dict[str, Any] = {
            "backend": kind,
            "simulated_days": DAYS,
            "from": world.start_at.isoformat(),
            "to": world.now.isoformat(),
            "faults": sum(1 for m in world.marks if m.kind == "fault"),
            "fault_kinds": sorted(set(month.faults_recovered)),
            "recoveries": month.recoveries,
            "model_weather": dict(world.weather.counts),
            "webhook_deliveries": month.ledger.delivered,
            "events_left_to_reconciliation": len(month.ledger.missed),
            "answers_while_disk_full": month.disk_full_answers,
        }
        checks = {
            "jobs": verify.jobs,
            "briefs": verify.briefs,
            "daily_reports": verify.daily_reports,
            "self_heal": verify.self_heal,
            "retention": verify.retention,
            "alerts": verify.alerts,
            "finance": verify.finance,
        }
        failures = []
        for name, check in checks.items():
            try:
                figures[name] = check(month)
            except Exception as exc:  # every check runs; all failures are told
                failures.append(f"{name}: {exc}")
                figures[name] = {"failed": str(exc)[:2000]}
        figures["seconds"] = round(time.monotonic() - began, 1)
        figures["jobs_total"] = figures["jobs"].get("accepted") if "jobs" in figures else None
        timeline = sorted([*world.marks, *verify.alert_marks(month)], key=lambda m: m.at)
        summary, page = write(REPORTS / kind, figures, timeline)
        print(
            f"\nsoak {kind}: {DAYS} simulated days, {figures['jobs_total']} jobs, "
            f"{figures['faults']} faults, {month.recoveries} recoveries in "
            f"{figures['seconds']} s; {summary}, {page}"
        )
        if len(FAULTS) <= DAYS:
            assert set(figures["fault_kinds"]) == set(FAULTS)
        assert failures == [], "\n".join(failures)
