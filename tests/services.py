"""PostgreSQL and Redis servers of a test's own, on free ports, that the test may stop and
start again (a restart of the shared servers would pull them from under other tests), and a
small disk (tmpfs) to fill.

Both need their server binaries (Debian's postgresql and redis-server packages, which CI
installs); PostgreSQL's also needs root, to run it as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.api_support import free_port
from tests.conftest import REQUIRE_SERVICES, wait_for


def _missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what}, and ECHOPILOT_TEST_REQUIRE_SERVICES=1 makes it mandatory")
    pytest.skip(what)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class RedisServer:
    """Without persistence: a restart loses what the queue held, the harshest case."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.root)]
        with (self.root / "redis.out").open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: _listening(self.port), timeout=20)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class PostgresServer:
    """A cluster made by initdb, trust auth, listening on 127.0.0.1 only. Its folder is
    under /tmp itself: pytest's own folders are closed to the postgres user."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ep-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        if not found:
            _missing(f"PostgreSQL's {name} is not installed")
        return found[-1]

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def init(self) -> PostgresServer:
        if os.geteuid() != 0:
            _missing("a PostgreSQL server of the test's own needs root (to run as postgres)")
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        made = self._as_postgres(
            self._bin("initdb"), "-D", str(self.root / "data"), "-U", "postgres",
            "--auth=trust", "--no-sync",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        return self

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        started = self._as_postgres(
            self._bin("pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr + (self.root / "log").read_text()[-2000:]
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            self._bin("pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop"
        )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` mounted at `path` (root only), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small filesystem here: {mounted.stderr.strip()}"
        if os.environ.get("ECHOPILOT_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a file at `path` until the disk is full."""
    block = b"\0" * (1 << 16)
    with path.open("wb", buffering=0) as sink, contextlib.suppress(OSError):
        while True:
            sink.write(block)
    return path
