"""The audit log: every mutation made through the API or the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from echopilot.clock import utcnow
from echopilot.db.models import AuditLog


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    session.add(
        AuditLog(
            at=now or utcnow(),
            actor=actor,
            action=action,
            target=target,
            details=details or {},
        )
    )
