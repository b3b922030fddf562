"""`featcache demo`: the shipped demo pipeline needs no network; the command runs it end to end.

The full demo takes ~20 s, too slow for the suite: the command is tested on the same code path with a tiny
`demo` pipeline put in place of the shipped one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import featcache.pipelines.spec
from featcache.cli import app
from featcache.pipelines import load_pipeline
from featcache.training.model_folder import read_split_file

TINY_DEMO = """
description = "tiny demo: scratch CNN with random frozen weights, for a network-free demo"

[data]
demo = { videos_per_class = 4, num_groups = 3, num_frames = 6, image_size = 16 }

[embed]
extractor = "scratch_cnn"
weights = "random"
frames = 4
image_size = 32

[[heads]]
units = 8
dense = 8

[train]
epochs = 1
test_fraction = 0.34  # one of the 3 groups tests, one of the other 2 validates
"""


@pytest.fixture
def tiny_shipped_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shipped-pipelines folder whose `demo` is tiny."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "demo.toml").write_text(TINY_DEMO)
    monkeypatch.setattr(featcache.pipelines.spec, "SHIPPED_PIPELINES_DIR", shipped)
    return shipped


def test_shipped_demo_needs_no_network() -> None:
    pipeline = load_pipeline("demo")
    assert pipeline.data.demo is not None and pipeline.data.video_root is None
    assert pipeline.embed.extractor.weights == "random"
    assert "random frozen weights" in pipeline.description and "network-free" in pipeline.description
    assert pipeline.evaluate.subset == "test" and pipeline.train.split == "auto"


def test_demo_command_runs_end_to_end(tiny_shipped_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random frozen weights, for a network-free demo" in result.output
    assert "held-out (test) videos" in result.output and "trained now" in result.output
    assert f"featcache predict {out / 'models' / 'lstm'}" in result.output
    assert f"open the report in a browser: {out / 'report.html'}" in result.output
    assert (
        "train lstm: split " in result.output and " test videos" in result.output
    )  # the split sizes, as train prints them
    suggested = result.output.split(f"featcache predict {out / 'models' / 'lstm'} ")[1].split()[0]
    split_rows = read_split_file(out / "models" / "lstm" / "split.csv")
    assert split_rows[str(Path(suggested).relative_to(out / "videos"))] == "test"  # the predict example is a test video
    for written in (
        "videos",
        "features.h5",
        "models/lstm/model.keras",
        "models/lstm/evaluation/features/report.html",
        "report.txt",
        "report.json",
        "report.html",
    ):
        assert (out / written).exists(), written

    again = runner.invoke(app, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 embedded, 12 already cached" in again.output and "up to date" in again.output


def test_demo_refuses_a_folder_of_other_files(tiny_shipped_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 2
    assert "not empty" in result.output and (out / "videos" / "notes.txt").read_text() == "mine"
