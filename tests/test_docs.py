"""The docs keep up with the code: every setting and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.core import TyperGroup

from echopilot.cli.main import app
from echopilot.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def command_paths(group: TyperGroup, prefix: str = "echopilot") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, TyperGroup):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def test_every_setting_is_in_the_configuration_doc() -> None:
    missing = [
        env_name(f) for f in Settings.model_fields if f"`{env_name(f)}`" not in CONFIGURATION
    ]
    assert not missing, f"undocumented settings: {missing}"


def test_every_documented_setting_exists() -> None:
    known = {env_name(f) for f in Settings.model_fields}
    table_rows = re.findall(r"^\| `([A-Z_]+)` \|", CONFIGURATION, flags=re.MULTILINE)
    assert set(table_rows) <= known, f"documented but unknown: {set(table_rows) - known}"


def test_every_cli_command_is_in_the_readme() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    paths = command_paths(group)
    assert "echopilot jobs submit" in paths
    missing = [p for p in paths if f"`{p}" not in README]
    assert not missing, f"undocumented commands: {missing}"


def test_every_make_target_is_in_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE)
    hidden = {"help", "format", "clean"}
    missing = [t for t in targets if t not in hidden and f"make {t}" not in README]
    assert not missing, f"undocumented make targets: {missing}"
