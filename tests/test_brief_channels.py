"""The brief's short version on the alert channels: it goes to every channel but the email
one when the full brief went by email (the owner gets one mail, not two), and to every
channel when email is not set up."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable

from echopilot.briefs import service
from echopilot.runtime import Runtime
from tests.test_alert_channels import Receiver, smtp_server


def test_with_email_set_the_owner_gets_one_mail_and_the_webhook_the_short_version(
    make_runtime: Callable[..., Runtime],
) -> None:
    with smtp_server() as (mailbox, port), Receiver() as hook:
        rt = make_runtime(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            alert_to="owner@example.com",
            alert_urls=hook.url(),
        )
        brief = service.run_by(rt, actor="test", send=True)
    assert brief["email"]["status"] == "sent"
    assert len(mailbox.messages) == 1  # the full brief only: Apprise's mail channel skipped
    message = email.message_from_bytes(mailbox.messages[0][2], policy=email.policy.default)
    assert message.is_multipart() and brief["headline"] in str(message["Subject"])
    assert len(hook.posts) == 1
    _, body = hook.posts[0]
    assert brief["headline"] in body["title"]
    assert brief["freshness"]["line"] in body["message"]
    assert "Dashboard: http://127.0.0.1:" in body["message"]
    assert list(brief["email"]["channels"].values()) == ["ok"]  # the webhook only


def test_without_email_the_short_version_still_reaches_the_other_channels(
    make_runtime: Callable[..., Runtime],
) -> None:
    with Receiver() as hook:
        rt = make_runtime(alert_urls=hook.url())
        brief = service.run_by(rt, actor="test", send=True)
    assert brief["email"]["status"] == "not_configured"
    assert "SMTP_HOST" in brief["email"]["reason"]
    assert len(hook.posts) == 1
    assert brief["headline"] in hook.posts[0][1]["title"]
