"""Every setting EchoPilot reads, in one place.

Settings come from the environment and from a `.env` file in the working directory.
A bad value raises `ConfigError` with one line naming the setting and what it accepts;
the CLI turns that into exit code 2.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from echopilot.errors import ConfigError
from echopilot.money import usd_to_micros

ProviderName = Literal["auto", "openai", "offline"]
DEFAULT_RETENTION_PATTERNS = (
    "briefs/brief_*.json",
    "briefs/brief_*.html",
    "briefs/brief_*.md",
    "briefs/ingest_*.json",
    "briefs/analysis_*.json",
    "daily/daily_report_*.json",
    "daily/daily_report_*.html",
    "daily/daily_report_*.csv",
    "ingest/*.json",
    "analysis/*.json",
)

# SCHED_*_UTC times: 9:00 or 09:00.
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

# The secret settings: shown masked by `config show`, never logged.
SECRET_FIELDS = frozenset(
    {
        "openai_api_key",
        "dashboard_key",
        "alert_urls",
        "telegram_bot_token",
        "smtp_pass",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "notion_token",
    }
)
URL_FIELDS = frozenset(
    {
        "database_url",
        "queue_url",
        "heartbeat_url",
        "openai_base_url",
        "public_url",
        "stripe_api_base",
        "notion_api_base",
    }
)


def _env(name: str) -> Any:
    """Bind a field to exactly one environment variable name."""
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Only the documented names are read: matching field names too would let HOME,
        # HOST, PORT or MODEL, which other software sets, steer EchoPilot.
        validate_by_name=False,
        validate_by_alias=True,
        frozen=True,
    )

    home: Path = Field(
        default=Path("./var"),
        validation_alias=_env("ECHOPILOT_HOME"),
        description="Folder for the embedded database, queue, keys, logs and reports.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_DATABASE_URL"),
        description="SQLAlchemy URL of the database; default sqlite:///<home>/echopilot.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    queue_url: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_QUEUE_URL"),
        description="Huey storage: sqlite:///path (default <home>/queue.db), "
        "redis://host:port/db, or memory:// (one process only, for tests).",
    )
    sqlite_busy_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        validation_alias=_env("ECHOPILOT_SQLITE_BUSY_SECONDS"),
        description="How long a SQLite writer waits for another process's lock before it "
        "gives up with 'database is locked'.",
    )
    queue_name: str = Field(
        default="echopilot",
        validation_alias=_env("ECHOPILOT_QUEUE_NAME"),
        description="Name of the Huey queue; processes sharing a queue must use the same name.",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    host: str = Field(
        default="127.0.0.1",
        validation_alias=_env("ECHOPILOT_HOST"),
        description="Address the HTTP server binds; 0.0.0.0 exposes it to the network.",
        min_length=1,
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias=_env("ECHOPILOT_PORT"),
        description="Port of the HTTP server.",
    )
    dashboard_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("DASHBOARD_KEY"),
        description="Key for the API and dashboard (secret). Unset: one is generated into "
        "<home>/dashboard.key (mode 0600) and printed once.",
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias=_env("ECHOPILOT_TRUSTED_PROXIES"),
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers are believed; unset: those headers are "
        "ignored and the client is the connecting address.",
    )
    request_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        validation_alias=_env("ECHOPILOT_REQUEST_TIMEOUT_SECONDS"),
        description="Time a client has to send a whole request (headers and body); slower "
        "ones get 408 and are disconnected.",
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=_env("ECHOPILOT_API_WORKERS"),
        description="Processes serving the HTTP API (each uses one core at most).",
    )
    api_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        validation_alias=_env("ECHOPILOT_API_THREADS"),
        description="Threads per API process for database work; 0: 1 on SQLite (its work "
        "is CPU under one lock, and more threads only take turns), 4 on PostgreSQL (network "
        "round trips overlap).",
    )
    max_body_bytes: int = Field(
        default=2_000_000,
        ge=1024,
        le=100_000_000,
        validation_alias=_env("ECHOPILOT_MAX_BODY_BYTES"),
        description="Largest request body the API accepts; larger ones get 413.",
    )
    metrics_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        validation_alias=_env("ECHOPILOT_METRICS_CACHE_SECONDS"),
        description="How long the API reuses a computed metrics summary (0: never); the "
        "answer's as_of says when it was computed.",
    )
    ai_provider: ProviderName = Field(
        default="auto",
        validation_alias=_env("ECHOPILOT_AI_PROVIDER"),
        description="auto (openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else offline), "
        "openai, or offline.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("OPENAI_API_KEY"),
        description="API key for the OpenAI-compatible server (secret; shown masked).",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=_env("OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible API (OpenAI, Azure, Ollama, vLLM, "
        "llama.cpp server); default the OpenAI API.",
    )
    model: str = Field(
        default="gpt-4o",
        validation_alias=_env("ECHOPILOT_MODEL"),
        description="Model that performs the task.",
        min_length=1,
    )
    qa_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=_env("ECHOPILOT_QA_MODEL"),
        description="Model that judges quality (the QA judge).",
        min_length=1,
    )
    escalation_model: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_ESCALATION_MODEL"),
        description="When set, a task whose answer fails QA runs once more on this model.",
    )
    max_output_tokens: int = Field(
        default=4096,
        ge=16,
        le=200_000,
        validation_alias=_env("ECHOPILOT_MAX_OUTPUT_TOKENS"),
        description="Longest answer a task may produce, in tokens; a cut-off answer goes to "
        "review, never billed as done.",
    )
    qa_threshold: int = Field(
        default=80,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_QA_THRESHOLD"),
        description="QA pass mark (0-100) when neither the job nor its task type sets one.",
    )
    model_prices: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_MODEL_PRICES"),
        description='JSON price overrides in USD per million tokens, e.g. {"llama3": '
        '{"input": "0.10", "output": "0.40"}}; wins over genai-prices.',
    )
    ai_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        validation_alias=_env("ECHOPILOT_AI_TIMEOUT_SECONDS"),
        description="Timeout of one model call.",
    )
    ai_max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        validation_alias=_env("ECHOPILOT_AI_MAX_RETRIES"),
        description="Retries of a transient model error (429, 5xx, timeout) within one attempt.",
    )
    ai_retry_base_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        validation_alias=_env("ECHOPILOT_AI_RETRY_BASE_SECONDS"),
        description="First backoff delay of those retries; doubles each time, with jitter.",
    )
    ai_retry_max_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        validation_alias=_env("ECHOPILOT_AI_RETRY_MAX_SECONDS"),
        description="Longest single wait between retries, Retry-After included.",
    )
    offline_latency_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        validation_alias=_env("ECHOPILOT_OFFLINE_LATENCY_MS"),
        description="Simulated latency of each offline model call (for demos and benchmarks).",
    )
    max_input_chars: int = Field(
        default=200_000,
        ge=1,
        le=10_000_000,
        validation_alias=_env("ECHOPILOT_MAX_INPUT_CHARS"),
        description="Longest job input accepted, in characters.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        validation_alias=_env("ECHOPILOT_MAX_ATTEMPTS"),
        description="Attempts a job gets before it is dead.",
    )
    max_lost_leases: int = Field(
        default=10,
        ge=1,
        le=1000,
        validation_alias=_env("ECHOPILOT_MAX_LOST_LEASES"),
        description="A job that has lost its worker (killed, crashed) this many times is dead; "
        "counted apart from ECHOPILOT_MAX_ATTEMPTS, which counts model failures.",
    )
    retry_delay_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        validation_alias=_env("ECHOPILOT_RETRY_DELAY_SECONDS"),
        description="Wait before a failed job's next attempt; doubles each attempt.",
    )
    lease_seconds: int = Field(
        default=120,
        ge=2,
        le=86_400,
        validation_alias=_env("ECHOPILOT_LEASE_SECONDS"),
        description="How long a claimed job is held without renewal before it counts as stuck "
        "when its worker cannot be judged otherwise (a worker seen dead on its own machine, or "
        "silent for 30 s elsewhere, loses its jobs at once).",
    )
    worker_concurrency: int = Field(
        default=8,
        ge=1,
        le=512,
        validation_alias=_env("ECHOPILOT_WORKER_CONCURRENCY"),
        description="Jobs one worker process runs at once (threads: model calls are I/O-bound).",
    )
    worker_shutdown_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        validation_alias=_env("ECHOPILOT_WORKER_SHUTDOWN_SECONDS"),
        description="On SIGTERM/SIGINT, how long running jobs may finish before they are "
        "handed back to the queue.",
    )
    sweep_interval_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        validation_alias=_env("ECHOPILOT_SWEEP_INTERVAL_SECONDS"),
        description="How often a worker runs the recovery sweep (stuck and orphaned jobs).",
    )
    retention_keep: int = Field(
        default=30,
        ge=1,
        le=100_000,
        validation_alias=_env("ECHOPILOT_RETENTION_KEEP"),
        description="Report files kept per pattern (the newest, by the timestamp in the name).",
    )
    retention_patterns: str = Field(
        default=",".join(DEFAULT_RETENTION_PATTERNS),
        validation_alias=_env("ECHOPILOT_RETENTION_PATTERNS"),
        description="Comma-separated glob patterns under <home>/reports/ that retention prunes.",
        min_length=1,
    )
    retention_row_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        validation_alias=_env("ECHOPILOT_RETENTION_ROW_DAYS"),
        description="Schedule runs and stale heartbeats older than this many days are pruned.",
    )
    task_modules: str = Field(
        default="",
        validation_alias=_env("ECHOPILOT_TASK_MODULES"),
        description="Comma-separated Python modules whose scheduled tasks are registered too.",
    )
    heartbeat_url: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_HEARTBEAT_URL"),
        description="Cron-monitor URL (e.g. Healthchecks) the scheduler GETs every minute while "
        "healthy; /fail is appended after a failed run.",
    )
    scheduler_shutdown_seconds: float = Field(
        default=20.0,
        ge=0,
        le=3600,
        validation_alias=_env("ECHOPILOT_SCHEDULER_SHUTDOWN_SECONDS"),
        description="On SIGTERM/SIGINT, how long running tasks may finish before they are "
        "stopped and marked abandoned.",
    )
    scheduler_stale_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        validation_alias=_env("ECHOPILOT_SCHEDULER_STALE_SECONDS"),
        description="A scheduler silent this long is dead: its running runs become abandoned "
        "and their tasks eligible again.",
    )
    scheduler_max_parallel: int = Field(
        default=8,
        ge=1,
        le=256,
        validation_alias=_env("ECHOPILOT_SCHEDULER_MAX_PARALLEL"),
        description="Task runs one scheduler process runs at once.",
    )
    allow_process_control: bool = Field(
        default=True,
        validation_alias=_env("ECHOPILOT_ALLOW_PROCESS_CONTROL"),
        description="Whether the API's automations/start may launch a scheduler process when "
        "none is alive (turn off where a supervisor such as systemd owns processes).",
    )
    # Filled by load_settings() from every ECHOPILOT_SCHEDULE_<TASK> variable; the alias
    # cannot name a real variable, so pydantic reads nothing else into it.
    schedules: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_env("ECHOPILOT_SCHEDULE_<TASK>"),
        description="ECHOPILOT_SCHEDULE_<TASK>: a task's schedule (cron, 'every 30s|15m|6h', "
        "'daily HH:MM' or 'off'), read from every variable with that prefix.",
    )
    catchup: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_env("ECHOPILOT_CATCHUP_<TASK>"),
        description="ECHOPILOT_CATCHUP_<TASK>: 'once' (default) runs a missed slot once within "
        "its grace window; 'skip' never catches up.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        validation_alias=_env("ECHOPILOT_LOG_LEVEL"),
        description="Lowest level written to the logs.",
    )

    sched_selfheal_every_hours: int = Field(
        default=6,
        ge=1,
        le=168,
        validation_alias=_env("SCHED_SELFHEAL_EVERY_HOURS"),
        description="Hours between scheduled self-heals (it also runs at scheduler start); "
        "ECHOPILOT_SCHEDULE_SELF_HEAL, when set, wins.",
    )
    sched_report_utc: str = Field(
        default="09:00",
        validation_alias=_env("SCHED_REPORT_UTC"),
        description="UTC time (HH:MM) the daily report of the previous UTC day is made; "
        "ECHOPILOT_SCHEDULE_DAILY_REPORT, when set, wins.",
    )
    sched_brief_utc: str = Field(
        default="08:00",
        validation_alias=_env("SCHED_BRIEF_UTC"),
        description="UTC time (HH:MM) the CEO brief is made and emailed; "
        "ECHOPILOT_SCHEDULE_BRIEF, when set, wins.",
    )
    brief_qa_target: int = Field(
        default=85,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_BRIEF_QA_TARGET"),
        description="The brief flags a 7-day average QA (overall or of a task type) below this.",
    )
    brief_qa_floor: int = Field(
        default=80,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_BRIEF_QA_FLOOR"),
        description="A job scored below this counts towards a run of low scores.",
    )
    brief_qa_run: int = Field(
        default=3,
        ge=2,
        le=50,
        validation_alias=_env("ECHOPILOT_BRIEF_QA_RUN"),
        description="The brief flags this many consecutive low-scored jobs of one task type.",
    )
    brief_min_roi: Decimal = Field(
        default=Decimal("1.0"),
        ge=-100,
        le=1000,
        validation_alias=_env("ECHOPILOT_BRIEF_MIN_ROI"),
        description="The brief flags a 7-day ROI (profit / cost) below this.",
    )
    brief_min_margin_pct: Decimal = Field(
        default=Decimal("40"),
        ge=-1000,
        le=100,
        validation_alias=_env("ECHOPILOT_BRIEF_MIN_MARGIN_PCT"),
        description="The brief flags a 7-day margin (%) below this.",
    )
    brief_revenue_down_days: int = Field(
        default=3,
        ge=2,
        le=28,
        validation_alias=_env("ECHOPILOT_BRIEF_REVENUE_DOWN_DAYS"),
        description="The brief flags revenue that fell on this many consecutive days.",
    )
    brief_unpaid_min_qa: int = Field(
        default=95,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_BRIEF_UNPAID_MIN_QA"),
        description="The brief flags unpaid jobs scored at least this (payment follow-up).",
    )
    brief_unpaid_hours: int = Field(
        default=48,
        ge=1,
        le=24 * 30,
        validation_alias=_env("ECHOPILOT_BRIEF_UNPAID_HOURS"),
        description="The brief flags unpaid high-QA jobs finished more than this many hours ago.",
    )
    brief_max_latency_seconds: int = Field(
        default=120,
        ge=1,
        le=86_400,
        validation_alias=_env("ECHOPILOT_BRIEF_MAX_LATENCY_SECONDS"),
        description="The brief flags a 7-day p95 processing time above this.",
    )
    brief_no_client_days: int = Field(
        default=7,
        ge=1,
        le=365,
        validation_alias=_env("ECHOPILOT_BRIEF_NO_CLIENT_DAYS"),
        description="The brief flags no new client in this many days.",
    )
    brief_notion_lag_seconds: int = Field(
        default=90,
        ge=1,
        le=86_400,
        validation_alias=_env("ECHOPILOT_BRIEF_NOTION_LAG_SECONDS"),
        description="The brief flags a Notion read-after-write lag over this in the last 7 "
        "days, and any write-back Notion has not shown.",
    )
    daily_budget_usd: Decimal | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        validation_alias=_env("ECHOPILOT_DAILY_BUDGET_USD"),
        description="Limit on model spend per UTC day; at 80 % an alert, at 100 % workers "
        "start no new jobs (they wait as queued) until the next UTC day or a raised limit.",
    )
    alert_urls: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_ALERT_URLS"),
        description="Apprise URLs alerts are sent to (secret; several separated by spaces "
        "or commas), e.g. json://host/path, slack://..., mailto://...",
    )
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("TELEGRAM_BOT_TOKEN"),
        description="Telegram bot token (secret); with TELEGRAM_CHAT_ID, alerts go to that chat.",
    )
    telegram_chat_id: str | None = Field(
        default=None,
        validation_alias=_env("TELEGRAM_CHAT_ID"),
        description="Telegram chat id alerts go to (with TELEGRAM_BOT_TOKEN).",
        max_length=100,
    )
    smtp_host: str | None = Field(
        default=None,
        validation_alias=_env("SMTP_HOST"),
        description="Mail server alerts (and briefs) are sent through; with ALERT_TO.",
        max_length=255,
    )
    smtp_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias=_env("SMTP_PORT"),
        description="Mail server port; default 465 (ssl), 587 (starttls) or 25 (none).",
    )
    smtp_user: str | None = Field(
        default=None,
        validation_alias=_env("SMTP_USER"),
        description="Mail server login, if it needs one.",
        max_length=320,
    )
    smtp_pass: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SMTP_PASS"),
        description="Mail server password (secret).",
    )
    smtp_security: Literal["ssl", "starttls", "none"] = Field(
        default="starttls",
        validation_alias=_env("SMTP_SECURITY"),
        description="ssl (TLS from the start), starttls, or none (plain, for a local relay).",
    )
    smtp_from: str | None = Field(
        default=None,
        validation_alias=_env("SMTP_FROM"),
        description="Sender address; default SMTP_USER when it is an address, else "
        "echopilot@localhost.",
        max_length=320,
    )
    alert_to: str | None = Field(
        default=None,
        validation_alias=_env("ALERT_TO"),
        description="Email addresses alerts go to, separated by commas.",
        max_length=2000,
    )
    stripe_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("STRIPE_SECRET_KEY"),
        description="Stripe secret (sk_...) or restricted (rk_...) key (secret): turns payments "
        "on. Without it billable jobs are `not_configured` and everything else works.",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("STRIPE_WEBHOOK_SECRET"),
        description="Signing secret (whsec_...) of the Stripe webhook endpoint "
        "POST /webhook/stripe (secret); without it the endpoint refuses every event.",
    )
    stripe_api_base: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_STRIPE_API_BASE"),
        description="Address of the Stripe API (default Stripe's own); for a proxy or a test "
        "server.",
    )
    stripe_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias=_env("ECHOPILOT_STRIPE_TIMEOUT_SECONDS"),
        description="How long one call to Stripe may take before it counts as unreachable.",
    )
    stripe_webhook_tolerance_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        validation_alias=_env("ECHOPILOT_STRIPE_WEBHOOK_TOLERANCE_SECONDS"),
        description="A webhook whose signed timestamp is further than this from now (either "
        "way) is refused as a possible replay (Stripe's own default: 300).",
    )
    payments_lookback_days: int = Field(
        default=3,
        ge=1,
        le=30,
        validation_alias=_env("ECHOPILOT_PAYMENTS_LOOKBACK_DAYS"),
        description="How far back the first reconciliation reads Stripe's events (later ones "
        "read from the last successful one, with an hour of overlap); Stripe keeps 30 days.",
    )
    notion_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("NOTION_TOKEN"),
        description="Notion integration token (secret); with NOTION_QUEUE_DB_ID it turns the "
        "Notion connector on.",
    )
    notion_queue_db_id: str | None = Field(
        default=None,
        validation_alias=_env("NOTION_QUEUE_DB_ID"),
        description="The Notion database tasks come from (its id, or its link).",
    )
    notion_joblog_db_id: str | None = Field(
        default=None,
        validation_alias=_env("NOTION_JOBLOG_DB_ID"),
        description="A Notion database that gets one row per finished job (optional).",
    )
    notion_api_base: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_NOTION_API_BASE"),
        description="Address of the Notion API (default Notion's own); for a proxy or a test "
        "server.",
    )
    notion_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=300,
        validation_alias=_env("ECHOPILOT_NOTION_TIMEOUT_SECONDS"),
        description="How long one call to Notion may take before it counts as unreachable.",
    )
    notion_poll_seconds: int = Field(
        default=60,
        ge=10,
        le=3600,
        validation_alias=_env("SCHED_NOTION_POLL_SECONDS"),
        description="How often the notion_poll task reads the queue and writes results back.",
    )
    notion_confirm_seconds: int = Field(
        default=120,
        ge=5,
        le=3600,
        validation_alias=_env("ECHOPILOT_NOTION_CONFIRM_SECONDS"),
        description="After a write, Notion is read back (with backoff) for this long; a write "
        "not seen by then is kept as pending and retried by self-heal.",
    )
    notion_requests_per_second: float = Field(
        default=2.5,
        gt=0,
        le=3,
        validation_alias=_env("ECHOPILOT_NOTION_REQUESTS_PER_SECOND"),
        description="Average Notion requests per second per process (Notion allows an average "
        "of 3).",
    )
    public_url: str | None = Field(
        default=None,
        validation_alias=_env("ECHOPILOT_PUBLIC_URL"),
        description="Address people reach the server at, for links in alerts (default "
        "http://ECHOPILOT_HOST:ECHOPILOT_PORT).",
    )
    alert_cooldown_hours: float = Field(
        default=6.0,
        gt=0,
        le=720,
        validation_alias=_env("ECHOPILOT_ALERT_COOLDOWN_HOURS"),
        description="An open alert is sent again only after this long (or when its severity "
        "rises); the task-type failure rule uses 1 hour.",
    )
    alert_retries_24h: int = Field(
        default=3,
        ge=0,
        le=1_000_000,
        validation_alias=_env("ECHOPILOT_ALERT_RETRIES_24H"),
        description="Alert when more job retries than this happen in 24 hours.",
    )
    alert_profit_7d_min_usd: Decimal = Field(
        default=Decimal(0),
        ge=-1_000_000,
        le=1_000_000,
        validation_alias=_env("ECHOPILOT_ALERT_PROFIT_7D_MIN_USD"),
        description="Alert when profit over 7 days falls below this.",
    )
    alert_qa_7d_min: float = Field(
        default=75.0,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_ALERT_QA_7D_MIN"),
        description="Alert when the 7-day average QA score falls below this.",
    )
    alert_type_failures: int = Field(
        default=3,
        ge=2,
        le=100,
        validation_alias=_env("ECHOPILOT_ALERT_TYPE_FAILURES"),
        description="Alert when this many attempts of one task type fail in a row.",
    )
    alert_scheduler_stale_minutes: float = Field(
        default=5.0,
        gt=0,
        le=1440,
        validation_alias=_env("ECHOPILOT_ALERT_SCHEDULER_STALE_MINUTES"),
        description="Alert when the scheduler's heartbeat is older than this.",
    )
    alert_worker_stale_minutes: float = Field(
        default=5.0,
        gt=0,
        le=1440,
        validation_alias=_env("ECHOPILOT_ALERT_WORKER_STALE_MINUTES"),
        description="Alert when jobs wait and no worker has beaten for this long.",
    )
    alert_queue_age_minutes: float = Field(
        default=10.0,
        gt=0,
        le=10_080,
        validation_alias=_env("ECHOPILOT_ALERT_QUEUE_AGE_MINUTES"),
        description="Alert when the oldest waiting job has waited longer than this.",
    )
    alert_error_rate: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        validation_alias=_env("ECHOPILOT_ALERT_ERROR_RATE"),
        description="Alert when more than this share of the last hour's attempts failed.",
    )
    alert_min_sample: int = Field(
        default=10,
        ge=1,
        le=100_000,
        validation_alias=_env("ECHOPILOT_ALERT_MIN_SAMPLE"),
        description="Fewest attempts (error rate) or scored jobs (QA) a rate is judged on.",
    )
    alert_key_failures: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        validation_alias=_env("ECHOPILOT_ALERT_KEY_FAILURES"),
        description="Alert when this many dashboard-key attempts fail within 10 minutes.",
    )
    alert_budget_warn: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        validation_alias=_env("ECHOPILOT_ALERT_BUDGET_WARN"),
        description="Share of a spending limit at which the budget alert warns.",
    )
    # The price optimiser (docs/operations.md, "Price optimiser"). Pairs that must agree
    # (minimum sample and sample, QA floor and high mark, modest and largest step) are
    # checked on the second of each, declared after the first.
    optimizer_sample: int = Field(
        default=20,
        ge=1,
        le=10_000,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_SAMPLE"),
        description="The price optimiser judges each task type on its last this many billed, "
        "finished jobs.",
    )
    optimizer_min_sample: int = Field(
        default=10,
        ge=1,
        le=10_000,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_MIN_SAMPLE"),
        description="Fewest such jobs the optimiser decides on; with fewer it holds the price "
        "(at most ECHOPILOT_OPTIMIZER_SAMPLE).",
    )
    optimizer_target_margin_pct: Decimal = Field(
        default=Decimal(40),
        ge=0,
        le=95,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_TARGET_MARGIN_PCT"),
        description="Margin (price less model cost, as a share of price) the optimiser aims "
        "for; below it, it proposes a rise.",
    )
    optimizer_qa_floor: float = Field(
        default=80.0,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_QA_FLOOR"),
        description="Average QA below which the optimiser holds the price and raises the "
        "optimizer_quality alert instead of raising it.",
    )
    optimizer_qa_high: float = Field(
        default=95.0,
        ge=0,
        le=100,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_QA_HIGH"),
        description="Average QA at or above which, with the margin on target, the optimiser "
        "proposes a modest rise (at least ECHOPILOT_OPTIMIZER_QA_FLOOR).",
    )
    optimizer_max_step_pct: Decimal = Field(
        default=Decimal(5),
        gt=0,
        le=5,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_MAX_STEP_PCT"),
        description="Largest change the optimiser makes to a rate in one run, in percent "
        "(at most 5).",
    )
    optimizer_modest_step_pct: Decimal = Field(
        default=Decimal(2),
        gt=0,
        le=5,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_MODEST_STEP_PCT"),
        description="The modest rise for high QA with a healthy margin, in percent (at most "
        "ECHOPILOT_OPTIMIZER_MAX_STEP_PCT).",
    )
    optimizer_bounds: str = Field(
        default="",
        max_length=2000,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_BOUNDS"),
        description="Per task type, the lowest and highest rate the optimiser may set, in USD "
        "of the rule's unit: research=20:40,data_transform=0.40:0.80 (either side may be "
        "left empty); a type not named gets 50 % to 200 % of its first recorded rate.",
    )
    optimizer_auto_apply: bool = Field(
        default=False,
        validation_alias=_env("ECHOPILOT_OPTIMIZER_AUTO_APPLY"),
        description="Whether the weekly optimizer task applies its proposal; off, it only "
        "proposes (dashboard, scheduler status) and a person applies it.",
    )

    @field_validator("optimizer_min_sample")
    @classmethod
    def _check_min_sample(cls, value: int, info: ValidationInfo) -> int:
        sample = info.data.get("optimizer_sample")
        if sample is not None and value > sample:
            raise ValueError(f"must be at most ECHOPILOT_OPTIMIZER_SAMPLE ({sample})")
        return value

    @field_validator("optimizer_qa_high")
    @classmethod
    def _check_qa_high(cls, value: float, info: ValidationInfo) -> float:
        floor = info.data.get("optimizer_qa_floor")
        if floor is not None and value < floor:
            raise ValueError(f"must be at least ECHOPILOT_OPTIMIZER_QA_FLOOR ({floor})")
        return value

    @field_validator("optimizer_modest_step_pct")
    @classmethod
    def _check_modest_step(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        largest = info.data.get("optimizer_max_step_pct")
        if largest is not None and value > largest:
            raise ValueError(f"must be at most ECHOPILOT_OPTIMIZER_MAX_STEP_PCT ({largest})")
        return value

    @field_validator("optimizer_bounds")
    @classmethod
    def _check_optimizer_bounds(cls, value: str) -> str:
        parse_optimizer_bounds(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/8)"
                ) from None
            if "/" in item and str(network) != item:
                # The server matches networks strictly: 10.0.0.5/8 would trust nobody.
                raise ValueError(f"{item!r} has host bits set; write the network as {network}")
        return value

    @field_validator("model_prices")
    @classmethod
    def _check_model_prices(cls, value: str | None) -> str | None:
        if value:
            parse_model_prices(value)
        return value

    @field_validator(
        "database_url",
        "queue_url",
        "openai_base_url",
        "escalation_model",
        "telegram_chat_id",
        "smtp_host",
        "smtp_user",
        "smtp_from",
        "alert_to",
        "public_url",
        "stripe_api_base",
        "notion_api_base",
        "notion_queue_db_id",
        "notion_joblog_db_id",
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator(
        "openai_api_key",
        "alert_urls",
        "telegram_bot_token",
        "smtp_pass",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "notion_token",
    )
    @classmethod
    def _blank_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("stripe_secret_key")
    @classmethod
    def _check_stripe_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret.startswith(("sk_", "rk_")) or any(c.isspace() for c in secret):
                raise ValueError("must be a Stripe secret key (sk_...) or restricted key (rk_...)")
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret.startswith("whsec_") or any(c.isspace() for c in secret):
                raise ValueError("must be a Stripe webhook signing secret (whsec_...)")
        return value

    @field_validator("notion_token")
    @classmethod
    def _check_notion_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(c.isspace() for c in value.get_secret_value().strip()):
            raise ValueError("must be a Notion integration token (ntn_... or secret_...)")
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator("notion_queue_db_id", "notion_joblog_db_id")
    @classmethod
    def _check_notion_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        found = notion_id(value)
        if found is None:
            raise ValueError(
                "must be a Notion database id (32 hexadecimal digits, dashes allowed) or "
                "the database's link"
            )
        return found

    @field_validator("notion_api_base")
    @classmethod
    def _check_notion_api_base(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else None

    @field_validator("stripe_api_base")
    @classmethod
    def _check_stripe_api_base(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("dashboard_key")
    @classmethod
    def _check_dashboard_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if len(secret) < 16 or any(c.isspace() for c in secret):
            raise ValueError("must be at least 16 characters with no spaces")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        _check_port(value)
        return value

    @field_validator("queue_url")
    @classmethod
    def _check_queue_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite:", "redis:", "rediss:", "memory:")):
            raise ValueError("must be sqlite:///path, redis://host:port/db or memory://")
        _check_port(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("heartbeat_url")
    @classmethod
    def _check_heartbeat_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("sched_report_utc", "sched_brief_utc")
    @classmethod
    def _check_report_time(cls, value: str) -> str:
        match = _TIME_OF_DAY.match(value.strip())
        if match is None:
            raise ValueError("must be a UTC time of day HH:MM from 00:00 to 23:59, e.g. 09:00")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("retention_patterns")
    @classmethod
    def _check_patterns(cls, value: str) -> str:
        for pattern in (p.strip() for p in value.split(",")):
            if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError("needs relative glob patterns under reports/, without '..'")
        return value

    @cached_property
    def trusted_proxy_list(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @cached_property
    def retention_pattern_list(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.retention_patterns.split(","))

    @cached_property
    def task_module_list(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.task_modules.split(",") if m.strip())

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'echopilot.db'}"

    @cached_property
    def resolved_queue_url(self) -> str:
        return self.queue_url or f"sqlite:///{self.home / 'queue.db'}"

    @cached_property
    def smtp_sender(self) -> str:
        if self.smtp_from:
            return self.smtp_from
        if self.smtp_user and "@" in self.smtp_user:
            return self.smtp_user
        return "echopilot@localhost"

    @property
    def notion_enabled(self) -> bool:
        """Whether the Notion connector is on (NOTION_TOKEN and NOTION_QUEUE_DB_ID set)."""
        return self.notion_token is not None and self.notion_queue_db_id is not None

    @property
    def payments_enabled(self) -> bool:
        """Whether Stripe payments are on (STRIPE_SECRET_KEY set)."""
        return self.stripe_secret_key is not None

    @cached_property
    def resolved_api_threads(self) -> int:
        if self.api_threads:
            return self.api_threads
        return 1 if self.resolved_database_url.startswith("sqlite") else 4

    @cached_property
    def provider_name(self) -> Literal["openai", "offline"]:
        """The provider in effect: `auto` picks openai only when a model server is configured."""
        if self.ai_provider == "auto":
            configured = self.openai_api_key is not None or self.openai_base_url is not None
            return "openai" if configured else "offline"
        return self.ai_provider

    @cached_property
    def price_overrides(self) -> dict[str, tuple[Decimal, Decimal]]:
        return parse_model_prices(self.model_prices) if self.model_prices else {}

    @cached_property
    def optimizer_bound_map(self) -> dict[str, tuple[int | None, int | None]]:
        return parse_optimizer_bounds(self.optimizer_bounds)


def _check_port(url: str | None) -> None:
    """A URL's port, when it has one, is a number a connection can use."""
    try:
        urlsplit(url or "").port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise ValueError("its port must be a number from 1 to 65535") from None


