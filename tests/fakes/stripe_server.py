"""A fake Stripe API on 127.0.0.1, for the real `stripe` library.

It speaks the part of Stripe's v1 API that EchoPilot uses, the way Stripe does: form-encoded
requests with nested keys (``line_items[0][price_data][unit_amount]``), a bearer secret key
(401 with Stripe's error body when it is wrong), idempotent POSTs (the same Idempotency-Key
answers the same object; other parameters under it are an ``idempotency_error``), lists
newest first with ``has_more`` and ``starting_after``, and 404 ``resource_missing`` for an
unknown id:

    POST /v1/payment_links          GET /v1/payment_links/{id}
    POST /v1/payment_links/{id}     (active=false: deactivate)
    GET  /v1/events                 GET /v1/events/{id}
    GET  /v1/payment_intents/{id}   GET /v1/charges/{id}

Tests play the customer's side with helpers that change the objects as Stripe would and add
the events Stripe would emit (``pay``, ``fail_payment``, ``refund``, ``dispute``,
``close_dispute``); ``event`` adds any other. Stripe's troubles are switched on and off:
``outage(500)`` answers every request with a server error, ``script(path, None, 503)``
fails chosen requests (here the second page of a list), ``lose_answers(n)`` does the next
n POSTs but cuts the connection before answering, ``stop()``/``start()`` refuse connections
on the same port meanwhile, and ``deny(path, permission)`` answers 403 as Stripe does to a
restricted key (rk_...) without that permission. Every request is recorded (``requests``).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

API_VERSION = "2026-10-28.endive"
KEY = "sk_test_fake51HqLyjWDarjtT1zdp7dcXa4v3Bq9JkQ"
PAGE_MAX = 100


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _masked(key: str) -> str:
    """How Stripe shows a wrong key in its message: its prefix and last four characters."""
    prefix = key[:8] if key.startswith(("sk_test_", "rk_test_", "sk_live_", "rk_live_")) else ""
    return prefix + "*" * max(len(key) - len(prefix) - 4, 0) + key[-4:]


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form keys (``a[b][0][c]=v``, ``types[]=x``) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `key[]`: the next item of a list
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


@dataclass
class Seen:
    """One request as the fake received it (the form and query already nested)."""

    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any]
    headers: dict[str, str]
    status: int = 0


@dataclass
class Paid:
    """What a customer's payment made at Stripe: its objects and the events emitted."""

    intent: str
    charge: str
    session: str | None
    amount: int
    events: list[dict[str, Any]] = field(default_factory=list)


class StripeError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def _missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(
        404,
        {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": f"No such {kind}: '{object_id}'",
            "param": param,
            "type": "invalid_request_error",
        },
    )


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    error: dict[str, Any] = {"message": message, "type": "invalid_request_error"}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return StripeError(400, error)


