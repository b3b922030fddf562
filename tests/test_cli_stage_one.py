"""`featcache embed`, `info`, `extractors`, `demo-data` through typer's CliRunner: exit codes and output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_embed_with_bad_videos_exits_1_and_names_them(
    dataset_with_bad_files: Path, tmp_path: Path, fake_extractor: list
) -> None:
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
        (
            ["--frames", "0"],
            "--frames / num_frames must be in [1, 100000] (or 0 with --sampling fps: every sampled frame), got 0",
        ),
        (["--sampling", "fps"], '--sampling fps (mode "fps") needs --fps'),
        (["--dtype", "int8"], "Invalid value for '--dtype'"),
        (
            ["--frames", "100000000"],
            "--frames / num_frames must be in [1, 100000] (or 0 with --sampling fps: every sampled frame), "
            "got 100000000",
        ),
        (["--sampling", "fps", "--fps", "nan"], "--fps / fps must be in (0, 1000] frames per second, got nan"),
        (["--sampling", "fps", "--fps", "inf"], "--fps / fps must be in (0, 1000] frames per second, got inf"),
        (["--sampling", "fps", "--fps", "-2"], "--fps / fps must be in (0, 1000]"),
        (["--image-size", "0"], "--image-size / image_size must be in [8, 4096] pixels, got 0"),
        (["--image-size", "100000"], "--image-size / image_size must be in [8, 4096] pixels"),
        (["--batch-size", "-1"], "--batch-size / batch_size must be in [1, 65536], got -1"),
        (
            ["--workers", "-1"],
            "--workers / num_decode_workers must be in [0, 256] (0: one per usable CPU core), got -1",
        ),
        (["--workers", "100000"], "--workers / num_decode_workers must be in [0, 256]"),
        (["--frames", "100000", "--image-size", "4096"], "GiB of memory is available; lower --frames"),
        (["--weights", "no/such/file.weights.h5"], "no/such/file.weights.h5"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(
    tiny_dataset: Path, tmp_path: Path, arguments: list, message: str
) -> None:
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
    result = run(
        "embed",
        tiny_dataset,
        "--out",
        tmp_path / "cache.h5",
        "--weights",
        weights_path,
        "--image-size",
        "32",
        "--frames",
        "2",
    )
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


def test_relative_weights_path_is_stored_absolute(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache (and a model trained on it) must still name the weights file when used from another folder."""
    from featcache.config import ExtractorConfig

    monkeypatch.chdir(tmp_path)
    assert ExtractorConfig(name="scratch_cnn", weights="w.weights.h5").weights == str(tmp_path / "w.weights.h5")


