"""`echopilot doctor`: every setting checked and every configured integration reached, each
failure told with its cause and its fix in one line."""

from echopilot.doctor.finding import Finding, Report
from echopilot.doctor.report import run

__all__ = ["Finding", "Report", "run"]
