"""The HTTP server's own edge, tested against a real `echopilot serve` with raw sockets:
request heads are bounded (431), a request must arrive within
ECHOPILOT_REQUEST_TIMEOUT_SECONDS (408, then the connection is closed), the server's own
answers are the JSON envelope with the security headers, and no answer names the server."""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from echopilot.api.server import LIMIT_CONCURRENCY
from echopilot.config import load_settings
from tests.api_support import (
    TEST_KEY,
    Child,
    RawAnswer,
    assert_ok,
    clean_environment,
    raw_exchange,
    rss_bytes,
    start_child,
)
from tests.conftest import wait_for

TIMEOUT_S = 1.5  # ECHOPILOT_REQUEST_TIMEOUT_SECONDS of the server under test
SLACK_S = 1.5  # scheduling slack on a busy 2-core machine
HEAD_LIMIT = 32 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    home = tmp_path_factory.mktemp("edge") / "var"
    with clean_environment():
        settings = load_settings(home=home, ai_provider="offline", _env_file=None)
        env = {"DASHBOARD_KEY": TEST_KEY, "ECHOPILOT_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT_S)}
        child = start_child(settings, "serve", env=env)
        try:
            child.wait_healthy()
            yield child
        finally:
            child.stop()


def request(path: str = "/health", *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_edge_answer(answer: RawAnswer, status: int, code: str) -> None:
    """The server's own answer: the envelope, the security headers, no caching, no
    `server` header, `connection: close`, and the connection closed."""
    assert answer.status == status, answer.data[:300]
    body = answer.json()
    assert body["ok"] is False and body["data"] is None, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    headers = answer.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert headers["connection"] == "close"
    assert "server" not in answer.header_names
    assert answer.closed, "the server did not close the connection"


def test_a_100_kb_header_is_431_and_the_server_holds_no_more_of_it(server: Child) -> None:
    big = request("/health", "X-Big: " + "a" * 100_000)
    assert_edge_answer(raw_exchange(server.port, big), 431, "headers_too_large")
    before = rss_bytes(server.process.pid)

    for _ in range(5):
        answer = raw_exchange(server.port, big)
        assert_edge_answer(answer, 431, "headers_too_large")
        assert str(HEAD_LIMIT) in answer.json()["error"]["message"]
    # 20 MB of one header, sent in pieces: refused at 32 KiB, the rest discarded.
    piece = b"b" * 1_000_000
    huge = raw_exchange(
        server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ", *[piece] * 20, b"\r\n\r\n"
    )
    assert_edge_answer(huge, 431, "headers_too_large")

    grown = rss_bytes(server.process.pid) - before
    assert grown < 4_000_000, f"the server grew by {grown / 1e6:.1f} MB"
    # A head just under the limit is fine.
    fits = raw_exchange(
        server.port, request("/health", "Connection: close", "X-Fits: " + "c" * 30_000)
    )
    assert fits.status == 200, fits.data[:300]


def test_more_than_100_header_fields_is_431(server: Child) -> None:
    many = [f"X-Field-{n}: {n}" for n in range(200)]
    answer = raw_exchange(server.port, request("/health", *many))
    assert_edge_answer(answer, 431, "headers_too_large")
    assert "100 header fields" in answer.json()["error"]["message"]
    fine = [f"X-Field-{n}: {n}" for n in range(90)]
    assert raw_exchange(server.port, request("/health", "Connection: close", *fine)).status == 200


def test_trailers_of_a_chunked_body_are_bounded_like_headers(server: Child) -> None:
    head = request(
        "/api/jobs",
        f"X-Dash-Key: {TEST_KEY}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        method="POST",
    )
    before = rss_bytes(server.process.pid)
    endless = [b"t" * 1_000_000] * 10
    answer = raw_exchange(server.port, head, b"2\r\n{}\r\n0\r\nX-Trailer: ", *endless)
    assert_edge_answer(answer, 431, "headers_too_large")
    grown = rss_bytes(server.process.pid) - before
    assert grown < 4_000_000, f"the server grew by {grown / 1e6:.1f} MB"

    # Chunked bodies in small chunks, trailers and all, are fine.
    body = json.dumps({"name": "chunked", "task_type": "summary", "input": "x" * 5000})
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (body[i : i + 7].encode() for i in range(0, len(body), 7))
    )
    fine = raw_exchange(
        server.port,
        head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
        chunks,
        b"0\r\nX-Checksum: 1\r\n\r\n",
    )
    assert fine.status == 201, fine.data[:300]


def test_a_request_line_that_is_not_http_gets_the_json_400(server: Child) -> None:
    answer = raw_exchange(server.port, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    assert_edge_answer(answer, 400, "bad_request")
    assert "invalid HTTP request" in answer.json()["error"]["message"]


def test_half_a_body_is_answered_408_and_closed_at_the_request_timeout(server: Child) -> None:
    head = request(
        "/api/jobs",
        f"X-Dash-Key: {TEST_KEY}",
        "Content-Type: application/json",
        "Content-Length: 1000",
        method="POST",
    )
    answer = raw_exchange(server.port, head, b'{"name": "', wait=TIMEOUT_S + 10)
    assert_edge_answer(answer, 408, "request_timeout")
    assert TIMEOUT_S * 0.8 <= answer.elapsed <= TIMEOUT_S + SLACK_S, answer.elapsed
    assert f"{TIMEOUT_S:g} s" in answer.json()["error"]["message"]


def test_a_head_trickled_byte_by_byte_gets_no_more_time(server: Child) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        started = time.monotonic()
        trickle = b"GET /health HTTP/1.1\r\nX-Slow: " + b"z" * 200
        sent = 0
        answer = b""
        sock.settimeout(0.1)
        while time.monotonic() - started < TIMEOUT_S + 10:
            try:
                sock.sendall(trickle[sent : sent + 1])
                sent += 1
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert elapsed <= TIMEOUT_S + SLACK_S, elapsed


def test_a_connection_that_sends_nothing_is_closed_at_the_request_timeout(
    server: Child,
) -> None:
    answer = raw_exchange(server.port, wait=TIMEOUT_S + 10)
    assert answer.closed and answer.data == b"", answer
    assert TIMEOUT_S * 0.8 <= answer.elapsed <= TIMEOUT_S + SLACK_S, answer.elapsed


def test_300_slow_connections_are_all_closed_in_time_and_health_answers_meanwhile(
    server: Child,
) -> None:
    slow_body = request(
        "/api/jobs", f"X-Dash-Key: {TEST_KEY}", "Content-Length: 1000", method="POST"
    )
    selector = selectors.DefaultSelector()
    sockets = []
    started = time.monotonic()
    try:
        for n in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port))
            # Half send a body, half stop in the middle of the head.
            sock.sendall(slow_body + b"{" if n % 2 else b"GET /health HTTP/1.1\r\nHost: x")
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            sockets.append(sock)
        health = httpx.get(server.url + "/health", timeout=5)
        assert_ok(health)
        assert health.elapsed.total_seconds() < 1, health.elapsed

        open_ = set(sockets)
        statuses: dict[bytes, int] = {}
        deadline = started + TIMEOUT_S + SLACK_S + 1
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    status = data[:12]
                    statuses[status] = statuses.get(status, 0) + 1
                    continue
                selector.unregister(ready)
                open_.discard(ready)
        elapsed = time.monotonic() - started
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    assert not open_, f"{len(open_)} of 300 connections still open after {elapsed:.1f}s"
    assert statuses == {b"HTTP/1.1 408": 300}, statuses
    assert_ok(httpx.get(server.url + "/health", timeout=5))