def test_rerun_without_settings_reuses_the_caches_own(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    cache_path = tmp_path / "cache.h5"
    assert (
        run(
            "embed",
            tiny_dataset,
            "--out",
            cache_path,
            "--weights",
            "random",
            "--image-size",
            "32",
            "--frames",
            "4",
            "--dtype",
            "float32",
        ).exit_code
        == 0
    )
    again = run("embed", tiny_dataset, "--out", cache_path)  # no settings: the cache's own, not the defaults
    assert again.exit_code == 0, again.output
    assert (
        "embedding with its settings (mobilenet_v2, random weights (seed 0), 32 px, 4 frames uniform, float32)"
        in again.output
    )
    assert "0 embedded, 6 already cached" in again.output
    same = run("embed", tiny_dataset, "--out", cache_path, "--frames", "4")  # given and equal: fine
    assert same.exit_code == 0, same.output


def test_rerun_with_other_settings_names_both_values(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    cache_path = tmp_path / "cache.h5"
    assert run("embed", tiny_dataset, "--out", cache_path, *SMALL).exit_code == 0
    refused = run("embed", tiny_dataset, "--out", cache_path, "--frames", "8", "--dtype", "float32")
    assert refused.exit_code == 2
    assert "has --frames 4, you asked 8; --dtype float16, you asked float32" in refused.output
    assert refused.output.index("another --out") < refused.output.index("--overwrite")
    replaced = run("embed", tiny_dataset, "--out", cache_path, *SMALL[:4], "--frames", "8", "--overwrite")
    assert replaced.exit_code == 0 and "6 embedded" in replaced.output


def test_info_on_a_folder_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.h5").write_text("not HDF5")
    for target, message in ((tmp_path, "is a folder"), (tmp_path / "notes.h5", "not an HDF5 file")):
        result = run("info", target)
        assert result.exit_code == 2 and message in result.output
        assert len(result.output.strip().splitlines()) == 1 and "errno" not in result.output
    verbose = run("info", tmp_path / "notes.h5", "--verbose")
    assert "caused by OSError" in verbose.output  # the HDF5 message, for a bug report


def test_quiet_and_verbose_together_are_refused(tmp_path: Path) -> None:
    result = run("info", tmp_path, "--quiet", "--verbose")
    assert result.exit_code == 2 and "contradict" in result.output


def test_progress_lines_in_logs_and_none_with_quiet(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch
) -> None:
    """Output to a file or pipe (CliRunner's is not a terminal) gets plain progress lines; --quiet gets none."""
    from featcache.cli import output

    monkeypatch.setattr(output, "PROGRESS_SECONDS", 0.0)  # a line per video instead of every 10 s
    logged = run("embed", tiny_dataset, "--out", tmp_path / "a.h5", *SMALL)
    assert logged.exit_code == 0, logged.output
    lines = [line for line in logged.stderr.splitlines() if line.startswith("embedding: ")]
    assert (
        len(lines) == 6
        and lines[-1].startswith("embedding: 6/6 videos")
        and "videos/s" in lines[-1]
        and "0 failed" in lines[-1]
    )
    quiet = run("embed", tiny_dataset, "--out", tmp_path / "b.h5", *SMALL, "--quiet")
    assert quiet.exit_code == 0 and "embedding: " not in quiet.output
    assert "6 embedded" in quiet.stdout  # the result is still printed


def test_weights_fetch_writes_a_file_embed_loads(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    """`weights fetch` copies Keras' ImageNet download into a file that `embed --weights FILE` then uses offline."""
    import keras

    # Stands in for Keras' download (no network here): a MobileNetV2 no-top weights file at 32 px.
    downloaded = tmp_path / "keras_cache" / "mobilenet_v2_no_top.weights.h5"
    downloaded.parent.mkdir()
    keras.applications.MobileNetV2(
        include_top=False, pooling="avg", input_shape=(32, 32, 3), weights=None
    ).save_weights(downloaded)
    monkeypatch.setattr(keras.utils, "get_file", lambda file_name, origin, cache_subdir: str(downloaded))
    out = tmp_path / "mobilenet_v2.weights.h5"
    fetched = run("weights", "fetch", "mobilenet_v2", "--out", out, "--image-size", "32")
    assert fetched.exit_code == 0, fetched.output
    assert f"--weights {out}" in fetched.output
    from featcache.config import ExtractorConfig
    from featcache.extractors.registry import build_imagenet_backbone, build_model, load_extractor

    from_file = build_model(ExtractorConfig(name="mobilenet_v2", weights=str(out), image_size=32)).weights_backbone
    from_download = build_imagenet_backbone("mobilenet_v2", image_size=32)
    for loaded, expected in zip(from_file.get_weights(), from_download.get_weights()):
        np.testing.assert_array_equal(loaded, expected)  # the file holds the downloaded weights, all of them
    assert load_extractor(ExtractorConfig(name="mobilenet_v2", weights=str(out), image_size=32)).feature_dim == 1280


def test_weights_fetch_offline_and_for_extractors_without_imagenet_weights(tmp_path: Path, monkeypatch) -> None:
    import keras

    def no_network(file_name: str, origin: str, cache_subdir: str) -> str:
        raise Exception(f"URL fetch failure on {origin}: Name or service not known")  # what keras.utils.get_file raises

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    offline = run("weights", "fetch", "mobilenet_v2", "--out", tmp_path / "w.weights.h5")
    assert (
        offline.exit_code == 2 and "could not download" in offline.output and not (tmp_path / "w.weights.h5").exists()
    )
    scratch = run("weights", "fetch", "scratch_cnn", "--out", tmp_path / "s.weights.h5")
    assert scratch.exit_code == 2 and "no ImageNet weights to fetch" in scratch.output
