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


def readme_section_code(heading: str) -> list[str]:
    """The ```python blocks of one `## heading` section."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_custom_training_loop_examples_run(tmp_path, monkeypatch) -> None:
    """The README's Keras and PyTorch examples, as printed, on a tiny cache named cache.h5."""
    import numpy as np
    from cache_fixtures import ucf101_like_cache

    ucf101_like_cache(tmp_path / "cache.h5", num_classes=2, num_groups=10, clips_per_group=1, num_frames=10)
    monkeypatch.chdir(tmp_path)
    keras_example, torch_example = readme_section_code("Your own training loop, and exporting features")
    namespace: dict = {}
    exec(keras_example.replace("epochs=10", "epochs=1, verbose=0"), namespace)
    assert len(namespace["model"].history.history["val_accuracy"]) == 1
    exec(torch_example.replace("range(10)", "range(1)"), namespace)
    assert np.isfinite(namespace["loss"].item())
