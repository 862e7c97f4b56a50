"""What one check found, and the report of them all."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

# ok: works. warn: works, but something needs a look (not a failure: exit 0).
# fail: something required does not work (exit 1). off: not configured, so not checked.
# skip: could not be checked because an earlier check failed.
Status = Literal["ok", "warn", "fail", "off", "skip"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    summary: str  # what was found, one line
    fix: str | None = None  # what to do about it, one line (warn and fail only)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "seconds": round(self.seconds, 3),
        }

    def scrubbed(self, secrets: tuple[str, ...]) -> Finding:
        return replace(
            self, summary=scrub(self.summary, secrets) or "", fix=scrub(self.fix, secrets)
        )


def ok(check: str, summary: str) -> Finding:
    return Finding(check, "ok", summary)


def warn(check: str, summary: str, fix: str) -> Finding:
    return Finding(check, "warn", summary, fix)


def fail(check: str, summary: str, fix: str) -> Finding:
    return Finding(check, "fail", summary, fix)


def off(check: str, summary: str) -> Finding:
    return Finding(check, "off", summary)


def skip(check: str, summary: str) -> Finding:
    return Finding(check, "skip", summary)


def scrub(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """`text` with every secret masked, and as one line."""
    if text is None:
        return None
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "****")
    return " ".join(text.split())


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.count("fail"),
            "warnings": self.count("warn"),
            "checks": [f.as_dict() for f in self.findings],
        }
