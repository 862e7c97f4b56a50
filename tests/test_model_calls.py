"""The openai provider against a fake OpenAI-compatible server, through the real client."""

from __future__ import annotations

import pytest

from echopilot.ai.base import AIError, ModelRequest
from echopilot.ai.openai_provider import OpenAIProvider
from echopilot.ai.retry import RetryPolicy, with_retries
from tests.fakes.model_server import FakeModelServer, Reply

REQUEST = ModelRequest(
    purpose="task",
    model="gpt-4o",
    system="Summarise.",
    prompt="Some text.",
    max_tokens=100,
    task_type="summary",
    input_text="Some text.",
)
FAST = RetryPolicy(max_retries=3, base_seconds=0.01, max_seconds=5)


def provider(server: FakeModelServer, timeout: float = 5) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test", base_url=server.url, timeout=timeout)


def call(server: FakeModelServer, timeout: float = 5):
    p = provider(server, timeout)
    return with_retries(lambda: p.complete(REQUEST), FAST)


def test_a_success_reports_text_and_token_usage(model_server: FakeModelServer) -> None:
    model_server.on("task", Reply.ok("A summary.", tokens_in=123, tokens_out=45))
    completion = call(model_server)
    assert completion.text == "A summary."
    assert (completion.tokens_in, completion.tokens_out) == (123, 45)
    assert completion.model == "gpt-4o"
    assert model_server.requests[0].body["messages"][0]["content"] == "Summarise."


def test_it_waits_for_retry_after_on_429_then_succeeds(model_server: FakeModelServer) -> None:
    model_server.on(
        "task",
        Reply.error(429, "slow down", headers={"Retry-After": "1"}),
        Reply.ok("after the wait"),
    )
    completion = call(model_server)
    assert completion.text == "after the wait"
    first, second = model_server.requests
    assert second.at - first.at >= 0.95, "Retry-After: 1 must be honoured"


def test_it_retries_a_500_then_succeeds(model_server: FakeModelServer) -> None:
    model_server.on("task", Reply.error(500), Reply.error(503), Reply.ok("third time"))
    assert call(model_server).text == "third time"
    assert model_server.count("task") == 3


def test_it_retries_after_a_timeout(model_server: FakeModelServer) -> None:
    model_server.on("task", Reply.ok("too late", delay=1.5), Reply.ok("in time"))
    assert call(model_server, timeout=0.5).text == "in time"
    assert model_server.count("task") == 2


@pytest.mark.parametrize("status", [400, 401, 404])
def test_it_does_not_retry_a_permanent_error(model_server: FakeModelServer, status: int) -> None:
    model_server.on("task", Reply.error(status, "you asked for something impossible"))
    with pytest.raises(AIError) as caught:
        call(model_server)
    assert caught.value.permanent
    assert caught.value.status == status
    assert "you asked for something impossible" in str(caught.value)
    assert model_server.count("task") == 1


def test_a_server_that_repeats_the_refused_key_does_not_get_it_into_the_error(
    model_server: FakeModelServer,
) -> None:
    key = "sk-live-do-not-store-0123456789"
    model_server.on("task", Reply.error(401, f"Incorrect API key provided: {key}"))
    p = OpenAIProvider(api_key=key, base_url=model_server.url, timeout=5)
    with pytest.raises(AIError) as caught:
        p.complete(REQUEST)
    assert key not in str(caught.value)
    assert "Incorrect API key provided: ****" in str(caught.value)


def test_transient_errors_give_up_after_the_retry_budget(model_server: FakeModelServer) -> None:
    model_server.on("task", *[Reply.error(502)] * 10)
    with pytest.raises(AIError) as caught:
        call(model_server)
    assert not caught.value.permanent
    assert model_server.count("task") == 1 + FAST.max_retries


def test_an_unreachable_server_is_a_transient_error() -> None:
    p = OpenAIProvider(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=1)
    with pytest.raises(AIError) as caught:
        p.complete(REQUEST)
    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("header", "at_least", "at_most"),
    [("2", 1.9, 3.0), ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0, 0.5), ("nan", 0.0, 0.5)],
)
def test_odd_retry_after_values_never_crash_the_retry(
    model_server: FakeModelServer, header: str, at_least: float, at_most: float
) -> None:
    model_server.on("task", Reply.error(429, headers={"Retry-After": header}), Reply.ok("ok"))
    assert call(model_server).text == "ok"
    first, second = model_server.requests
    assert at_least <= second.at - first.at <= at_most
