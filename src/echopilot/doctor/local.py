"""Checks of what lives with EchoPilot: its settings, home folder, database, queue, clock and
processes. None of them changes anything: no folder made, no migration run, no state flipped."""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import stat
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from echopilot import clock
from echopilot.cli.failures import explain
from echopilot.clock import age_text, ensure_utc, utcnow
from echopilot.config import Settings, env_name
from echopilot.db.engine import make_engine
from echopilot.db.migrate import MIGRATIONS, current_revision
from echopilot.db.models import SchedulerState, WorkerHeartbeat
from echopilot.doctor.finding import Finding, fail, ok, skip, warn
from echopilot.keys import key_path
from echopilot.queue.liveness import STALE_AFTER, Holder, holder_state

MiB = 1024 * 1024
DISK_FAIL_BYTES = 100 * MiB
DISK_WARN_BYTES = 1024 * MiB
CONNECT_SECONDS = 5
# Leases, heartbeats and schedule slots are times written by one host and read by another.
SKEW_WARN_SECONDS = 1.0
SKEW_FAIL_SECONDS = 5.0


def settings_finding(settings: Settings) -> Finding:
    where = (
        "embedded (SQLite)"
        if settings.database_url is None
        else make_url(settings.resolved_database_url).get_backend_name()
    )
    summary = (
        f"settings read; provider {settings.provider_name}, database {where}, "
        f"queue {_queue_kind(settings)}"
    )
    placeholders = _placeholders(settings)
    if placeholders:
        return fail(
            "settings",
            f"{', '.join(placeholders)} still hold the example's {PLACEHOLDER} placeholder",
            "set real values in the environment file (a dashboard key: "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
        )
    if not _loopback(settings.host) and not settings.trusted_proxy_list:
        return warn(
            "settings",
            f"{summary}; the API listens on {settings.host}, reachable from other machines",
            "serve it behind a TLS reverse proxy on this host and set ECHOPILOT_TRUSTED_PROXIES "
            "to the proxy's address (docs/deployment.md), or set ECHOPILOT_HOST=127.0.0.1",
        )
    env_file = Path(".env")
    if env_file.is_file() and env_file.stat().st_mode & 0o077:
        return warn(
            "settings",
            f"{summary}; .env in {Path.cwd()} can be read by other users and may hold keys",
            "chmod 600 .env",
        )
    return ok("settings", summary)


# deploy/echopilot.env.example's stand-in for every secret: a valid value, so it must be
# caught here rather than by the settings' own checks.
PLACEHOLDER = "CHANGE_ME"


def _placeholders(settings: Settings) -> list[str]:
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and PLACEHOLDER in text:
            found.append(env_name(name))
    return found


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _queue_kind(settings: Settings) -> str:
    return "embedded (SQLite)" if settings.queue_url is None else settings.queue_url.split(":")[0]


