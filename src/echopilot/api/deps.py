"""Dependencies shared by the routes, as Annotated aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from echopilot.api.auth import KeyGuard, presented_key
from echopilot.runtime import Runtime


# Async (they do no I/O): sync dependencies would each cost a hop to the thread pool.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[Session]:
    runtime: Runtime = request.app.state.runtime
    with runtime.sessions() as session:  # connects lazily, in the route's thread
        yield session


async def require_key(request: Request) -> None:
    guard: KeyGuard = request.app.state.key_guard
    client = request.client.host if request.client else "unknown"
    guard.check(client, presented_key(request))


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
