"""Checks that reach the integrations EchoPilot is configured for: the model endpoint, the
mail server, the alert channels, Stripe and Notion. Each is bounded in time, reads only, and
says nothing that holds a key (the report masks them again, to be sure)."""

from __future__ import annotations

import re

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from echopilot.config import Settings
from echopilot.doctor.finding import Finding, fail, off, ok, warn

NETWORK_SECONDS = 10.0
# Messages that name the setting to change start with it ("SMTP_PASS: ...").
_SETTING = re.compile(r"^([A-Z][A-Z_/]+[A-Z]): ")
OPENAI_BASE = "https://api.openai.com/v1"
TEST_TITLE = "EchoPilot test message"
TEST_BODY = "This is a test from `echopilot doctor --send-test`: this channel works."


def model_finding(settings: Settings) -> Finding:
    if settings.provider_name == "offline":
        return ok(
            "model",
            "offline provider: a stand-in for a model, and every result says so; set "
            "OPENAI_API_KEY (or OPENAI_BASE_URL) for a real one",
        )
    import openai

    base = (settings.openai_base_url or OPENAI_BASE).rstrip("/")
    client = openai.OpenAI(
        api_key=settings.openai_api_key.get_secret_value()
        if settings.openai_api_key
        else "not-needed",
        base_url=base,
        timeout=min(settings.ai_timeout_seconds, NETWORK_SECONDS),
        max_retries=0,
    )
    wanted = list(dict.fromkeys(m for m in (settings.model, settings.qa_model) if m))
    try:
        try:
            served = {m.id for m in client.models.list()}
        except openai.NotFoundError:
            served = None  # a server without a models list: ask for one token instead
        if served is None:
            client.chat.completions.create(
                model=settings.model,
                messages=[{"role": "user", "content": "Say OK."}],
                max_tokens=1,
            )
            return ok("model", f"{base} answered a one-token call with {settings.model}")
    except openai.AuthenticationError:
        return fail(
            "model",
            f"{base} refused the key (401)",
            "set OPENAI_API_KEY to a valid key for this endpoint",
        )
    except openai.PermissionDeniedError:
        return fail(
            "model",
            f"{base} refused this key access (403)",
            "give the key's project access to the models, or use another key",
        )
    except openai.NotFoundError:
        return fail(
            "model",
            f"{base} does not serve the model {settings.model!r} (404)",
            "set ECHOPILOT_MODEL to a model the endpoint serves",
        )
    except openai.RateLimitError:
        return warn(
            "model",
            f"{base} answered 429 (rate limit or no credit left)",
            "check the account's limits and credit; jobs retry with backoff meanwhile",
        )
    except openai.APITimeoutError:
        return fail(
            "model",
            f"{base} did not answer within {client.timeout} s",
            "check OPENAI_BASE_URL and that the model server runs",
        )
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        return fail(
            "model",
            f"cannot reach {base} ({type(cause).__name__}: {str(cause)[:200]})",
            "check OPENAI_BASE_URL and that the model server runs",
        )
    except openai.APIStatusError as exc:
        return fail(
            "model",
            f"{base} answered {exc.status_code}",
            "try again later; if it stays, check the provider's status page",
        )
    finally:
        client.close()
    missing = [m for m in wanted if m not in served]
    if missing:
        listed = ", ".join(sorted(served)[:5]) or "none"
        setting = "ECHOPILOT_MODEL" if settings.model in missing else "ECHOPILOT_QA_MODEL"
        return fail(
            "model",
            f"{base} does not list {', '.join(repr(m) for m in missing)} among its "
            f"{len(served)} model(s) (it lists {listed})",
            f"set {setting} to a model it serves",
        )
    return ok("model", f"{base} serves {', '.join(wanted)}")


def email_finding(settings: Settings) -> Finding:
    from echopilot.briefs import mailer

    if not settings.smtp_host:
        return off("email", "SMTP_HOST not set: alerts and the brief are not emailed")
    found = mailer.check_login(settings, timeout=NETWORK_SECONDS)
    if found.error is None:
        return ok("email", found.summary)
    named = _SETTING.match(found.error)
    fix = (
        f"correct {named.group(1)} (docs/configuration.md)"
        if named
        else "check SMTP_HOST, SMTP_PORT and SMTP_SECURITY, and that the mail server runs"
    )
    return fail("email", found.error, fix)


