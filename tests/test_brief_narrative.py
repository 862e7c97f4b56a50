"""The brief's prose guard: a model may reword the summary and the actions, but only with
numbers the analysis holds. Its answer goes through the real `openai` client to the fake
model server; an answer that invents a number, is not the requested JSON, or never comes
leaves the deterministic summary in place, and the brief says which text it used and why.

The business is the one of test_brief_scenarios with no new client for 10 days: one
low-severity growth anomaly and one action (a1) to reword.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from echopilot.briefs import compose, files, narrative, service
from echopilot.briefs.narrative import check, numbers_in, unsupported
from echopilot.runtime import Runtime
from tests.fakes.model_server import FakeModelServer, Reply
from tests.test_brief_scenarios import NOW, seed, steady_days

NEW_WORDING = "Call the leads from the spring campaign and offer each a trial job"


@pytest.fixture
def rt(openai_rt: Callable[..., Runtime]) -> Runtime:
    """A runtime on the fake model server, over a month of jobs and no new client lately."""
    runtime = openai_rt()
    seed(runtime, steady_days(), client_ages=(60, 40, 10))
    return runtime


def analysis_of(rt: Runtime) -> dict[str, Any]:
    """The analysis a brief for NOW is made from (computed without a model)."""
    found: dict[str, Any] = service.run_analyze(rt, now=NOW)["analysis"]
    return found


def make(rt: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
    brief = service.make(rt, actor="test", now=NOW)
    analysis = files.read(rt.settings.home, "analysis", brief["stamp"])
    assert analysis is not None
    return brief, analysis


def answer(summary: Any, actions: Any = None) -> Reply:
    return Reply.ok(json.dumps({"summary": summary, "actions": actions or []}))


def assert_deterministic(brief: dict[str, Any], analysis: dict[str, Any]) -> str:
    """The brief fell back to the deterministic summary; the reason it gives."""
    assert brief["narrative"]["source"] == "deterministic"
    assert brief["summary"] == compose.deterministic_summary(analysis)
    assert brief["summary"].startswith("Over the last 7 days 42 jobs finished, billing 378.00 USD")
    # The actions keep the playbook's wording.
    assert [a["task"] for a in brief["actions_next_7d"]] == [
        "Follow up on leads and offer past clients a trial job"
    ]
    reason = brief["narrative"]["reason"]
    assert isinstance(reason, str) and reason
    return reason


# ------------------------------------------------------------------ through the model server


def test_a_grounded_answer_is_used_with_its_reworded_action(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    week = analysis_of(rt)["kpis"]["7d"]
    text = (
        f"Over the last 7 days {week['jobs']} jobs billed {week['revenue']} USD "
        f"with an average QA of {week['avg_qa']}. No new client came in: the newest "
        "came 10.0 days ago."
    )
    model_server.on("task", answer(text, [{"id": "a1", "task": NEW_WORDING}]))
    brief, analysis = make(rt)

    assert brief["narrative"] == {"source": "model", "model": "gpt-4o", "reason": None}
    assert brief["summary"] == text
    assert "378.00 USD" in text and "42 jobs" in text
    (action,) = brief["actions_next_7d"]
    assert action["id"] == "a1" and action["task"] == NEW_WORDING
    assert action["for"] == ["growth.no_new_clients"]
    # The files the owner reads carry the model's text too.
    assert text in Path(brief["paths"]["md"]).read_text(encoding="utf-8")
    assert NEW_WORDING in Path(brief["paths"]["html"]).read_text(encoding="utf-8")
    # One call, asking for the structured answer, given the findings (not the raw series).
    assert model_server.count() == 1
    body = model_server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "brief_narrative"
    sent = json.loads(body["messages"][1]["content"])
    assert set(sent) == {"cutoff", "kpis", "anomalies", "actions", "freshness"}
    assert [a["rule"] for a in sent["anomalies"]] == ["growth.no_new_clients"]
    assert sent["kpis"]["7d"]["revenue"] == "378.00" == analysis["kpis"]["7d"]["revenue"]


def test_an_answer_that_invents_a_number_is_replaced_by_the_deterministic_summary(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    model_server.on(
        "task",
        answer(
            "Revenue grew 12345 % this week and 378.00 USD came in.",
            [{"id": "a1", "task": NEW_WORDING}],
        ),
    )
    brief, analysis = make(rt)
    reason = assert_deterministic(brief, analysis)
    assert reason == "the model stated 12345, which is not in the analysis"
    assert brief["narrative"]["model"] == "gpt-4o"
    assert "12345" not in Path(brief["paths"]["md"]).read_text(encoding="utf-8")


def test_an_invented_number_in_an_action_rejects_the_whole_answer(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    week = analysis_of(rt)["kpis"]["7d"]
    model_server.on(
        "task",
        answer(
            f"The week billed {week['revenue']} USD.",
            [{"id": "a1", "task": "Win 17 new clients by Friday"}],
        ),
    )
    brief, analysis = make(rt)
    assert assert_deterministic(brief, analysis) == (
        "the model stated 17, which is not in the analysis"
    )


def test_a_recomputed_figure_is_rejected_even_when_close(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    # 378.00 USD over 42 jobs is 9 USD a job: a figure the analysis does not state.
    model_server.on("task", answer("Each job earned 9.01 USD on average."))
    brief, analysis = make(rt)
    assert "9.01" in assert_deterministic(brief, analysis)


def test_an_answer_that_is_not_json_is_discarded(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    model_server.on("task", Reply.ok("Here is your brief: revenue is fine."))
    brief, analysis = make(rt)
    reason = assert_deterministic(brief, analysis)
    assert reason == "the model's answer was not the requested structure (no summary)"
    assert model_server.count() == 1


MALFORMED = [
    ('["a list", "not an object"]', "not the requested structure (no summary)"),
    ('{"text": "no summary key"}', "not the requested structure (no summary)"),
    ('{"summary": ["Fine."], "actions": []}', "not the requested structure (no summary)"),
    ('{"summary": "Fine.", "actions": "a1"}', "not the requested structure (actions)"),
    ('{"summary": "Fine.", "actions": [{"id": 1, "task": "x"}]}', "structure (actions)"),
    ('{"summary": "Fine.", "actions": [{"id": "a1"}]}', "structure (actions)"),
    ('{"summary": "   ", "actions": []}', "summary was empty"),
    ("", "not the requested structure (no summary)"),
]


def test_answers_not_in_the_requested_structure_are_discarded(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    analysis = analysis_of(rt)
    fallback = compose.deterministic_summary(analysis)
    model_server.on("task", *(Reply.ok(reply) for reply, _ in MALFORMED))
    for reply, why in MALFORMED:
        got = narrative.write(analysis, rt.settings, fallback)
        assert (got.source, got.summary, got.tasks) == ("deterministic", fallback, {}), reply
        assert got.reason is not None and why in got.reason, (reply, got.reason)
    assert model_server.count() == len(MALFORMED)


def test_a_model_server_error_leaves_the_deterministic_summary_with_the_reason(
    rt: Runtime, model_server: FakeModelServer
) -> None:
    model_server.on("task", Reply.error(500, "upstream exploded"), Reply.error(500))
    brief, analysis = make(rt)
    reason = assert_deterministic(brief, analysis)
    assert reason.startswith("model call failed: InternalServerError")
    assert "500" in reason
    assert model_server.count() == 2  # the client's one retry, then the brief goes out
    assert brief["headline"] == "1 anomalies detected"
    assert Path(brief["paths"]["json"]).is_file()


def test_offline_makes_no_model_call_and_says_there_is_no_model(
    make_runtime: Callable[..., Runtime], model_server: FakeModelServer
) -> None:
    rt = make_runtime(ai_provider="offline")
    seed(rt, steady_days(), client_ages=(60, 40, 10))
    brief, analysis = make(rt)
    assert model_server.count() == 0
    reason = assert_deterministic(brief, analysis)
    assert "no model" in reason and "offline" in reason
    assert brief["narrative"]["model"] is None


# ------------------------------------------------------------------ the guard on small dicts


def test_numbers_in_finds_numbers_in_values_strings_and_keys() -> None:
    found = numbers_in(
        {
            "7d": {"revenue": "12.50", "jobs": 42, "roi": 1.5, "profit": "-3.20"},
            "line": "1,234 jobs finished",
            "flags": [True, False, None],
        }
    )
    assert found == {
        Decimal("7"),
        Decimal("12.5"),
        Decimal("42"),
        Decimal("1.5"),
        Decimal("-3.2"),  # signed: "3.20" would not match a loss of 3.20
        Decimal("1234"),
    }


def test_a_number_written_differently_but_equal_is_allowed() -> None:
    allowed = numbers_in({"revenue": "12.50", "jobs": 1234, "margin_pct": "40.0"})
    assert unsupported("Revenue was 12.5 USD (12.50 exactly) over 1,234 jobs.", allowed) == []
    assert unsupported("A margin of 40 %, 40.00 in full.", allowed) == []
    assert unsupported("Revenue was 12.51 USD.", allowed) == ["12.51"]
    assert unsupported("About 1,235 jobs.", allowed) == ["1,235"]


def shaped(kpis: dict[str, Any], *tasks: str, **more: Any) -> dict[str, Any]:
    """An analysis with these KPIs and actions and nothing else with a number in it."""
    return {
        "cutoff": "",
        "kpis": kpis,
        "anomalies": [],
        "actions": [
            {"id": f"a{n}", "owner": "ops", "priority": "P", "task": task, "eta_hours": None}
            for n, task in enumerate(tasks, 1)
        ],
        "freshness": {"line": ""},
        **more,
    }


def test_check_keeps_a_grounded_answer_and_only_known_actions() -> None:
    analysis = shaped({"7d": {"revenue": "12.50", "jobs": 1234}}, "Chase payment", "Fix it")
    got = check(
        {
            "summary": "  1,234 jobs billed 12.5 USD.  ",
            "actions": [
                {"id": "a1", "task": "Chase the 1234 unpaid jobs"},
                {"id": "a9", "task": "An action the analysis never had"},
                {"id": "a2", "task": "   "},
            ],
        },
        analysis,
    )
    assert got == ("1,234 jobs billed 12.5 USD.", {"a1": "Chase the 1234 unpaid jobs"})


@pytest.mark.parametrize(
    ("answer_", "why"),
    [
        (None, "(no summary)"),
        ("a string", "(no summary)"),
        ({"summary": 12.5}, "(no summary)"),
        ({"summary": "ok", "actions": {"a1": "x"}}, "(actions)"),
        ({"summary": "ok", "actions": [{"id": "a1"}]}, "(actions)"),
        ({"summary": ""}, "empty"),
        ({"summary": "x" * (narrative.MAX_SUMMARY + 1)}, "over 2000 characters"),
        (
            {"summary": "ok", "actions": [{"id": "a1", "task": "x" * (narrative.MAX_TASK + 1)}]},
            "over 300 characters",
        ),
        ({"summary": "Revenue was 12.6 USD."}, "the model stated 12.6"),
        ({"summary": "ok", "actions": [{"id": "a1", "task": "Do it 3 times"}]}, "stated 3,"),
    ],
)
def test_check_says_why_an_answer_is_refused(answer_: Any, why: str) -> None:
    result = check(answer_, shaped({"revenue": "12.50"}, "Chase"))
    assert isinstance(result, str) and why in result


def test_a_number_the_model_was_not_shown_is_refused_even_if_the_analysis_has_it() -> None:
    # The statistics of every series stay out of the model's input: a figure from there
    # is not grounded in what the model read.
    analysis = shaped({"revenue": "12.50"}, "Chase", statistics=[{"median": 77.78}])
    result = check({"summary": "The median was 77.78."}, analysis)
    assert result == "the model stated 77.78, which is not in the analysis"
