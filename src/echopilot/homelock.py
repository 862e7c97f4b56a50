"""An exclusive lock a process holds on a file for its whole life, naming it by pid.

The kernel drops an flock when its process dies, even by SIGKILL, so a file left behind
never blocks anything: readers test the lock and never trust the file alone. EchoPilot
holds one per home for `echopilot up` and one for the scheduler (`<home>/run/*.pid`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from echopilot.errors import AlreadyRunningError

# A lock taken only to test it (LOCK_SH) is held for microseconds; an owner that meets one
# retries this long before it concludes that another owner holds the lock.
ACQUIRE_RETRY_SECONDS = 1.0


class PidLock:
    """An exclusive flock on `path` (which holds our pid), released when closed or at exit.

    Opened by Python, the file is not inherited by child processes, so the task processes
    and the fork server never keep a lock alive after its owner died."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, refusal: Callable[[str], str]) -> PidLock:
        """Take the lock or raise AlreadyRunningError(refusal(holder's pid))."""
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + ACQUIRE_RETRY_SECONDS
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if _try_lock(fd, fcntl.LOCK_EX):
                if _same_file(fd, path):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                    return cls(path, fd)
                os.close(fd)  # its owner removed the file meanwhile: lock the new one
                continue
            holder = _exclusive_holder(fd)
            os.close(fd)
            if holder is not None:
                raise AlreadyRunningError(refusal(str(holder)))
            if time.monotonic() >= deadline:
                raise AlreadyRunningError(refusal("unknown"))
            time.sleep(0.01)

    def release(self) -> None:
        """Remove the file while still holding the lock, then drop it; whoever opened the
        old file before it went notices that it is no longer at `path` and retries."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> PidLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _exclusive_holder(fd: int) -> int | None:
    """The pid in the file when an exclusive lock is held on it, else None. A shared lock
    succeeds unless an exclusive one is held, and is dropped again at once."""
    if _try_lock(fd, fcntl.LOCK_SH):
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    # The owner writes its pid just after locking; give it that moment.
    for _ in range(50):
        try:
            return int(os.pread(fd, 32, 0).decode().strip())
        except ValueError:
            time.sleep(0.01)
    return None


def lock_holder(path: Path) -> int | None:
    """The pid of the process that holds the lock on `path`, or None when nobody does (the
    file is missing, or left over by a process that died)."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            holder = _exclusive_holder(fd)
            if _same_file(fd, path) or holder is not None:
                return holder
        finally:
            os.close(fd)
    return None  # replaced three times in a row: its owners come and go
