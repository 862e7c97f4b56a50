"""The dashboard key: from DASHBOARD_KEY, or generated once into <home>/dashboard.key."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from echopilot.config import Settings
from echopilot.errors import ConfigError

KEY_FILE = "dashboard.key"


@dataclass(frozen=True)
class DashboardKey:
    value: str
    source: str  # "DASHBOARD_KEY" or the key file's path
    generated: bool  # True only for the call that created the file


def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def load_or_create(settings: Settings) -> DashboardKey:
    """The key in force. Creates the key file (mode 0600) when DASHBOARD_KEY is unset and
    no file exists; a concurrent creator loses the race and reads the winner's key."""
    if settings.dashboard_key is not None:
        return DashboardKey(settings.dashboard_key.get_secret_value(), "DASHBOARD_KEY", False)
    path = key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return DashboardKey(_read_existing(path), str(path), False)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return DashboardKey(value, str(path), True)


def _read_existing(path: Path) -> str:
    # Another process may have created the file a moment ago and not written it yet.
    for _ in range(20):
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 16:
            return value
        time.sleep(0.05)
    raise ConfigError(f"DASHBOARD_KEY: {path} holds no usable key; delete it to generate one")
