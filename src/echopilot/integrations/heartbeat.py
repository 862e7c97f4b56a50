"""Pings an outside cron monitor (Healthchecks and the like), so silence gets noticed."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


class HeartbeatPinger:
    """GET the URL while healthy; GET <url>/fail after a failed run."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def __call__(self, failed: bool) -> None:
        target = f"{self.url}/fail" if failed else self.url
        try:
            httpx.get(target, timeout=TIMEOUT_SECONDS, follow_redirects=True).raise_for_status()
        except httpx.HTTPError as exc:
            # The monitor being unreachable must never stop the scheduler.
            log.warning("heartbeat ping failed: %s", type(exc).__name__)