def home_finding(settings: Settings) -> Finding:
    home = settings.home
    if not home.exists():
        parent = next((p for p in home.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            return fail(
                "home",
                f"ECHOPILOT_HOME {str(home)!r} does not exist and cannot be made "
                f"({parent} is not writable)",
                "set ECHOPILOT_HOME to a folder you can write, or create it for this user",
            )
        return warn(
            "home",
            f"ECHOPILOT_HOME {str(home)!r} does not exist yet",
            "it is made (mode 700) at the first start; `echopilot up` or `echopilot db upgrade`",
        )
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        return fail(
            "home",
            f"ECHOPILOT_HOME {str(home)!r} is not a folder this user can write",
            f"chown it to this user and chmod 700 {home}, or set ECHOPILOT_HOME to another one",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return fail(
            "home",
            f"cannot write a file in {home}: {exc.strerror or exc}",
            "free disk space under it" if full else f"check the permissions of {home}",
        )
    key = key_path(settings)
    if key.is_file() and key.stat().st_mode & 0o077:
        return fail(
            "home",
            f"the dashboard key {key} can be read by other users",
            f"chmod 600 {key}, then consider a new key (delete the file; a new one is made)",
        )
    usage = shutil.disk_usage(home)
    room = f"{_size(usage.free)} free of {_size(usage.total)} under {home}"
    if usage.free < DISK_FAIL_BYTES:
        return fail(
            "home",
            f"only {room}: the database and the queue cannot grow",
            "free disk space (`echopilot retention` prunes old reports and rows) or move "
            "ECHOPILOT_HOME to a larger disk",
        )
    if usage.free < DISK_WARN_BYTES:
        return warn(
            "home", f"only {room}", "free disk space or move ECHOPILOT_HOME to a larger disk"
        )
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        return warn(
            "home",
            f"{room}; the folder (mode {mode:o}) can be read by other users, and it holds "
            "client data",
            f"chmod 700 {home}",
        )
    return ok("home", f"{room}; writable, private (mode {mode:o})")


def _size(n: int) -> str:
    if n >= 1024 * MiB:
        return f"{n / (1024 * MiB):.1f} GiB"
    return f"{n / MiB:.0f} MiB"


def open_database(settings: Settings) -> tuple[Engine | None, Finding]:
    """An engine for the database and what connecting to it found; no engine when it
    cannot be used (or does not exist yet, for the embedded one)."""
    url = settings.resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            return None, warn(
                "database",
                f"no database yet at {path}",
                "it is made at the first start (`echopilot up`, or `echopilot db upgrade`)",
            )
        engine = make_engine(url, pool_size=1)
    else:
        engine = create_engine(
            url,
            connect_args={"connect_timeout": CONNECT_SECONDS, "options": "-c timezone=UTC"},
            poolclass=NullPool,
            hide_parameters=True,
        )
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                verdict = str(conn.exec_driver_sql("PRAGMA quick_check").scalar())
                version = "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
                if verdict != "ok":
                    engine.dispose()
                    return None, fail(
                        "database",
                        f"the database at {path} is damaged ({verdict[:200]})",
                        "stop EchoPilot and restore the last backup (docs/deployment.md)",
                    )
                where = str(path)
            else:
                version = "PostgreSQL " + str(conn.execute(text("SHOW server_version")).scalar())
                where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"
    except Exception as exc:
        engine.dispose()
        failure = explain(exc, database_url=url)
        return None, fail(
            "database",
            _cause(failure.message),
            "start the database server, or correct ECHOPILOT_DATABASE_URL (host, port, user, "
            "database name)",
        )
    return engine, ok("database", f"{version} at {where}")


def _cause(message: str) -> str:
    """A failure's message without its advice: the report gives the fix on its own line."""
    return message.split("; check ", 1)[0]


def migrations_finding(engine: Engine) -> Finding:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return ok("migrations", f"at revision {head}, the newest this version knows")
    if current is None:
        return warn(
            "migrations",
            "the database holds no EchoPilot tables yet",
            "they are made at the first start, or by `echopilot db upgrade`",
        )
    try:
        pending = list(script.iterate_revisions(head, current))
    except (CommandError, ResolutionError):
        return fail(
            "migrations",
            f"the database is at revision {current}, which this version of EchoPilot does not "
            f"know (its newest is {head}): a newer version has upgraded it",
            "run the newer EchoPilot version on this host too (every process must run the same "
            "version), or restore a backup made before the upgrade",
        )
    return warn(
        "migrations",
        f"{len(pending)} migration(s) pending: the database is at {current}, this version at "
        f"{head}",
        "run `echopilot db upgrade` (every EchoPilot process also applies them as it starts)",
    )


def queue_finding(settings: Settings) -> Finding:
    url = settings.resolved_queue_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            return warn(
                "queue",
                f"no queue yet at {path}",
                "it is made at the first start (`echopilot up`)",
            )
        where = f"embedded (SQLite) at {path}"
    else:
        import redis

        parts = urlsplit(url)
        where = f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}"
        where += f"/{parts.path.strip('/') or '0'}"
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=CONNECT_SECONDS
        )
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        except Exception as exc:
            return fail(
                "queue",
                _cause(explain(exc).message),
                "start Redis, or correct ECHOPILOT_QUEUE_URL (host, port, password, database)",
            )
        finally:
            client.close()
        where = f"Redis {version} at {where.removeprefix('Redis at ')}"
    from echopilot.queue.app import JobQueue

    try:
        depth = JobQueue(settings).depth()
    except Exception as exc:
        return fail(
            "queue",
            _cause(explain(exc).message),
            "correct ECHOPILOT_QUEUE_URL, or free the disk under ECHOPILOT_HOME",
        )
    return ok("queue", f"{where}; {depth} message(s) waiting")


def clock_finding(engine: Engine) -> Finding:
    if clock.simulated():
        return warn(
            "clock",
            f"simulated time: {clock.CLOCK_FILE_ENV} is set, so this process tells the time "
            f"by a clock file (now {clock.utcnow():%Y-%m-%d %H:%M} UTC), not the wall clock",
            f"unset {clock.CLOCK_FILE_ENV}: it is for simulations and tests only",
        )
    if engine.dialect.name == "sqlite":
        return ok("clock", "one host: the embedded database keeps this host's time")
    with engine.connect() as conn:
        before = time.time()
        theirs = float(
            conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one()
        )
        after = time.time()
    skew = theirs - (before + after) / 2
    shown = f"{abs(skew):.2f} s {'behind' if skew < 0 else 'ahead of'} this host"
    summary = f"the database's clock is {shown} (measured within {(after - before) / 2:.3f} s)"
    if abs(skew) > SKEW_FAIL_SECONDS:
        return fail(
            "clock",
            summary + ": leases and schedule slots would be misjudged",
            "run time synchronisation (chrony or systemd-timesyncd) on this host and the "
            "database's host",
        )
    if abs(skew) > SKEW_WARN_SECONDS:
        return warn(
            "clock",
            summary,
            "run time synchronisation (chrony or systemd-timesyncd) on both hosts",
        )
    return ok("clock", summary)


def scheduler_finding(settings: Settings, engine: Engine) -> Finding:
    from echopilot.scheduler import store

    now = utcnow()
    with Session(engine) as session:
        live = store.live_instances(
            session, now, timedelta(seconds=settings.scheduler_stale_seconds)
        )
        newest = store.newest_heartbeat(session)
        state = session.get(SchedulerState, store.STATE_ID)
    if not live:
        last = (
            "never seen"
            if newest is None
            else f"last seen {age_text(now - ensure_utc(newest))} ago"
        )
        return warn(
            "scheduler",
            f"no scheduler is running ({last}): self-heal, alerts, reports and the brief do "
            "not run",
            "start `echopilot up` (one machine) or `echopilot scheduler run` (production)",
        )
    running = ", ".join(
        f"pid {i.pid} on {i.host} (beat {age_text(now - ensure_utc(i.heartbeat_at))} ago)"
        for i in live
    )
    if state is not None and state.paused:
        return warn(
            "scheduler",
            f"running but paused: {running}",
            "`echopilot scheduler start` resumes the scheduled tasks",
        )
    return ok("scheduler", f"running: {running}")


def workers_finding(engine: Engine) -> Finding:
    now = utcnow()
    with Session(engine) as session:
        rows = session.scalars(
            select(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at >= now - STALE_AFTER)
        ).all()
    live = [
        w for w in rows if holder_state(w.worker, ensure_utc(w.heartbeat_at), now) != Holder.DEAD
    ]
    if not live:
        return warn(
            "workers",
            "no worker is running: submitted jobs wait in the queue",
            "start `echopilot up` (one machine) or `echopilot worker` (production)",
        )
    threads = sum(w.concurrency for w in live)
    return ok("workers", f"{len(live)} worker(s) running, {threads} job(s) at once in all")


def has_process_tables(engine: Engine) -> bool:
    """Whether the tables scheduler and worker liveness are read from exist."""
    tables = inspect(engine)
    return tables.has_table("scheduler_instances") and tables.has_table("worker_heartbeats")


def not_checked(check: str, because: str) -> Finding:
    return skip(check, f"not checked: {because}")
