"""Is the worker that holds a job's lease still alive?

A worker is named by its process stamp (echopilot.procs) and beats a heartbeat row every few
seconds while it runs jobs. On its own host (same boot and pid namespace) the process table
answers exactly and at once: a worker killed with -9 is dead the moment it is gone. On
another host a heartbeat silent for STALE_AFTER means dead. A holder with no heartbeat row
(a process that ran a job without a lease keeper) is judged by its lease alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from echopilot import procs

BEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=30)
PRUNE_AFTER = timedelta(days=1)


class Holder(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # no heartbeat to judge by: only the lease's expiry tells


def beat_seconds(lease_seconds: float) -> float:
    """How often a worker beats and renews: often enough that a lease never lapses."""
    return max(0.5, min(BEAT_SECONDS, lease_seconds / 3))


def holder_state(
    owner: str | None, heartbeat_at: datetime | None, now: datetime, *, judge_remote: bool = True
) -> Holder:
    """Judge the lease holder `owner` by its process (when on this host) or by the heartbeat
    row it keeps (None when it has none). With `judge_remote` False, a remote holder counts
    as alive: the caller itself was just held up (a stalled database), so everyone's
    heartbeat looks old for a moment."""
    if not owner or heartbeat_at is None:
        return Holder.UNKNOWN
    stamp = procs.Stamp.parse(owner)
    local = procs.alive(stamp) if stamp is not None else None
    if local is not None:
        return Holder.ALIVE if local else Holder.DEAD
    if not judge_remote:
        return Holder.ALIVE
    return Holder.DEAD if now - heartbeat_at > STALE_AFTER else Holder.ALIVE
