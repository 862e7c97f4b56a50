"""What a running EchoPilot process holds: settings, database, queue and model provider.

Built once per process from settings; everything is created on first use so that a
command touches only what it needs.
"""

from __future__ import annotations

import os
import socket
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from echopilot.config import Settings
from echopilot.db.engine import make_engine, make_session_factory
from echopilot.db.migrate import upgrade

if TYPE_CHECKING:
    from echopilot.ai.base import Provider
    from echopilot.queue.app import JobQueue


class Runtime:
    def __init__(self, settings: Settings, *, pool_size: int = 10) -> None:
        self.settings = settings
        self._pool_size = pool_size
        self.identity = f"{socket.gethostname()}:{os.getpid()}"

    @cached_property
    def engine(self) -> Engine:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return make_engine(self.settings.resolved_database_url, pool_size=self._pool_size)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def queue(self) -> JobQueue:
        from echopilot.queue.app import JobQueue

        return JobQueue(self.settings)

    @cached_property
    def provider(self) -> Provider:
        from echopilot.ai.registry import build_provider

        return build_provider(self.settings)

    def migrate(self) -> tuple[str | None, str | None]:
        """Apply pending migrations (every entry point calls this on start)."""
        return upgrade(self.engine)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
