"""The world outside the machine, as the soak meets it: an SMTP server (aiosmtpd) whose login
can be made to refuse, an HTTP receiver for Apprise's json:// alerts, and a model whose
weather (latency, 429s, 5xx, QA scores, an outage) comes from a seeded random source.
Everything listens on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.api_support import free_port
from tests.fakes.model_server import FakeModelServer, Reply

SMTP_USER = "alerts@soak.example"
SMTP_PASS = "soak-smtp-pass-41Xq"


@dataclass
class Mail:
    to: list[str]
    subject: str
    body: str


class MailServer:
    """Accepts SMTP_USER/SMTP_PASS and keeps every message; `refusing` turns logins away
    (a mail provider locking the account)."""

    def __init__(self) -> None:
        self.messages: list[Mail] = []
        self.refused_logins = 0
        self.refusing = False
        self._lock = threading.Lock()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=free_port(),
            authenticator=self._login,
            auth_require_tls=False,
        )

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def _login(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASS)
        if self.refusing or not good:
            with self._lock:
                self.refused_logins += 1
            return AuthResult(success=False, handled=False, message="535 5.7.8 login refused")
        return AuthResult(success=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(bytes(envelope.content), policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        with self._lock:
            self.messages.append(Mail(list(envelope.rcpt_tos), str(message["Subject"]), body))
        return "250 Message accepted for delivery"


class HookReceiver:
    """Records every JSON body posted to it (Apprise's json:// channel)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> HookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Weather:
    """What the model answers, drawn from a seeded source: a latency of 20-120 ms, about 2 %
    429s (with Retry-After) and 1 % 5xx, QA scores mostly 94 to 98 and 5 % far below the bar;
    `down` answers every call 503 (the provider's outage)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.down = False
        self.lock = threading.Lock()
        self.counts = {"calls": 0, "429": 0, "5xx": 0, "down": 0}

    def __call__(self, stage: str) -> Reply:
        with self.lock:
            self.counts["calls"] += 1
            draw, delay = self.rng.random(), self.rng.uniform(0.02, 0.12)
            if self.down:
                self.counts["down"] += 1
                return Reply.error(503, "the model is overloaded", delay=0.01)
            if draw < 0.02:
                self.counts["429"] += 1
                return Reply.error(429, "rate limited", headers={"Retry-After": "0"}, delay=0.01)
            if draw < 0.03:
                self.counts["5xx"] += 1
                return Reply.error(self.rng.choice([500, 502, 503]), "upstream error", delay=0.01)
            if stage == "qa":
                low = self.rng.random() < 0.05
                good = self.rng.choice([(30, 30, 19, 19), (29, 29, 19, 19), (28, 28, 19, 19)])
                parts = (14, 15, 10, 10) if low else good
                return Reply(**{**vars(Reply.score(*parts)), "delay": delay})
            tokens_in = self.rng.randint(150, 900)
            tokens_out = self.rng.randint(80, 600)
            return Reply.ok(
                "The finished work, clear and complete.", tokens_in, tokens_out, delay=delay
            )


def model_server(weather: Weather) -> FakeModelServer:
    server = FakeModelServer()
    server.weather = weather
    return server.start()
