"""Tests for featcache.inference.zeroshot and `featcache zeroshot` / `compare --zero-shot`, on planted caches.

The text tower is the stand-in keras_hub of tests/test_text.py; caches are tiny h5py files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cache_fixtures import ordered_sequences, write_cache
from test_text import CLASS_NAMES, planted_cache, stand_in_keras_hub  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from featcache.cli import app


def test_zeroshot_command_writes_the_evaluate_report(tmp_path: Path, stand_in_keras_hub):  # noqa: F811
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub, prompts=("a video of a person {}.", "{}"))
    out = tmp_path / "report"
    prompts = ["--prompt", "a video of a person {}.", "--prompt", "{}"]
    result = CliRunner().invoke(app, ["zeroshot", str(cache_path), *prompts, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == 1.0 and report["num_videos"] == len(labels) and report["misclassified"] == []
    assert report["zero_shot"]["prompts"] == ["a video of a person {}.", "{}"]
    assert report["zero_shot"]["class_words"]["ApplyEyeMakeup"] == "apply eye makeup"
    assert (out / "confusion_matrix.png").is_file()
    assert json.loads((out / "report.json").read_text())["confusion_matrix"] == np.diag([8] * 5).tolist()
    text = CliRunner().invoke(app, ["zeroshot", str(cache_path), *prompts, "--subset", "test", "--out", str(out)])
    assert text.exit_code == 0, text.output
    assert "Accuracy: 1.0000" in text.stdout and "test videos of" in text.stdout


def test_zeroshot_with_other_class_words_and_a_distractor(tmp_path: Path, stand_in_keras_hub):  # noqa: F811
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub)
    csv_path = tmp_path / "texts.csv"
    csv_path.write_text("YoYo,a cat sleeping\n", encoding="utf-8")  # YoYo's frames no longer match its words
    result = CliRunner().invoke(
        app,
        ["zeroshot", str(cache_path), "--class-texts", str(csv_path), "--classes", ",".join(CLASS_NAMES + ["Diving"])],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "planted-zeroshot" / "report.json").read_text())
    assert report["class_names"][-1] == "Diving" and report["per_class"]["YoYo"]["recall"] < 0.5
    assert report["per_class"]["Surfing"]["recall"] == 1.0
    missing = CliRunner().invoke(app, ["zeroshot", str(cache_path), "--classes", "Surfing,YoYo"])
    assert missing.exit_code == 2 and "class(es) the model does not know: PlayingCello" in missing.output


def test_zeroshot_refuses_a_cache_without_a_text_tower_in_one_line(tmp_path: Path):
    features, lengths, labels = ordered_sequences(3)
    cache_path = write_cache(tmp_path / "mobilenet.h5", features, lengths, labels, ["forward", "backward"])
    result = CliRunner().invoke(app, ["zeroshot", str(cache_path)])
    assert result.exit_code == 2
    (error,) = result.output.strip().splitlines()
    assert "--extractor mobilenet_v2, which has no text tower" in error and "keras_hub:PRESET" in error


def test_compare_shows_a_zero_shot_row(tmp_path: Path, stand_in_keras_hub):  # noqa: F811
    cache_path, _ = planted_cache(tmp_path, stand_in_keras_hub)
    result = CliRunner().invoke(
        app, ["compare", str(cache_path), "--heads", "meanpool", "--epochs", "1", "--zero-shot", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {row["head"]: row for row in json.loads(result.stdout)["heads"]}
    assert set(rows) == {"zero-shot", "meanpool"} and rows["zero-shot"]["test_accuracy"] == 1.0
    table = CliRunner().invoke(app, ["compare", str(cache_path), "--heads", "meanpool", "--epochs", "1", "--zero-shot"])
    assert any(line.startswith("zero-shot") and "1.000" in line for line in table.stdout.splitlines())
