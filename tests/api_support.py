"""Shared helpers of the HTTP API tests: the in-process app, the error envelope, the routes
that need the key, and a real `echopilot serve` (or `up`) child process on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from starlette.testclient import TestClient

from echopilot.api.app import create_app
from echopilot.config import Settings
from echopilot.runtime import Runtime
from tests.conftest import FOREIGN_ENV, env_for

TEST_KEY = "ep-api-test-key-7d41c9a02b6e58f3"  # 32 characters, no spaces
PATH_VALUES = {
    "job_id": "1",
    "task": "retention",
    "id": "1",
    "rule": "queue_age",
    "stamp": "20261203_080000",
    "kind": "html",
}


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No EchoPilot setting from the developer's shell (for module-scoped fixtures, which
    run before conftest's per-test clean-up)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(FOREIGN_ENV) and not name.startswith("ECHOPILOT_TEST_"):
                mp.delenv(name)
        yield


@contextlib.contextmanager
def api_client(
    runtime: Runtime, key: str | None = TEST_KEY, *, raise_server_exceptions: bool = True
) -> Iterator[TestClient]:
    """A TestClient on `create_app(runtime, TEST_KEY)`; sends the key unless key is None."""
    app = create_app(runtime, TEST_KEY)
    headers = {"X-Dash-Key": key} if key else {}
    with TestClient(
        app, headers=headers, raise_server_exceptions=raise_server_exceptions
    ) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the error envelope {ok: false, data: null, error: {code, message}}; return error."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"ok", "data", "error"}, body
    assert body["ok"] is False
    assert body["data"] is None
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return error


def assert_ok(response: httpx.Response, status: int = 200) -> Any:
    """Assert the success envelope; return its data."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"ok", "data", "error"}, body
    assert body["ok"] is True and body["error"] is None, body
    return body["data"]


def fill_path(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no test value for a parameter of {path}"
    return path


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route of `app`, included routers flattened.

    FastAPI 0.16x keeps included routers as branches in `app.routes`;
    `iter_route_contexts` flattens them (older versions list the routes themselves)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(flatten(app.routes)) if flatten else list(app.routes)
    found = []
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and methods:
            found += [(method, path) for method in methods if method != "HEAD"]
    return sorted(set(found))


def protected_operations(app: Any) -> list[tuple[str, str]]:
    """(method, path with parameters filled) of every route under /api/ and /metrics."""
    return [
        (method, fill_path(path))
        for method, path in app_routes(app)
        if path.startswith("/api/") or path == "/metrics"
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not 127.x, or None when it has none."""
    candidates = []
    with contextlib.suppress(OSError):
        candidates.append(socket.gethostbyname(socket.gethostname()))
    # A UDP "connect" only picks the outgoing interface; it sends nothing.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))
        candidates.append(sock.getsockname()[0])
    for address in candidates:
        if address and not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


@dataclass
class Child:
    """A running `echopilot` child process with its output in a file."""

    process: subprocess.Popen[bytes]
    port: int
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the child exited early:\n{self.text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"/health did not answer in {timeout}s:\n{self.text()[-4000:]}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return int(self.process.returncode)


def start_child(
    settings: Settings, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> Child:
    """Start `python -m echopilot ARGS` with `settings` on a free ECHOPILOT_PORT."""
    settings.home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    child_env = env_for(settings)
    child_env.update({"ECHOPILOT_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    child_env.update(env or {})
    output = settings.home.parent / f"{args[0]}-{port}-{time.monotonic_ns()}.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "echopilot", *args],
            env=child_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=settings.home.parent,
        )
    return Child(process=process, port=port, output=output)


@contextlib.contextmanager
def running(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Iterator[Child]:
    """A child that answers /health for the length of the block, then is stopped."""
    child = start_child(settings, *args, env=env)
    try:
        child.wait_healthy()
        yield child
    finally:
        child.stop()


# Raw HTTP against a real server: what httpx would hide (partial requests, huge heads,
# how and when the server closes the connection).


@dataclass
class RawAnswer:
    """What a raw connection received: the bytes, whether the server closed the
    connection, and the seconds from the first byte sent to the close (or the give-up)."""

    data: bytes
    closed: bool
    elapsed: float

    @property
    def status(self) -> int:
        line = self.data.split(b"\r\n", 1)[0].split(b" ")
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        pairs = (line.decode("latin-1").split(":", 1) for line in head if b":" in line)
        return {name.strip().lower(): value.strip() for name, value in pairs}

    @property
    def header_names(self) -> list[str]:
        head = self.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        return [line.split(b":", 1)[0].decode("latin-1").lower() for line in head]

    def json(self) -> Any:
        import json

        return json.loads(self.data.split(b"\r\n\r\n", 1)[1])


def raw_exchange(port: int, *parts: bytes, wait: float = 10.0) -> RawAnswer:
    """Send `parts` on a new connection to 127.0.0.1:`port`, then read until the server
    closes the connection or `wait` seconds pass. A reset while sending is tolerated (the
    server may stop reading a request it refuses)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for part in parts:
                sock.sendall(part)
        return read_until_closed(sock, started, wait)


def read_until_closed(sock: socket.socket, started: float, wait: float) -> RawAnswer:
    data = b""
    deadline = started + wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return RawAnswer(data, True, time.monotonic() - started)
        if not chunk:
            return RawAnswer(data, True, time.monotonic() - started)
        data += chunk
    return RawAnswer(data, False, time.monotonic() - started)


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def client_at(app: Any, host: str) -> TestClient:
    """An in-process client with an address of its own (the lock-out counts per address)."""
    return TestClient(app, client=(host, 50000), raise_server_exceptions=False)


@contextlib.contextmanager
def running_together(
    settings: Settings, *specs: tuple[tuple[str, ...], dict[str, str] | None]
) -> Iterator[list[Child]]:
    """Several children, each (args, env), started at once; all answer /health in the
    block, then all are stopped."""
    children = [start_child(settings, *args, env=env) for args, env in specs]
    try:
        for child in children:
            child.wait_healthy()
        yield children
    finally:
        for child in children:
            child.stop()
