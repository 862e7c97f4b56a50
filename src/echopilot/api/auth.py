"""The dashboard key: constant-time comparison and a lock-out for repeated failures."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import defaultdict, deque

from fastapi import Request

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
LOCKOUT_SECONDS = 300.0


class AuthError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def presented_key(request: Request) -> str | None:
    header = request.headers.get("x-dash-key")
    if header:
        return header
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class KeyGuard:
    """Checks presented keys; a client with MAX_FAILURES failures within WINDOW_SECONDS is
    answered 429 for LOCKOUT_SECONDS, whatever key it then presents."""

    def __init__(self, key: str) -> None:
        self._digest = hashlib.sha256(key.encode()).digest()
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, client: str, presented: str | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            until = self._locked_until.get(client)
            if until is not None:
                if now < until:
                    raise AuthError(
                        429,
                        "too many failed key attempts; try again later",
                        retry_after=int(until - now) + 1,
                    )
                del self._locked_until[client]
        # Compare digests in constant time: equal lengths, so not even the key's length leaks.
        if presented is not None and hmac.compare_digest(
            hashlib.sha256(presented.encode()).digest(), self._digest
        ):
            with self._lock:
                self._failures.pop(client, None)
            return
        with self._lock:
            failures = self._failures[client]
            failures.append(now)
            while failures and failures[0] < now - WINDOW_SECONDS:
                failures.popleft()
            if len(failures) >= MAX_FAILURES:
                self._locked_until[client] = now + LOCKOUT_SECONDS
                failures.clear()
            if len(self._failures) > 10_000:  # many clients: forget the quiet ones
                quiet = [
                    c for c, f in self._failures.items() if not f or f[-1] < now - WINDOW_SECONDS
                ]
                for other in quiet:
                    del self._failures[other]
        message = "missing dashboard key" if presented is None else "wrong dashboard key"
        raise AuthError(401, f"{message}: send it as X-Dash-Key or Authorization: Bearer")
