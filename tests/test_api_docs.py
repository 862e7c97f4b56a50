"""The interactive API docs at /docs: served offline (Swagger UI from the installed
fastapi-offline package, through a route of ours), behind the dashboard key like every page
with data, under the content security policy; and /openapi.json needs the key.

The HTTP checks run in-process; the page runs in a real Chromium against a real `echopilot
serve` (skipped with the reason when Playwright or Chromium is missing, unless
ECHOPILOT_TEST_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from echopilot.api.app import create_app
from echopilot.runtime import Runtime
from tests.browser_support import (
    TEST_KEY,
    PageWatch,
    Server,
    expect,
    offline_settings,
    open_page,
    require_browser,
    save_screenshot,
    start_server,
)

WRONG_KEY = "not-the-key-0123456789abcdef"


def client_for(runtime: Runtime, host: str = "10.9.0.1") -> TestClient:
    return TestClient(create_app(runtime, TEST_KEY), client=(host, 50000))


def test_the_schema_needs_the_key(offline: Runtime) -> None:
    client = client_for(offline)
    for headers in ({}, {"X-Dash-Key": WRONG_KEY}):
        response = client.get("/openapi.json", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["ok"] is False and body["data"] is None
        assert body["error"]["code"] == "unauthorized"
        assert "X-Dash-Key" in body["error"]["message"]
        assert "paths" not in response.text

    for headers in ({"X-Dash-Key": TEST_KEY}, {"Authorization": f"Bearer {TEST_KEY}"}):
        response = client.get("/openapi.json", headers=headers)
        assert response.status_code == 200
        schema = response.json()
        assert "/api/jobs" in schema["paths"]
        assert "post" in schema["paths"]["/api/jobs"]
    assert TEST_KEY not in response.text


def test_the_docs_page_and_its_assets_are_served_by_the_app_with_the_security_headers(
    offline: Runtime,
) -> None:
    client = client_for(offline, "10.9.0.2")
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and script_src.group(1).split() == ["'self'"], csp
    assert "unsafe-inline" not in script_src.group(1) and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"

    html = page.text
    assert TEST_KEY not in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "an inline script"
    assert "http://" not in html and "https://" not in html, "an asset from another host"
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in srcs
    assert "/static/vendor/swagger-ui/swagger-ui.css" in srcs
    assert "/static/docs.js" in srcs
    for src in srcs:
        if src.startswith("/static/"):
            asset = client.get(src)
            assert asset.status_code == 200, src
            assert "content-security-policy" in asset.headers
    bundle = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text
    # Only the two asset files are served from the package, nothing else of it.
    for name in ("core.py", "../core.py", "redoc.standalone.js", "favicon.png"):
        assert client.get(f"/static/vendor/swagger-ui/{name}").status_code == 404, name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    served = start_server(offline_settings(tmp_path_factory.mktemp("docs") / "var"))
    yield served
    served.stop()


def test_the_docs_page_asks_for_the_key_then_lists_the_operations_and_tries_one(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    server.api(
        "POST", "/api/jobs", json={"name": "seen in the docs", "task_type": "summary", "input": "x"}
    )
    watch = PageWatch()
    with open_page(browser, server, watch) as page:
        page.goto("/docs")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#swagger-ui .opblock")).to_have_count(0)
        page.fill("#login-key", TEST_KEY)
        page.click("#login-submit")
        submit = page.locator("#operations-jobs-submit_job_api_jobs_post")
        expect(submit).to_be_visible()
        expect(submit).to_contain_text("POST")
        expect(submit).to_contain_text("/api/jobs")
        save_screenshot(page, tmp_path, "api-docs.png")

        listing = page.locator("#operations-jobs-list_jobs_api_jobs_get")
        listing.locator(".opblock-summary").click()
        listing.get_by_role("button", name="Try it out").click()
        with page.expect_response(re.compile(r"/api/jobs(\?|$)")) as answer:
            listing.get_by_role("button", name="Execute").click()
        assert answer.value.status == 200
        assert answer.value.request.headers.get("x-dash-key") == TEST_KEY
        status = listing.locator(".live-responses-table .response .response-col_status")
        expect(status.first).to_have_text("200")
        expect(listing.locator(".live-responses-table")).to_contain_text("seen in the docs")

        # The key is shared with the dashboard (same tab, same origin) and never in the page.
        page.goto("/dashboard")
        expect(page.locator("#dashboard")).to_be_visible()
        page.goto("/docs")
        expect(submit).to_be_visible()
        assert TEST_KEY not in page.content()
        page.click("#sign-out")
        expect(page.locator("#login")).to_be_visible()
        assert page.evaluate("sessionStorage.length") == 0

        for request in watch.requests:
            assert TEST_KEY not in request.url
            if request.headers.get("x-dash-key") is not None:
                assert request.url.startswith(server.url + "/api/") or request.url == (
                    server.url + "/openapi.json"
                ), request.url
        bundle = "/static/vendor/swagger-ui/swagger-ui-bundle.js"
        assert any(url.endswith(bundle) for url in watch.urls)
        watch.assert_clean(server.netloc)


def test_the_docs_page_asks_nothing_without_the_key_and_refuses_a_wrong_one(
    browser: Any, server: Server
) -> None:
    watch = PageWatch()
    with open_page(browser, server, watch) as page:
        page.goto("/docs")
        expect(page.locator("#login")).to_be_visible()
        assert not any("/openapi.json" in url or "/api/" in url for url in watch.urls)
        assert httpx.get(server.url + "/openapi.json").status_code == 401

        page.fill("#login-key", WRONG_KEY)
        page.click("#login-submit")
        expect(page.locator("#login-msg")).to_contain_text("not accepted")
        expect(page.locator("#swagger-ui .opblock")).to_have_count(0)
        assert page.evaluate("sessionStorage.length") == 0
        # The browser reports the refused request itself; nothing else goes wrong.
        assert all("401" in text for text in watch.console_errors()), watch.console_errors()
        assert watch.foreign_urls(server.netloc) == [] and watch.page_errors == []
