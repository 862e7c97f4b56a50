"""The soak runs only when asked for (`make soak` sets ECHOPILOT_SOAK_DAYS): a marker
expression given to `make test` (which replaces `-m 'not soak'`) must not start it."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ECHOPILOT_SOAK_DAYS"):
        return
    skip = pytest.mark.skip(reason="the soak runs with `make soak` (ECHOPILOT_SOAK_DAYS)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
