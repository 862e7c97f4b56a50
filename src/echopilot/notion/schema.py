"""What the Notion databases must hold, and the check that says plainly what they lack.

The queue's title property may have any name (every Notion database has exactly one); the
others are found by name and must have the type given here. A database that lacks a
required property, or has one of the wrong type, turns the connector off with one message
per problem; optional ones are written only when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRIGGER = "Trigger"
STATUS = "Status"
TASK_TYPE = "Task Type"
DESCRIPTION = "Description"
QA_TARGET = "QA Target"
CLIENT_EMAIL = "Client Email"
RESULT_SUMMARY = "Result Summary"
QA_SCORE = "QA Score"
COST = "Cost"
JOB_ID = "Job ID"

QUEUE_REQUIRED = {
    TRIGGER: "checkbox",
    STATUS: "select",
    TASK_TYPE: "select",
    DESCRIPTION: "rich_text",
}
QUEUE_OPTIONAL = {
    QA_TARGET: "number",
    CLIENT_EMAIL: "email",
    RESULT_SUMMARY: "rich_text",
    QA_SCORE: "number",
    COST: "number",
    JOB_ID: "number",
}
# The Job Log's Job ID is what finds a row whose creation was answered but the answer lost.
JOBLOG_REQUIRED = {JOB_ID: "number"}
JOBLOG_OPTIONAL = {
    STATUS: "select",
    TASK_TYPE: "select",
    QA_SCORE: "number",
    COST: "number",
    "Price": "number",
    "Finished": "date",
    "Queue Page": "url",
}

# How Notion names its property types in its own interface.
_SHOWN = {
    "checkbox": "Checkbox",
    "select": "Select",
    "rich_text": "Text",
    "number": "Number",
    "email": "Email",
    "date": "Date",
    "url": "URL",
    "title": "Title",
}


def shown(kind: str) -> str:
    return _SHOWN.get(kind, kind)


@dataclass(frozen=True)
class Layout:
    """A database's usable properties: its title property's name and, by name, the type of
    every other property EchoPilot knows."""

    title: str
    types: dict[str, str]

    def has(self, name: str) -> bool:
        return name in self.types

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "types": dict(self.types)}


def check(
    label: str,
    properties: dict[str, Any],
    required: dict[str, str],
    optional: dict[str, str],
) -> tuple[Layout | None, list[str]]:
    """The layout of a database's `properties` (as Notion describes them), or the list of
    problems that make it unusable, each naming the property and the type it needs."""
    kinds = {str(name): str(spec.get("type")) for name, spec in properties.items()}
    titles = [name for name, kind in kinds.items() if kind == "title"]
    problems: list[str] = []
    if not titles:
        problems.append(f"the {label} database has no title property")
    for name, kind in {**required, **optional}.items():
        found = kinds.get(name)
        if found is None:
            if name in required:
                problems.append(
                    f"the {label} database has no property {name!r}: add it as {shown(kind)}"
                )
        elif found != kind:
            problems.append(
                f"the {label} database's property {name!r} is {shown(found)}; it must be "
                f"{shown(kind)}"
            )
    if problems:
        return None, problems
    known = {name: kind for name, kind in kinds.items() if name in required or name in optional}
    return Layout(title=titles[0], types=known), []
