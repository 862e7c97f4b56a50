"""/api/automations: the scheduler's status, pause and resume, and run-now."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from echopilot import audit
from echopilot.api.deps import RuntimeDep
from echopilot.api.envelope import Envelope
from echopilot.api.pool import answer
from echopilot.api.schemas import AutomationsStatus, ControlResult, RunOut
from echopilot.db.engine import read_session, write_session
from echopilot.db.models import ScheduleRun
from echopilot.errors import NotFoundError
from echopilot.runtime import Runtime
from echopilot.scheduler import control, store
from echopilot.scheduler.daemon import Scheduler
from echopilot.scheduler.table import build

router = APIRouter(prefix="/automations", tags=["automations"])
ACTOR = "api"


@router.get("/status", response_model=Envelope[AutomationsStatus])
async def automations_status(runtime: RuntimeDep, request: Request) -> Response:
    return await answer(request, lambda: control.status(runtime))


@router.post("/start", response_model=Envelope[ControlResult])
async def automations_start(runtime: RuntimeDep, request: Request) -> Response:
    """Resume if paused, and start this home's scheduler unless one runs (when this server
    may control processes); answers once it runs, so the status says `running: true`."""
    return await answer(request, lambda: _start(runtime), slow=True)


@router.post("/stop", response_model=Envelope[ControlResult])
async def automations_stop(runtime: RuntimeDep, request: Request) -> Response:
    """Pause: every scheduler on this database claims no new slots until started again
    (survives restarts); no process is stopped (`echopilot scheduler stop` does that)."""
    return await answer(request, lambda: _stop(runtime))


@router.post("/run/{task}", response_model=Envelope[RunOut])
async def automations_run(task: str, runtime: RuntimeDep, request: Request) -> Response:
    """Run a task now (recorded as a manual run) and return the finished run."""
    return await answer(request, lambda: _run(request, runtime, task), slow=True)


def _start(runtime: Runtime) -> dict[str, Any]:
    allowed = runtime.settings.allow_process_control
    result = control.start(runtime, actor=ACTOR, launch=allowed)
    if result.started:
        action = "started"
    else:
        action = "resumed" if result.resumed else "already running"
        if result.pid is None and not control.status(runtime)["running"]:
            action += "; no scheduler is running and process control is off"
    with write_session(runtime.sessions) as session:
        audit.record(
            session,
            actor=ACTOR,
            action="automations.start",
            details={"result": action, "pid": result.pid},
        )
    return {"action": action, "status": control.status(runtime)}


def _stop(runtime: Runtime) -> dict[str, Any]:
    paused = store.set_paused(runtime.sessions, True, ACTOR)
    action = "paused" if paused else "already paused"
    with write_session(runtime.sessions) as session:
        audit.record(session, actor=ACTOR, action="automations.stop", details={"result": action})
    return {"action": action, "status": control.status(runtime)}


def _run(request: Request, runtime: Runtime, task: str) -> dict[str, Any]:
    table = build(runtime.settings)
    if task not in table:
        raise NotFoundError("task", repr(task), f"tasks: {', '.join(table)}")
    claimed = _manual_runner(request, runtime).run_manual(table[task])
    with write_session(runtime.sessions) as session:
        audit.record(session, actor=ACTOR, action="automations.run", target=f"task:{task}")
    with read_session(runtime.sessions) as session:
        run = session.scalars(select(ScheduleRun).where(ScheduleRun.id == claimed.id)).one()
        return control.run_dict(run)


_manual_lock = threading.Lock()


def _manual_runner(request: Request, runtime: Runtime) -> Scheduler:
    with _manual_lock:
        scheduler: Scheduler | None = getattr(request.app.state, "manual_scheduler", None)
        if scheduler is None:
            from echopilot.scheduler.executor import ProcessRunner

            scheduler = Scheduler(runtime, build(runtime.settings), ProcessRunner(runtime.settings))
            request.app.state.manual_scheduler = scheduler
        return scheduler