def test_over_the_concurrency_limit_requests_get_the_json_503(server: Child) -> None:
    idle = []
    try:
        for _ in range(LIMIT_CONCURRENCY):
            idle.append(socket.create_connection(("127.0.0.1", server.port)))

        def refused() -> RawAnswer | None:
            answer = raw_exchange(server.port, request("/health"), wait=2)
            return answer if answer.status == 503 else None

        answer = wait_for(refused, timeout=TIMEOUT_S, every=0.02)
        assert_edge_answer(answer, 503, "service_unavailable")
        assert answer.headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()

    def healthy() -> RawAnswer | None:
        answer = raw_exchange(server.port, request("/health", "Connection: close"))
        return answer if answer.status == 200 else None

    health = wait_for(healthy, timeout=5)  # the idle connections are gone: served again
    assert "server" not in health.header_names


def test_a_request_without_the_key_is_answered_401_before_its_body_is_sent(
    server: Child,
) -> None:
    head = request(
        "/api/jobs",
        "X-Dash-Key: not-the-key-0123456789abcdef",
        "Content-Type: application/json",
        "Content-Length: 50000000",
        method="POST",
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head)
        sock.settimeout(TIMEOUT_S / 2)
        first = sock.recv(65536)  # no body sent: the answer must not wait for one
        elapsed = time.monotonic() - started
    assert first.startswith(b"HTTP/1.1 401 "), first[:200]
    assert elapsed < TIMEOUT_S / 2, elapsed


def test_no_answer_names_the_server(server: Child) -> None:
    answers = [
        httpx.get(server.url + "/health"),
        httpx.get(server.url + "/nowhere"),
        httpx.get(server.url + "/api/jobs"),
        httpx.get(server.url + "/api/jobs", headers={"X-Dash-Key": TEST_KEY}),
        httpx.get(server.url + "/dashboard"),
        httpx.get(server.url + "/static/dashboard.js"),
    ]
    assert [r.status_code for r in answers] == [200, 404, 401, 200, 200, 200]
    assert [r.headers.get("server") for r in answers] == [None] * len(answers)


def test_the_server_logs_what_it_refused_without_the_headers(server: Child) -> None:
    secret = "X-Dash-Key: " + TEST_KEY
    raw_exchange(server.port, request("/health", secret, "X-Big: " + "q" * 40_000))
    api_log = server.output.parent / "var" / "logs" / "api.log"  # the fixture's home
    text = api_log.read_text() + server.text()
    assert "431" in text
    assert TEST_KEY not in text
    assert "q" * 100 not in text