def channel_findings(settings: Settings, *, send_test: bool) -> list[Finding]:
    from echopilot.alerts import channels

    found = channels.configured(settings)
    findings = [
        fail("alert channels", problem, "correct the setting it names (docs/operations.md)")
        for problem in found.problems
    ]
    if not found.usable:
        if not findings:
            findings.append(
                off(
                    "alert channels",
                    "none configured: alerts show on the dashboard only (set "
                    "ECHOPILOT_ALERT_URLS, TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID, or SMTP_HOST + "
                    "ALERT_TO)",
                )
            )
        return findings
    if not send_test:
        names = ", ".join(found.names)
        findings.append(
            ok(
                "alert channels",
                f"{len(found.usable)} parsed: {names} (`doctor --send-test` sends each a message)",
            )
        )
        return findings
    for channel in found.usable:
        why = channels.send(channel, TEST_TITLE, TEST_BODY)
        if why is None:
            findings.append(ok("alert channels", f"{channel.name}: test message delivered"))
        else:
            findings.append(
                fail(
                    "alert channels",
                    f"{channel.name}: test message not delivered ({why})",
                    f"correct {channel.setting} (docs/operations.md)",
                )
            )
    return findings


def stripe_finding(settings: Settings, engine: Engine | None) -> Finding:
    from echopilot.payments.gateway import Gateway, Refused, Unreachable

    if not settings.payments_enabled or settings.stripe_secret_key is None:
        return off("stripe", "STRIPE_SECRET_KEY not set: jobs are billed without payment links")
    key = settings.stripe_secret_key.get_secret_value()
    mode = "live" if "_live_" in key else "test"
    try:
        Gateway(settings).probe()
    except Unreachable as exc:
        return fail(
            "stripe",
            str(exc),
            "check the network to Stripe (and ECHOPILOT_STRIPE_API_BASE if set); "
            "links and reconciliation wait meanwhile",
        )
    except Refused as exc:
        return fail(
            "stripe",
            str(exc),
            "set STRIPE_SECRET_KEY to a secret key, or a restricted key with read access to "
            "events and write access to payment links",
        )
    summary = f"the {mode}-mode key reads events and payment links"
    if settings.stripe_webhook_secret is None:
        return warn(
            "stripe",
            summary + "; STRIPE_WEBHOOK_SECRET is not set, so payments are seen only by "
            "reconciliation (every 15 min)",
            "add a webhook endpoint for <public URL>/webhook/stripe in Stripe and set "
            "STRIPE_WEBHOOK_SECRET to its signing secret (docs/payments.md)",
        )
    return ok("stripe", summary + "; " + _last_webhook(engine))


def _last_webhook(engine: Engine | None) -> str:
    """Only an event that arrives signed proves the webhook secret matches the endpoint's."""
    from sqlalchemy import func, select

    from echopilot.clock import age_text, ensure_utc, utcnow
    from echopilot.db.models import StripeEvent

    if engine is None:
        return "webhook secret set"
    try:
        with Session(engine) as session:
            last = session.scalar(
                select(func.max(StripeEvent.received_at)).where(StripeEvent.via == "webhook")
            )
    except Exception:
        return "webhook secret set"
    if last is None:
        return "webhook secret set; no signed event received yet"
    return f"webhook secret set; last signed event {age_text(utcnow() - ensure_utc(last))} ago"


def notion_finding(settings: Settings, engine: Engine | None) -> Finding:
    from echopilot.notion import check
    from echopilot.notion.gateway import Denied, Gateway, Gone, Invalid, Unreachable

    if not settings.notion_enabled:
        return off("notion", "NOTION_TOKEN and NOTION_QUEUE_DB_ID not set: no Notion queue")
    # One try each, bounded like the other checks: a person is waiting for the answer.
    bounded = settings.model_copy(
        update={"notion_timeout_seconds": min(settings.notion_timeout_seconds, NETWORK_SECONDS)}
    )
    gateway = Gateway(bounded, tries=1)
    try:
        found = check.run(settings, gateway)
    except Unreachable as exc:
        return fail("notion", str(exc), "check the network to Notion; polls wait meanwhile")
    except (Denied, Gone) as exc:
        return fail(
            "notion",
            str(exc),
            "share the database with the integration (… menu, Connections) and check "
            "NOTION_TOKEN and the database ids",
        )
    except Invalid as exc:
        return fail("notion", str(exc), "check NOTION_QUEUE_DB_ID and NOTION_JOBLOG_DB_ID")
    finally:
        gateway.close()
    if not found.ok:
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        return fail(
            "notion",
            (found.problems[0] if found.problems else "the queue database is not usable") + more,
            "fix the property in Notion as named, then `echopilot notion check` (docs/notion.md)",
        )
    summary = "the queue database is usable" + (
        ", and the Job Log database" if found.joblog is not None else " (no Job Log database set)"
    )
    stopped = _connector_stopped(engine)
    if stopped is not None:
        return warn(
            "notion",
            f"{summary}, but the connector is stopped ({stopped})",
            "`echopilot notion check` turns it back on",
        )
    return ok("notion", summary)


def _connector_stopped(engine: Engine | None) -> str | None:
    from echopilot.db.models import NotionState

    if engine is None:
        return None
    try:
        with Session(engine) as session:
            state = session.get(NotionState, 1)
    except Exception:
        return None
    if state is None or state.status != "stopped":
        return None
    return state.reason or "no reason recorded"
