"""Dependencies shared by the routes, as Annotated aliases.

The dashboard key is no dependency: EdgeMiddleware checks it before the body is read
(api/middleware.py), for every path under /api/ and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from echopilot.runtime import Runtime


# Async (they do no I/O): sync dependencies would each cost a hop to the thread pool.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[Session]:
    runtime: Runtime = request.app.state.runtime
    with runtime.sessions() as session:  # connects lazily, in the route's thread
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
