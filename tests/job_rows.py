"""Jobs written straight into the database, as any process could write them: the finance
tests build their histories this way, then check the figures against the rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert

# A finished-or-not job with nothing billed, costed or scored: tests set what they need.
BASE: dict[str, Any] = {
    "name": "job",
    "task_type": "research",
    "input": "text",
    "status": "done",
    "client_id": None,
    "provider": "openai",
    "model": "gpt-4o",
    "cost_micros": 0,
    "unpriced_models": [],
    "price_cents": None,
    "payment_status": "na",
    "qa_score": None,
    "qa_threshold": None,
    "duration_ms": None,
    "finished_at": None,
}


def job_row(**values: Any) -> dict[str, Any]:
    """BASE with `values` (a job needs at least created_at and updated_at)."""
    return {**BASE, **values}


def insert_rows(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` into `table` in one transaction; their ids in order."""
    with engine.begin() as conn:
        return [conn.execute(insert(table).returning(table.id), row).scalar_one() for row in rows]
