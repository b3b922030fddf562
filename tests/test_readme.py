"""The README's two set-up commands stay the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The one-line fenced code blocks before the first section heading."""
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", head, flags=re.DOTALL)]


def test_readme_opens_with_two_commands_demo_then_tests() -> None:
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in command for command in commands)
    assert commands[0].endswith("featcache demo")
    assert commands[1].endswith("python3 -m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_commands()[1] in ci_lines