def parse_optimizer_bounds(raw: str) -> dict[str, tuple[int | None, int | None]]:
    """Parse ECHOPILOT_OPTIMIZER_BOUNDS (`type=floor:ceiling,...`, USD) into {type: (floor,
    ceiling)} in micro-USD, None for a side left empty; a floor above its ceiling is refused."""
    bounds: dict[str, tuple[int | None, int | None]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, equals, pair = item.partition("=")
        low, colon, high = pair.partition(":")
        # Task types are named as intake names them: any case, '-' or ' ' for '_'.
        task_type = re.sub(r"[\s-]+", "_", name.strip().lower())
        if not equals or not colon or not task_type:
            raise ValueError(f"{item!r} is not type=floor:ceiling (e.g. research=20:40)")
        floor, ceiling = _bound_micros(task_type, low), _bound_micros(task_type, high)
        if floor is not None and ceiling is not None and floor > ceiling:
            raise ValueError(
                f"{task_type}: the floor {low.strip()} is above the ceiling {high.strip()}"
            )
        bounds[task_type] = (floor, ceiling)
    return bounds


def _bound_micros(task_type: str, text: str) -> int | None:
    if not text.strip():
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{task_type}: {text.strip()!r} is not an amount in USD") from None
    if not amount.is_finite() or amount < 0 or amount > 1_000_000:
        raise ValueError(f"{task_type}: {text.strip()!r} must be between 0 and 1000000 USD")
    return usd_to_micros(amount)


def parse_model_prices(raw: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Parse ECHOPILOT_MODEL_PRICES into {model: (input, output)} USD per million tokens."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be a JSON object ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError('must be a JSON object like {"model": {"input": "1", "output": "2"}}')
    prices: dict[str, tuple[Decimal, Decimal]] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise ValueError(f"{model!r} needs exactly the keys input and output")
        try:
            pair = (Decimal(str(entry["input"])), Decimal(str(entry["output"])))
        except InvalidOperation:
            raise ValueError(f"{model!r} prices must be numbers") from None
        if any(not p.is_finite() or p < 0 for p in pair):
            raise ValueError(f"{model!r} prices must be zero or more")
        prices[model] = pair
    return prices


_NOTION_ID = re.compile(r"([0-9a-f]{32})(?:[?#]|$)")


def notion_id(text: str) -> str | None:
    """A Notion id in its dashed form, from an id (with or without dashes) or a page's
    link (`https://www.notion.so/Queue-0123...?v=...`); None when there is none."""
    compact = text.strip().lower().replace("-", "")
    found = _NOTION_ID.search(compact)
    if found is None or (len(compact) != 32 and not compact.startswith("http")):
        return None
    h = found.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    alias = Settings.model_fields[field].validation_alias
    assert isinstance(alias, AliasChoices)
    first = alias.choices[0]
    assert isinstance(first, str)
    return first


def _field_of(name: str) -> str | None:
    """The field that environment variable (or field) `name` sets, if any."""
    if name in Settings.model_fields:
        return name
    return next((f for f in Settings.model_fields if env_name(f) == name), None)


def _describe_error(error: Any) -> str:
    loc = error.get("loc") or ()
    given = str(loc[0]) if loc else "?"
    # Errors name the variable (their loc is the alias), which must still be mapped back to
    # the field to know whether the value is a secret.
    field = _field_of(given) or given
    name = env_name(field) if field in Settings.model_fields else given
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    # URLs may carry passwords; secrets are never echoed.
    hidden = SECRET_FIELDS | URL_FIELDS
    shown = "" if field in hidden or isinstance(value, dict) else f" (got {value!r})"
    return f"{name}: {message}{shown}"


PER_TASK_PREFIXES = {"schedules": "ECHOPILOT_SCHEDULE_", "catchup": "ECHOPILOT_CATCHUP_"}


def _per_task(env_file: Any) -> dict[str, dict[str, str]]:
    """ECHOPILOT_SCHEDULE_<TASK> and ECHOPILOT_CATCHUP_<TASK> from `.env` and the environment."""
    values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update(dotenv_values(env_file))
    values.update(os.environ)
    found: dict[str, dict[str, str]] = {field: {} for field in PER_TASK_PREFIXES}
    for name, value in values.items():
        for field, prefix in PER_TASK_PREFIXES.items():
            if name.startswith(prefix) and value is not None:
                found[field][name.removeprefix(prefix).lower()] = value
    return found


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`; raise ConfigError naming a bad one.

    `overrides` name fields (home=..., lease_seconds=...); they win over the environment."""
    for field, values in _per_task(overrides.get("_env_file", ".env")).items():
        overrides.setdefault(field, values)
    by_alias = {
        (env_name(key) if key in Settings.model_fields else key): value
        for key, value in overrides.items()
    }
    try:
        return Settings(**by_alias)
    except ValidationError as exc:
        raise ConfigError(_describe_error(exc.errors()[0])) from None


def masked(settings: Settings) -> dict[str, Any]:
    """Every setting by environment name, secrets masked, for display."""
    shown: dict[str, Any] = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if field in SECRET_FIELDS:
            value = mask_secret(value.get_secret_value() if value else None)
        elif field == "heartbeat_url" and value:
            value = _hide_url_path(value)
        elif isinstance(value, Path | Decimal):
            value = str(value)
        shown[env_name(field)] = value
    return shown


def _hide_url_path(url: str) -> str:
    """A monitor URL's path is its credential (a check's UUID): show only the host."""
    scheme, _, rest = url.partition("//")
    return f"{scheme}//{rest.split('/', 1)[0]}/****"


def mask_secret(secret: str | None) -> str | None:
    """Show that a secret is set without revealing it (never more than its last 2 characters)."""
    if not secret:
        return None
    return "****" + (secret[-2:] if len(secret) >= 12 else "")
