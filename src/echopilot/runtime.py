"""What a running EchoPilot process holds: settings, database, queue and model provider.

Built once per process from settings; everything is created on first use so that a
command touches only what it needs.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from echopilot import procs
from echopilot.config import Settings
from echopilot.db.engine import make_engine, make_session_factory
from echopilot.db.migrate import upgrade
from echopilot.errors import ConfigError

if TYPE_CHECKING:
    from echopilot.ai.base import Provider
    from echopilot.jobs.budget import Guard
    from echopilot.jobs.catalog import Catalog
    from echopilot.queue.app import JobQueue


def prepare_home(home: Path) -> None:
    """Create the home folder (mode 0700: it holds client data and the key) or check that
    an existing one is a writable folder; ConfigError names ECHOPILOT_HOME otherwise."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"ECHOPILOT_HOME: cannot create {str(home)!r} ({reason}); set it to a folder you "
            "can write"
        ) from None
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(
            f"ECHOPILOT_HOME: {str(home)!r} is not a folder you can write; set it to one"
        )


class Runtime:
    def __init__(self, settings: Settings, *, pool_size: int = 10) -> None:
        self.settings = settings
        self._pool_size = pool_size
        # Names this process for good (pids are reused): lease owner, heartbeat row.
        self.identity = str(procs.own_stamp())

    @cached_property
    def engine(self) -> Engine:
        prepare_home(self.settings.home)
        return make_engine(
            self.settings.resolved_database_url,
            pool_size=self._pool_size,
            busy_timeout_ms=int(self.settings.sqlite_busy_seconds * 1000),
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def queue(self) -> JobQueue:
        from echopilot.queue.app import JobQueue

        return JobQueue(self.settings)

    @cached_property
    def catalog(self) -> Catalog:
        from echopilot.jobs.catalog import Catalog

        return Catalog()

    @cached_property
    def budget(self) -> Guard:
        from echopilot.jobs.budget import Guard

        return Guard(self.settings)

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
