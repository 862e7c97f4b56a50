"""A fake OpenAI-compatible model server on 127.0.0.1, for the real `openai` client.

By default it answers task prompts with a short text and QA prompts with a passing rubric
score, reporting token usage. Tests script what the next calls of a stage get:

    server.on("task", Reply(status=429, headers={"Retry-After": "1"}), Reply.ok("fine"))
    server.on("qa", Reply.ok("not a number"))

Every request is recorded with its arrival time, stage and body. `server.stall(60, hang=5)`
makes every call of the next minute hang (a model that times out).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

QA_MARKER = "quality reviewer"


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def ok(
        cls, text: str, tokens_in: int = 100, tokens_out: int = 50, finish: str = "stop", **kw: Any
    ) -> Reply:
        body = {"__text__": text, "__usage__": (tokens_in, tokens_out), "__finish__": finish}
        return cls(body=body, **kw)

    @classmethod
    def score(cls, clarity: float, accuracy: float, completeness: float, tone: float) -> Reply:
        text = json.dumps(
            {
                "clarity": clarity,
                "accuracy": accuracy,
                "completeness": completeness,
                "tone": tone,
                "reason": "scripted",
            }
        )
        return cls.ok(text, tokens_in=300, tokens_out=40)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", **kw: Any) -> Reply:
        return cls(status=status, body={"error": {"message": message, "type": "test"}}, **kw)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-call (a worker's kill -9) resets its connection: not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Seen:
    at: float
    stage: str
    model: str
    body: dict[str, Any]


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._scripts: dict[str, deque[Reply]] = {"task": deque(), "qa": deque()}
        self._lock = threading.Lock()
        self.default_text = "Here is the finished work, written clearly and completely."
        self.default_score = (28, 27, 18, 19)  # 92
        # GET /models: the ids listed (None: the server has no models list, 404), and the
        # key it wants (None: any), as OpenAI answers a wrong one (401).
        self.models: list[str] | None = ["gpt-4o", "gpt-4o-mini"]
        self.key: str | None = None
        self.model_lists = 0
        # Until this monotonic time every chat call hangs for `hang_seconds` (an outage).
        self.stalled_until = 0.0
        self.hang_seconds = 0.0
        # When set, decides the reply of every unscripted call from its stage (the soak's
        # seeded model weather: latency, 429s, 5xx, an outage).
        self.weather: Callable[[str], Reply] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY each answer
            # waits ~40 ms for the client's delayed ACK (Nagle).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer._handle(self, body)

            def do_GET(self) -> None:
                outer._list_models(self)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, stage: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[stage].extend(replies)

    def stall(self, seconds: float, hang: float) -> None:
        """For the next `seconds`, every chat call hangs `hang` seconds before answering."""
        self.hang_seconds = hang
        self.stalled_until = time.monotonic() + seconds

    def count(self, stage: str | None = None) -> int:
        return sum(1 for r in self.requests if stage is None or r.stage == stage)

    def _next(self, stage: str) -> Reply:
        with self._lock:
            if self._scripts[stage]:
                return self._scripts[stage].popleft()
        if self.weather is not None:
            return self.weather(stage)
        if stage == "qa":
            return Reply.score(*self.default_score)
        return Reply.ok(self.default_text)

    def _list_models(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.model_lists += 1
        given = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
        if handler.path.rstrip("/") != "/v1/models":
            status, payload = 404, {"error": {"message": "not found", "type": "invalid_request"}}
        elif self.key is not None and given != self.key:
            status = 401
            payload = {
                "error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}
            }
        elif self.models is None:
            status, payload = 404, {"error": {"message": "no models list", "type": "not_found"}}
        else:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
            ]
            status, payload = 200, {"object": "list", "data": data}
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        messages = body.get("messages") or [{}]
        system = str(messages[0].get("content", ""))
        stage = "qa" if QA_MARKER in system else "task"
        model = str(body.get("model", ""))
        with self._lock:
            self.requests.append(Seen(time.monotonic(), stage, model, body))
        if time.monotonic() < self.stalled_until:
            time.sleep(self.hang_seconds)
        reply = self._next(stage)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body
        if isinstance(payload, dict) and "__text__" in payload:
            tokens_in, tokens_out = payload["__usage__"]
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": payload.get("__finish__", "stop"),
                        "message": {"role": "assistant", "content": payload["__text__"]},
                    }
                ],
                "usage": {
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            }
        data = json.dumps(payload).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
