"""The world of the dashboard's browser tests: a real `echopilot serve` child process, Chromium
driven by Playwright, and a recorder of everything the page requests and logs.

Playwright (pip) and Debian's `chromium` are optional: without them the browser tests are
skipped with the reason, unless ECHOPILOT_TEST_REQUIRE_BROWSER=1 makes them mandatory.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from echopilot.config import Settings, load_settings
from tests.conftest import FOREIGN_ENV, env_for

TEST_KEY = "ep-browser-test-key-5f3a9c1d7e2b"  # 32 characters
REQUIRE_BROWSER = os.environ.get("ECHOPILOT_TEST_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS = Path(__file__).resolve().parents[1] / "test-results"
CHARTS = ("chart-jobs", "chart-qa", "chart-money", "chart-latency")
WIDE = {"width": 1440, "height": 900}
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if shutil.which("chromium") is None:
        return "chromium is not on PATH (apt-get install chromium)"
    return None


def require_browser() -> None:
    reason = browser_missing()
    if reason is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}, and ECHOPILOT_TEST_REQUIRE_BROWSER=1 makes it mandatory")
    pytest.skip(f"browser tests need Playwright and Chromium: {reason}")


@contextmanager
def clean_environment() -> Iterator[None]:
    """No EchoPilot setting leaks in from the developer's shell (module-scoped fixtures run
    before conftest's per-test clean-up)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(FOREIGN_ENV) and not name.startswith("ECHOPILOT_TEST_"):
                mp.delenv(name)
        yield


def offline_settings(home: Path) -> Settings:
    with clean_environment():
        return load_settings(home=home, _env_file=None, ai_provider="offline")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running `echopilot serve` with a known dashboard key."""

    settings: Settings
    key: str
    port: int
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API with the key; return `data`, failing on an error envelope."""
        response = httpx.request(
            method, self.url + path, headers={"X-Dash-Key": self.key}, timeout=30, **kwargs
        )
        body = response.json()
        assert body["ok"], f"{method} {path}: {response.status_code} {body['error']}"
        return body["data"]

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(settings: Settings, key: str = TEST_KEY, timeout: float = 60) -> Server:
    """Start `python -m echopilot serve` on a free port and wait until /health answers."""
    settings.home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with clean_environment():
        env = env_for(settings)
    env.update(
        {
            "DASHBOARD_KEY": key,
            "ECHOPILOT_PORT": str(port),
            "ECHOPILOT_HOST": "127.0.0.1",
            # The Start button must not launch a real scheduler daemon from a test.
            "ECHOPILOT_ALLOW_PROCESS_CONTROL": "0",
        }
    )
    log_path = settings.home / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "echopilot", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=settings.home.parent,
        )
    server = Server(settings=settings, key=key, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"echopilot serve exited early:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(
        f"echopilot serve did not answer /health in {timeout}s:\n{server.log_tail()}"
    )


@dataclass
class PageWatch:
    """Everything a page requested and logged, to check hosts, errors and secrets."""

    requests: list[Any] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> PageWatch:
        page.on("request", lambda request: self.requests.append(request))
        page.on("console", lambda message: self.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return self

    @property
    def urls(self) -> list[str]:
        return [request.url for request in self.requests]

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def foreign_urls(self, netloc: str) -> list[str]:
        """Requested URLs that leave the app's own origin (data: and blob: stay in the page)."""
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.scheme not in ("http", "https") or parts.netloc != netloc:
                out.append(url)
        return out

    def assert_clean(self, netloc: str) -> None:
        assert self.foreign_urls(netloc) == [], "requests to other hosts"
        assert self.console_errors() == [], "console errors"
        assert self.page_errors == [], "uncaught page errors"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a browser it downloads)."""
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(
    browser: Any, server: Server, watch: PageWatch, viewport: dict[str, int] | None = None
) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) on the app, with every request and log recorded."""
    context = browser.new_context(viewport=viewport or WIDE, base_url=server.url)
    try:
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        watch.attach(tab)
        yield tab
    finally:
        context.close()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def sign_in(page: Any, key: str = TEST_KEY) -> None:
    page.goto("/dashboard")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#login-key", key)
    page.click("#login-submit")


def signed_in(page: Any) -> None:
    sign_in(page)
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator('[data-kpi="jobs_7d"] .kpi-value')).to_have_text(re.compile(r"^\d"))


def wait_for_charts(page: Any) -> None:
    for chart in CHARTS:
        page.wait_for_function(
            "id => { const gd = document.getElementById(id);"
            " return gd && gd.querySelector('.main-svg') && gd.data && gd.data.length > 0; }",
            arg=chart,
        )


def filter_jobs(page: Any, status: str) -> Any:
    """Choose a status filter and wait until the table shows only (some) such jobs."""
    page.select_option("#jobs-filter", status)
    rows = page.locator(f'#jobs-body tr[data-status="{status}"]')
    expect(rows.first).to_be_visible()
    expect(page.locator(f'#jobs-body tr.clickable:not([data-status="{status}"])')).to_have_count(0)
    return rows


def job_row(page: Any, job_id: int) -> Any:
    return page.locator(f'#jobs-body tr[data-job-id="{job_id}"]')


def save_screenshot(page: Any, tmp_path: Path, name: str, target: Any = None) -> Path:
    """A screenshot of the page (or of `target`, a locator) in tmp_path and test-results/."""
    shot = tmp_path / name
    if target is None:
        page.screenshot(path=str(shot), full_page=True)
    else:
        target.screenshot(path=str(shot))
    RESULTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, RESULTS / name)
    return shot


# Fixtures shared by the browser test modules (imported by tests/conftest.py); each module
# provides its own module-scoped `server`.


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser: Any, server: Server, watch: PageWatch) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) on the app, with every request and log recorded."""
    with open_page(browser, server, watch) as tab:
        yield tab
