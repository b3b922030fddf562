"""`featcache embed`, `info`, `extractors`, `demo-data` through typer's CliRunner: exit codes and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featcache.cli import app

RUNNER = CliRunner()
SMALL = ["--weights", "random", "--image-size", "32", "--frames", "4"]


def run(*arguments: str):
    return RUNNER.invoke(app, [str(argument) for argument in arguments])


def test_embed_then_info(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    cache_path = tmp_path / "cache.h5"
    result = run("embed", tiny_dataset, "--out", cache_path, *SMALL)
    assert result.exit_code == 0, result.output
    assert "6 embedded, 0 already cached, 0 failed of 6 videos" in result.output
    again = run("embed", tiny_dataset, "--out", cache_path, *SMALL)
    assert again.exit_code == 0 and "0 embedded, 6 already cached" in again.output

    info = run("info", cache_path)
    assert info.exit_code == 0
    assert "6 videos, 2 classes, 4 frames x 3 dims, float16" in info.output
    assert "Alpha: 3" in info.output and "Beta: 3" in info.output
    described = json.loads(run("info", cache_path, "--json").output)
    assert described["videos_per_class"] == {"Alpha": 3, "Beta": 3}
    assert described["extractor"]["name"] == "mobilenet_v2" and described["failures"] == []
    shard_bytes = sum(path.stat().st_size for path in Path(f"{cache_path}.shards").iterdir())
    assert described["size_bytes"] == cache_path.stat().st_size + shard_bytes and described["format_version"] == 2


def test_embed_with_bad_videos_exits_1_and_names_them(dataset_with_bad_files: Path, tmp_path: Path, fake_extractor: list) -> None:
    result = run("embed", dataset_with_bad_files, "--out", tmp_path / "cache.h5", *SMALL)
    assert result.exit_code == 1
    assert "6 embedded" in result.output and "3 failed" in result.output
    assert "Alpha/v_Alpha_g09_c02.avi: empty file" in result.output
    info = run("info", tmp_path / "cache.h5")
    assert "failures (3):" in info.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--extractor", "resnet"], "unknown extractor 'resnet'; choose one of mobilenet_v2, scratch_cnn, tfhub"),
        (["--frames", "0"], "--frames must be in [1, 100000] (or 0 with --sampling fps: every sampled frame), got 0"),
        (["--sampling", "fps"], "--sampling fps needs --fps"),
        (["--dtype", "int8"], "unknown --dtype"),
        (["--frames", "100000000"], "--frames must be in [1, 100000] (or 0 with --sampling fps: every sampled frame), got 100000000"),
        (["--sampling", "fps", "--fps", "nan"], "--fps must be in (0, 1000] frames per second, got nan"),
        (["--sampling", "fps", "--fps", "inf"], "--fps must be in (0, 1000] frames per second, got inf"),
        (["--sampling", "fps", "--fps", "-2"], "--fps must be in (0, 1000]"),
        (["--image-size", "0"], "--image-size must be in [8, 4096] pixels, got 0"),
        (["--image-size", "100000"], "--image-size must be in [8, 4096] pixels"),
        (["--batch-size", "-1"], "--batch-size must be in [1, 65536], got -1"),
        (["--workers", "-1"], "--workers must be in [0, 256] (0: one per CPU core), got -1"),
        (["--workers", "100000"], "--workers must be in [0, 256]"),
        (["--frames", "100000", "--image-size", "4096"], "GiB of memory is available; lower --frames"),
        (["--weights", "no/such/file.weights.h5"], "no/such/file.weights.h5"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tiny_dataset: Path, tmp_path: Path, arguments: list, message: str) -> None:
    result = run("embed", tiny_dataset, "--out", tmp_path / "cache.h5", "--image-size", "32", *arguments)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache.h5").exists()


def test_weights_file_that_does_not_fit_exits_2(tiny_dataset: Path, tmp_path: Path) -> None:
    import keras

    small_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    weights_path = tmp_path / "other.weights.h5"
    small_model.save_weights(weights_path)
    result = run("embed", tiny_dataset, "--out", tmp_path / "cache.h5", "--weights", weights_path, "--image-size", "32", "--frames", "2")
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("layout", ["missing", "empty", "no class folders"])
def test_bad_video_root_exits_2(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "videos"
    if layout != "missing":
        root.mkdir()
    if layout == "no class folders":
        (root / "loose.avi").write_bytes(b"")
    result = run("embed", root, "--out", tmp_path / "cache.h5", *SMALL)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1


def test_info_on_a_foreign_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes.h5").write_text("hello")
    result = run("info", tmp_path / "notes.h5")
    assert result.exit_code == 2 and "not an HDF5 file" in result.output


def test_extractors_lists_dims() -> None:
    result = run("extractors")
    assert result.exit_code == 0
    assert "1280" in result.output and "25088" in result.output and "tfhub" in result.output


def test_demo_data_writes_a_ucf_layout(tmp_path: Path) -> None:
    result = run("demo-data", tmp_path / "demo", "--videos-per-class", "2")
    assert result.exit_code == 0, result.output
    videos = sorted(path.relative_to(tmp_path / "demo").as_posix() for path in (tmp_path / "demo").rglob("*.avi"))
    assert len(videos) == 6 and all(video.split("/")[1].startswith("v_") for video in videos)


def test_unwritable_out_exits_2_with_one_line(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = run("embed", tiny_dataset, "--out", tmp_path / "a-file" / "cache.h5", *SMALL)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "a-file" in result.output and "Traceback" not in result.output
    assert fake_extractor == []  # refused before loading the model


def test_relative_weights_path_is_stored_absolute(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache (and a model trained on it) must still name the weights file when used from another folder."""
    from featcache.config import ExtractorConfig

    monkeypatch.chdir(tmp_path)
    assert ExtractorConfig(name="scratch_cnn", weights="w.weights.h5").weights == str(tmp_path / "w.weights.h5")
