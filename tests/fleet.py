"""A test's fleet of real `echopilot` processes (APIs, workers, schedulers), each with its
output in a file, killed and restarted at will, and all stopped at the end."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.api_support import free_port
from tests.conftest import wait_for


@dataclass
class Proc:
    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """The processes of one test, each with its output in a file; all stopped at the end."""

    root: Path
    procs: list[Proc] = field(default_factory=list)
    starts: Counter[str] = field(default_factory=Counter)

    def start(self, name: str, env: dict[str, str], *args: str, port: int | None = None) -> Proc:
        self.starts[name] += 1
        home = Path(env["ECHOPILOT_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        env = {**env, "PYTHONUNBUFFERED": "1"}
        if port is not None:
            env["ECHOPILOT_PORT"] = str(port)
        out = self.root / f"{name}-{self.starts[name]}.out"
        with out.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "echopilot", *args],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=home.parent,
            )
        proc = Proc(name, args, env, process, port)
        self.procs.append(proc)
        return proc

    def api(self, name: str, env: dict[str, str]) -> Proc:
        proc = self.start(name, env, "serve", port=free_port())
        wait_healthy(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait(timeout=10)

    def restart(self, proc: Proc) -> Proc:
        """The same command again (the port too, for an API)."""
        return self.start(proc.name, proc.env, *proc.args, port=proc.port)

    def alive(self) -> list[Proc]:
        return [p for p in self.procs if p.process.poll() is None]

    def output(self, name: str) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.root.glob(f"{name}-*.out"))
        )

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.alive():
            proc.process.send_signal(signal.SIGTERM)
        codes = {}
        for proc in self.procs:
            try:
                proc.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait(timeout=10)
            codes[f"{proc.name}/{proc.process.pid}"] = proc.process.returncode
        return codes


def wait_healthy(proc: Proc, timeout: float = 60) -> None:
    def answers() -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"{proc.name} exited early (rc {proc.process.returncode})")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(proc.url + "/health", timeout=2).status_code == 200
        return False

    wait_for(answers, timeout=timeout, every=0.1)
