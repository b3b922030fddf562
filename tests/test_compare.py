"""Comparing heads on one cache and one split: test accuracy, validation picks the epoch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache
from typer.testing import CliRunner

from featcache.cli import app
from featcache.config import HEAD_NAMES, TrainConfig
from featcache.errors import FeatcacheError
from featcache.training.compare import compare_heads, format_comparison


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "small.h5", num_classes=3, num_groups=10, clips_per_group=1
    )


def test_compare_gives_one_row_per_head_on_the_same_split(small_cache: Path) -> None:
    messages: list[str] = []
    rows = compare_heads(
        small_cache, ["lstm", "meanpool"], {"units": 8, "dense": 8}, TrainConfig(epochs=2), progress=messages.append
    )
    assert [row.head for row in rows] == ["lstm", "meanpool"]
    assert sum(message.startswith("split:") for message in messages) == 1  # one split for every head
    assert all(
        0.0 <= row.test_accuracy <= 1.0 and row.seconds_per_epoch > 0 and 1 <= row.best_epoch <= 2 for row in rows
    )
    assert all(0.0 <= row.best_val_accuracy <= 1.0 for row in rows)
    # meanpool has no recurrent layer: fewer parameters than the LSTM at the same widths.
    assert rows[1].num_parameters < rows[0].num_parameters
    table = format_comparison(rows)
    assert table.splitlines()[0].split()[:5] == ["head", "test", "accuracy", "val", "accuracy"] and "meanpool" in table


@pytest.fixture(scope="module")
def cache_with_misleading_test_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 25 groups x 2 clips; the test groups of ucf101-1 (1-7) look like the next class."""
    return ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "misleading.h5",
        num_groups=25,
        clips_per_group=2,
        mislabelled_groups=range(1, 8),
    )


def test_the_accuracy_column_is_test_accuracy(cache_with_misleading_test_groups: Path) -> None:
    """Validation and test disagree on this cache: the table reports test, and validation only picks the epoch."""
    train_config = TrainConfig(epochs=6, batch_size=16, learning_rate=0.01, split="ucf101-1")
    rows = compare_heads(cache_with_misleading_test_groups, ["meanpool", "gru"], {"units": 8, "dense": 8}, train_config)
    for row in rows:
        assert row.best_val_accuracy > 0.9 and row.test_accuracy < 0.2, row


def test_compare_without_validation_keeps_the_last_epoch(small_cache: Path) -> None:
    rows = compare_heads(small_cache, ["meanpool"], {"dense": 8}, TrainConfig(epochs=2, val_fraction=0))
    assert (rows[0].best_epoch, rows[0].best_val_accuracy) == (2, None) and np.isfinite(rows[0].test_accuracy)
    assert format_comparison(rows).splitlines()[2].split()[2] == "-"


def test_compare_refuses_an_unknown_head(small_cache: Path) -> None:
    with pytest.raises(FeatcacheError, match="choose from lstm, gru, meanpool, transformer, tcn"):
        compare_heads(small_cache, ["lstm", "resnet"], {}, TrainConfig(epochs=1))


def test_compare_command(small_cache: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(small_cache),
            "--heads",
            "gru,meanpool,transformer,tcn",
            "--units",
            "8",
            "--dense",
            "8",
            "--attention-heads",
            "2",
            "--layers",
            "1",
            "--epochs",
            "1",
            "--test-fraction",
            "0.3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "30% held out for test" in result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines if line.split() and line.split()[0] in HEAD_NAMES] == [
        "gru",
        "meanpool",
        "transformer",
        "tcn",
    ]
    assert "test accuracy" in result.output


def test_compare_html_page_links_each_heads_model_page(small_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "compared"
    arguments = ["compare", str(small_cache), "--heads", "meanpool", "--dense", "4"]
    result = CliRunner().invoke(app, [*arguments, "--epochs", "1", "--out", str(out), "--html"])
    assert result.exit_code == 0, result.output
    assert f"comparison page: {out / 'comparison.html'}" in result.output
    page = (out / "comparison.html").read_text()
    link = f"meanpool/evaluation/{small_cache.stem}/report.html"
    assert re.findall(r'class="model-link" href="([^"]+)"', page) == [link] and (out / link).is_file()
    refused = CliRunner().invoke(app, [*arguments, "--html"])
    assert refused.exit_code == 2 and "--html needs --out DIR" in refused.output


def test_compare_command_rejects_zero_epochs(small_cache: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(small_cache), "--epochs", "0"])
    assert result.exit_code == 2
    assert "--epochs / epochs must be at least 1" in result.output
