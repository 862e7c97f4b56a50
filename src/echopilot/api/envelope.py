"""The one shape of every JSON answer: {"ok": bool, "data": ..., "error": null | {...}}."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel

T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    fields: list[str] | None = None


class Envelope(BaseModel, Generic[T]):
    ok: bool
    data: T | None = None
    error: ErrorBody | None = None


class ErrorEnvelope(BaseModel):
    ok: bool
    data: None = None
    error: ErrorBody


def ok(data: Any) -> dict[str, Any]:
    return {"ok": True, "data": data, "error": None}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    fields: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, request_id=request_id, fields=fields)
    return JSONResponse(
        {"ok": False, "data": None, "error": body.model_dump(exclude_none=True)},
        status_code=status,
        headers=headers,
    )


# Documented on every protected operation, so clients (and schemathesis) know the shapes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": text}
    for code, text in {
        401: "Missing or wrong dashboard key",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Request body too large",
        422: "Invalid input; `error.fields` names the fields",
        429: "Too many failed key attempts; retry after the Retry-After header",
        500: "Internal error; `error.request_id` identifies it in the logs",
        503: "Over capacity (`overloaded`), or the database, queue or disk away for a moment "
        "(`database_unavailable`, `queue_unavailable`, `disk_full`); retry after Retry-After",
    }.items()
}
