"""`echopilot doctor`: how long a whole check takes, against `echopilot version` (the
command's start-up alone) in the same run.

Each backend gets a fresh home with its schema made by `echopilot db upgrade`; then
`echopilot version` and `echopilot doctor --json` run --runs times each as new processes in
a clean environment (HOME, PATH and the EchoPilot settings only). Printed: the median and
worst wall time of each, doctor's time beyond start-up, and the median seconds of each
check. PostgreSQL + Redis are used when they answer (ECHOPILOT_TEST_POSTGRES_URL,
ECHOPILOT_TEST_REDIS_URL), in a database made for the run and dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import answers, machine

PG = os.environ.get(
    "ECHOPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("ECHOPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
EP = str(Path(sys.executable).with_name("echopilot"))


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    spent = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv[1:])} exited {done.returncode}: {done.stderr[-400:]}")
    return spent, done.stdout


def measure(label: str, env: dict[str, str], home: Path, runs: int) -> None:
    subprocess.run([EP, "db", "upgrade"], env=env, cwd=home, check=True, capture_output=True)
    baseline = [_timed([EP, "version"], env, home)[0] for _ in range(runs)]
    walls: list[float] = []
    checks: dict[str, list[float]] = {}
    for _ in range(runs):
        spent, out = _timed([EP, "doctor", "--json"], env, home)
        walls.append(spent)
        for c in json.loads(out)["checks"]:
            checks.setdefault(c["check"], []).append(c["seconds"])
    base, doc = statistics.median(baseline), statistics.median(walls)
    print(f"\n{label}: {runs} runs each")
    print(
        f"  echopilot version      median {base * 1000:7.0f} ms   "
        f"worst {max(baseline) * 1000:7.0f} ms"
    )
    print(
        f"  echopilot doctor       median {doc * 1000:7.0f} ms   worst {max(walls) * 1000:7.0f} ms"
    )
    print(f"  doctor beyond start-up {(doc - base) * 1000:7.0f} ms ({doc / base:.2f}x version)")
    slowest = sorted(checks.items(), key=lambda kv: -statistics.median(kv[1]))[:5]
    print(
        "  slowest checks (median ms): "
        + ", ".join(f"{name} {statistics.median(values) * 1000:.0f}" for name, values in slowest)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"bench/doctor.py: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        base_env = {"HOME": tmp, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        home = Path(tmp) / "embedded"
        home.mkdir(mode=0o700)
        measure("embedded (SQLite)", base_env | {"ECHOPILOT_HOME": str(home)}, home, args.runs)
        if not (answers(PG, 5432) and answers(REDIS, 6379)):
            print("\nPostgreSQL + Redis: not measured (not answering)")
            return 0
        name = f"bench_doctor_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG).set(database=name).render_as_string(hide_password=False)
            home = Path(tmp) / "production"
            home.mkdir(mode=0o700)
            env = base_env | {
                "ECHOPILOT_HOME": str(home),
                "ECHOPILOT_DATABASE_URL": url,
                "ECHOPILOT_QUEUE_URL": REDIS,
            }
            measure("PostgreSQL + Redis", env, home, args.runs)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
