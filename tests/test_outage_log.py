"""A daemon's failure while the database is away is one warning line naming the outage; a
bug keeps its traceback (the scheduler's and the lease keeper's retry loops log this way)."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from echopilot.db.outage import log_failure

LOG = logging.getLogger("echopilot.test.outage")


def locked() -> OperationalError:
    return OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))


def test_an_outage_is_one_warning_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        try:
            raise locked()
        except Exception:
            log_failure(LOG, "scheduler upkeep failed; trying again")
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    text = record.getMessage()
    assert text.startswith("scheduler upkeep failed; trying again: the database cannot be")
    assert "database is locked" in text and "\n" not in text


def test_an_outage_names_the_statement_it_stopped_but_never_its_parameters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cut = OperationalError(
        "UPDATE job_attempts\n   SET output = %(output)s WHERE id = %(id)s",
        {"output": "a customer's confidential text", "id": 7},
        Exception("terminating connection due to administrator command"),
    )
    with caplog.at_level(logging.WARNING):
        try:
            raise cut
        except Exception:
            log_failure(LOG, "job %s: attempt %s crashed", 7, 1)
    [record] = caplog.records
    text = record.getMessage()
    assert record.levelno == logging.WARNING and "\n" not in text
    assert "during: UPDATE job_attempts SET output = %(output)s WHERE id = %(id)s" in text
    assert "confidential" not in text


def test_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        try:
            {}["missing"]
        except Exception:
            log_failure(LOG, "deciding %s's slot failed; trying again", "brief")
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "deciding brief's slot failed; trying again"