class FakeStripeServer:
    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.requests: list[Seen] = []
        self.links: dict[str, dict[str, Any]] = {}
        self.links_created = 0  # payment links really made (an idempotent replay is not one)
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []  # in the order they happened
        self._idempotent: dict[str, tuple[str, dict[str, Any]]] = {}
        self._outage: int | None = None
        self._lose = 0
        self._scripts: dict[str, list[int | None]] = {}
        self._denied: dict[str, str] = {}
        self._lock = threading.RLock()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()  # kept-alive connections, closed by stop()

    # ---- the server ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base (the library adds /v1/...)."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeStripeServer:
        """Listen (again, on the same port once it had one)."""
        if self._server is not None:
            return self
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY each answer
            # waits ~40 ms for the client's delayed ACK (Nagle).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._open.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._open.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_POST(self) -> None:
                outer._handle(self, "POST")

            def do_DELETE(self) -> None:
                outer._handle(self, "DELETE")

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            open_now, self._open = list(self._open), set()
        for conn in open_now:  # a kept-alive connection would still be answered
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def outage(self, status: int | None = 500) -> None:
        """Answer every request with `status` (500, 503, 429) from now on; None ends it."""
        with self._lock:
            self._outage = status

    def script(self, path: str, *statuses: int | None) -> None:
        """The next requests to `path` (a prefix) answer these in turn: None serves the
        request as usual, a number fails it with that status (e.g. page 2 of a list)."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(statuses)

    def deny(self, path: str, permission: str) -> None:
        """Requests to `path` (a prefix) are refused with 403, as for a restricted key
        without `permission` (e.g. rak_payment_intent_read); `allow(path)` grants it."""
        with self._lock:
            self._denied[path] = permission

    def allow(self, path: str) -> None:
        with self._lock:
            self._denied.pop(path, None)

    def lose_answers(self, n: int = 1) -> None:
        """The next `n` POSTs take effect, but the connection drops before the answer."""
        with self._lock:
            self._lose = n

    # ---- what the tests read ---------------------------------------------------------

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """Requests received, optionally of one method and path prefix."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or r.path.startswith(path))
            ]

    def link_requests(self) -> list[Seen]:
        """The requests that create a payment link (not those that update one)."""
        return [r for r in self.seen("POST", "/v1/payment_links") if r.path == "/v1/payment_links"]

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    # ---- the customer's side: objects changed and events emitted as Stripe would ------

    def event(
        self,
        kind: str,
        obj: dict[str, Any],
        *,
        created: int | None = None,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add an event of type `kind` about (a copy of) `obj`; returns it."""
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        with self._lock:
            self._events.append(event)
        return event

    def pay(
        self,
        link: str | dict[str, Any] | None = None,
        *,
        job_id: int | None = None,
        metadata: dict[str, str] | None = None,
        amount: int | None = None,
        created: int | None = None,
        kinds: tuple[str, ...] = (
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed",
        ),
    ) -> Paid:
        """A customer pays through `link` (its price; its metadata goes to the session and
        the payment intent) or, without one, pays `amount` directly with the metadata of
        `job_id` (as EchoPilot tags it) or `metadata` (a payment not EchoPilot's)."""
        at = int(time.time()) if created is None else created
        if link is not None:
            link = self._link(link)
            meta = dict(link["metadata"])
            intent_meta = dict(link.get("payment_intent_data", {}).get("metadata") or meta)
            amount = amount if amount is not None else int(link["_unit_amount"])
            currency = link["currency"]
        else:
            assert amount is not None, "pay(link) or pay(job_id=..., amount=...)"
            if metadata is None:
                assert job_id is not None, "pay(job_id=...) or pay(metadata=...)"
                metadata = {"job_id": str(job_id), "source": "echopilot"}
            meta = intent_meta = dict(metadata)
            currency = "usd"
        intent_id, charge_id = new_id("pi"), new_id("ch")
        charge = self._charge(charge_id, intent_id, amount, currency, intent_meta, at)
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount,
            "currency": currency,
            "created": at,
            "last_payment_error": None,
            "latest_charge": charge_id,
            "livemode": False,
            "metadata": intent_meta,
            "payment_method_types": ["card"],
            "status": "succeeded",
        }
        session = None
        if link is not None:
            session = {
                "id": new_id("cs_test"),
                "object": "checkout.session",
                "amount_subtotal": amount,
                "amount_total": amount,
                "created": at,
                "currency": currency,
                "customer_details": {"email": "client@example.com", "name": "A Client"},
                "livemode": False,
                "metadata": meta,
                "mode": "payment",
                "payment_intent": intent_id,
                "payment_link": link["id"],
                "payment_status": "paid",
                "status": "complete",
            }
        with self._lock:
            self.charges[charge_id] = charge
            self.payment_intents[intent_id] = intent
        paid = Paid(intent_id, charge_id, session["id"] if session else None, amount)
        for kind in kinds:
            if kind == "charge.succeeded":
                paid.events.append(self.event(kind, charge, created=at))
            elif kind == "payment_intent.succeeded":
                paid.events.append(self.event(kind, intent, created=at))
            elif kind == "checkout.session.completed" and session is not None:
                paid.events.append(self.event(kind, session, created=at))
        return paid

    def fail_payment(
        self,
        link: str | dict[str, Any],
        *,
        message: str = "Your card was declined.",
        created: int | None = None,
    ) -> dict[str, Any]:
        """A customer's card is declined on `link`'s checkout: a failed charge, and the
        payment intent waiting for another payment method. Returns the event."""
        at = int(time.time()) if created is None else created
        link = self._link(link)
        meta = dict(link.get("payment_intent_data", {}).get("metadata") or link["metadata"])
        amount = int(link["_unit_amount"])
        intent_id, charge_id = new_id("pi"), new_id("ch")
        charge = self._charge(charge_id, intent_id, amount, link["currency"], meta, at)
        charge.update(
            amount_captured=0,
            captured=False,
            paid=False,
            status="failed",
            failure_code="card_declined",
            failure_message=message,
        )
        error = {
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": message,
            "type": "card_error",
        }
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": link["currency"],
            "created": at,
            "last_payment_error": error,
            "latest_charge": charge_id,
            "livemode": False,
            "metadata": meta,
            "status": "requires_payment_method",
        }
        with self._lock:
            self.charges[charge_id] = charge
            self.payment_intents[intent_id] = intent
        self.event("charge.failed", charge, created=at)
        return self.event("payment_intent.payment_failed", intent, created=at)

    def refund(
        self,
        charge_id: str,
        amount: int,
        *,
        metadata: bool = True,
        payment_intent: bool = True,
        created: int | None = None,
    ) -> dict[str, Any]:
        """Refund `amount` more of a charge (Stripe reports the cumulative amount_refunded).
        `metadata=False` / `payment_intent=False` leave those out of the event's charge, as
        for a charge that carries none. Returns the charge.refunded event."""
        with self._lock:
            charge = self.charges[charge_id]
            before = charge["amount_refunded"]
            charge["amount_refunded"] = before + amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            shown = json.loads(json.dumps(charge))
        if not metadata:
            shown["metadata"] = {}
        if not payment_intent:
            shown["payment_intent"] = None
        return self.event(
            "charge.refunded", shown, created=created, previous={"amount_refunded": before}
        )

    def dispute(
        self,
        charge_id: str,
        *,
        reason: str = "fraudulent",
        created: int | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """The card holder disputes a charge: its amount is taken back at once. Returns the
        dispute's id and the events (created, funds_withdrawn)."""
        at = int(time.time()) if created is None else created
        with self._lock:
            charge = self.charges[charge_id]
            dispute = {
                "id": new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"],
                "balance_transactions": [],
                "charge": charge_id,
                "created": at,
                "currency": charge["currency"],
                "evidence_details": {
                    "due_by": at + 7 * 86400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "status": "needs_response",
            }
            self.disputes[dispute["id"]] = dispute
            charge["disputed"] = True
        made = [
            self.event("charge.dispute.created", dispute, created=at),
            self.event("charge.dispute.funds_withdrawn", dispute, created=at),
        ]
        return dispute["id"], made

    def close_dispute(
        self, dispute_id: str, status: str = "lost", *, created: int | None = None
    ) -> dict[str, Any]:
        """The dispute ends (`won`, `lost`); returns the charge.dispute.closed event."""
        with self._lock:
            dispute = self.disputes[dispute_id]
            before = dispute["status"]
            dispute["status"] = status
        return self.event(
            "charge.dispute.closed", dispute, created=created, previous={"status": before}
        )

    def _link(self, ref: str | dict[str, Any]) -> dict[str, Any]:
        """A payment link the fake made, by its id, its url or the object answered."""
        with self._lock:
            if isinstance(ref, dict):
                ref = str(ref["id"])
            for link in self.links.values():
                if ref in (link["id"], link["url"]):
                    return link
        raise KeyError(f"no payment link {ref!r} was made")

    def _charge(
        self,
        charge_id: str,
        intent_id: str,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        at: int,
    ) -> dict[str, Any]:
        return {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "captured": True,
            "created": at,
            "currency": currency,
            "disputed": False,
            "livemode": False,
            "metadata": dict(metadata),
            "paid": True,
            "payment_intent": intent_id,
            "refunded": False,
            "status": "succeeded",
        }

    # ---- the API ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        seen = Seen(
            method=method,
            path=parts.path,
            query=_nest(parse_qsl(parts.query, keep_blank_values=True)),
            form=_nest(parse_qsl(raw, keep_blank_values=True)),
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self._lock:
            self.requests.append(seen)
            outage = self._outage
            for prefix, queue in self._scripts.items():
                if queue and parts.path.startswith(prefix):
                    outage = queue.pop(0) or outage
                    break
        try:
            if outage is not None:
                kind = "rate_limit_error" if outage == 429 else "api_error"
                raise StripeError(
                    outage, {"message": "An unknown error occurred (fake outage)", "type": kind}
                )
            self._authorize(handler.headers.get("Authorization"))
            self._permit(parts.path)
            status, body = 200, self._route(method, parts.path, seen)
        except StripeError as exc:
            status, body = exc.status, {"error": exc.error}
        seen.status = status
        if method == "POST" and status == 200:
            with self._lock:
                lose, self._lose = self._lose > 0, max(self._lose - 1, 0)
            if lose:  # done at Stripe; the answer never arrives
                seen.status = 0
                handler.close_connection = True
                return
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("Request-Id", new_id("req"))
            handler.send_header("Stripe-Version", API_VERSION)
            if seen.headers.get("idempotency-key") and method == "POST":
                handler.send_header("Idempotency-Key", seen.headers["idempotency-key"])
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorize(self, header: str | None) -> None:
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise StripeError(
                401,
                {
                    "message": "You did not provide an API key. You need to provide your API "
                    "key in the Authorization header, using Bearer auth.",
                    "type": "invalid_request_error",
                },
            )
        given = given.strip()
        if given != self.key:
            raise StripeError(
                401,
                {
                    "message": f"Invalid API Key provided: {_masked(given)}",
                    "type": "invalid_request_error",
                },
            )

    def _permit(self, path: str) -> None:
        with self._lock:
            lacking = next(
                (p for prefix, p in self._denied.items() if path.startswith(prefix)), None
            )
        if lacking is not None:
            raise StripeError(
                403,
                {
                    "message": f"The provided key '{_masked(self.key)}' does not have the "
                    "required permissions for this endpoint on account 'acct_1FakeAccount00'. "
                    f"Having the '{lacking}' permission would allow this request to continue.",
                    "type": "invalid_request_error",
                },
            )

    def _route(self, method: str, path: str, seen: Seen) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] != ["v1"] or len(parts) < 2:
            raise self._unknown(method, path)
        resource, rest = parts[1], parts[2:]
        with self._lock:
            if resource == "payment_links" and method == "POST" and not rest:
                return self._create_link(seen)
            if resource == "payment_links" and method == "POST" and len(rest) == 1:
                return self._update_link(rest[0], seen)
            if method != "GET" or len(rest) > 1:
                raise self._unknown(method, path)
            if resource == "events" and not rest:
                return self._list_events(seen.query)
            if resource == "payment_links" and not rest:
                links = [_public(link) for link in reversed(list(self.links.values()))]
                return {
                    "object": "list",
                    "url": "/v1/payment_links",
                    "has_more": False,
                    "data": links[: int(seen.query.get("limit", 10))],
                }
            stores = {
                "events": ("event", {e["id"]: e for e in self._events}),
                "payment_links": ("payment_link", self.links),
                "payment_intents": ("payment_intent", self.payment_intents),
                "charges": ("charge", self.charges),
                "disputes": ("dispute", self.disputes),
            }
            if resource in stores and rest:
                kind, store = stores[resource]
                found = store.get(rest[0])
                if found is None:
                    raise _missing(kind, rest[0])
                return _public(found)
        raise self._unknown(method, path)

    @staticmethod
    def _unknown(method: str, path: str) -> StripeError:
        return StripeError(
            404,
            {
                "message": f"Unrecognized request URL ({method}: {path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                "type": "invalid_request_error",
            },
        )

    def _update_link(self, link_id: str, seen: Seen) -> dict[str, Any]:
        link = self.links.get(link_id)
        if link is None:
            raise _missing("payment_link", link_id)
        if "active" in seen.form:
            link["active"] = seen.form["active"] == "true"
        return _public(link)

    def _create_link(self, seen: Seen) -> dict[str, Any]:
        form = seen.form
        key = seen.headers.get("idempotency-key")
        fingerprint = json.dumps(form, sort_keys=True)
        if key:
            replay = self._idempotent.get(key)
            if replay is not None:
                if replay[0] != fingerprint:
                    raise StripeError(
                        400,
                        {
                            "message": "Keys for idempotent requests can only be used with the "
                            "same parameters they were first used with. Try using a key other "
                            f"than '{key}' if you meant to execute a different request.",
                            "type": "idempotency_error",
                        },
                    )
                return _public(replay[1])
        items = form.get("line_items")
        if not isinstance(items, list) or not items:
            raise _invalid("Missing required param: line_items.", "line_items", "parameter_missing")
        item = items[0]
        price = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price, dict):
            raise _invalid("You must pass either price or price_data.", "line_items[0][price]")
        amount = price.get("unit_amount")
        if not isinstance(amount, str) or not amount.isdigit():
            raise _invalid(
                "Invalid integer: " + str(amount), "line_items[0][price_data][unit_amount]"
            )
        if not price.get("currency"):
            raise _invalid(
                "Missing required param: line_items[0][price_data][currency].",
                "line_items[0][price_data][currency]",
                "parameter_missing",
            )
        link_id = new_id("plink")
        link = {
            "id": link_id,
            "object": "payment_link",
            "active": True,
            "allow_promotion_codes": False,
            "currency": price["currency"],
            "livemode": False,
            "metadata": form.get("metadata") or {},
            "payment_intent_data": form.get("payment_intent_data"),
            "restrictions": form.get("restrictions"),
            "url": f"https://buy.stripe.com/test_{uuid.uuid4().hex[:14]}",
            "_unit_amount": int(amount),
            "_line_items": items,
        }
        self.links[link_id] = link
        self.links_created += 1
        if key:
            self._idempotent[key] = (fingerprint, link)
        return _public(link)

    def _list_events(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", 10))
        except (TypeError, ValueError):
            raise _invalid("Invalid integer: " + str(query.get("limit")), "limit") from None
        if not 1 <= limit <= PAGE_MAX:
            raise _invalid(
                "This value must be greater than or equal to 1 and less than or equal to 100.",
                "limit",
            )
        chosen = list(reversed(self._events))  # newest first (ties: the later one first)
        chosen.sort(key=lambda e: e["created"], reverse=True)
        created = query.get("created")
        if isinstance(created, str):
            chosen = [e for e in chosen if e["created"] == int(created)]
        elif isinstance(created, dict):
            tests = {
                "gte": lambda a, b: a >= b,
                "gt": lambda a, b: a > b,
                "lte": lambda a, b: a <= b,
                "lt": lambda a, b: a < b,
            }
            for op, bound in created.items():
                if op not in tests:
                    raise _invalid(f"Received unknown parameter: created[{op}]", "created")
                chosen = [e for e in chosen if tests[op](e["created"], int(bound))]
        types = query.get("types")
        if isinstance(types, list):
            chosen = [e for e in chosen if e["type"] in types]
        if isinstance(query.get("type"), str):
            chosen = [e for e in chosen if e["type"] == query["type"]]
        after = query.get("starting_after")
        if after:
            ids = [e["id"] for e in chosen]
            if after not in ids:
                raise _missing("event", after, "starting_after")
            chosen = chosen[ids.index(after) + 1 :]
        page = chosen[:limit]
        return {
            "object": "list",
            "data": [_public(e) for e in page],
            "has_more": len(chosen) > limit,
            "url": "/v1/events",
        }


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy without the fake's own bookkeeping fields (those starting with _)."""
    copy: dict[str, Any] = json.loads(
        json.dumps({k: v for k, v in obj.items() if not k.startswith("_")})
    )
    return copy
