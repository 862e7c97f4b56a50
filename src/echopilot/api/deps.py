"""Dependencies shared by the routes, as Annotated aliases.

The dashboard key is no dependency: EdgeMiddleware checks it before the body is read
(api/middleware.py), for every path under /api/ and /metrics. Nor is a database session:
a route opens one inside its work on the thread pool (api/pool.py), never across hops."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from echopilot.runtime import Runtime


# Async (they do no I/O): sync dependencies would each cost a hop to the thread pool.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
