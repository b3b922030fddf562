"""predict: new videos embedded with the model's stored extractor and sampling, per-video errors, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_video
from test_evaluate import (
    first_frame_softmax_model,
    write_model_folder,
    write_test_cache,
)
from typer.testing import CliRunner

import featcache.embedding.new_videos as new_videos_module
import featcache.inference.predict as predict_module
from featcache.cache import read_all_features, read_cache_index
from featcache.cli import app
from featcache.config import ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.batching import decode_videos
from featcache.errors import CacheMismatchError, InputError, ModelDirError
from featcache.extractors.extractor import Extractor
from featcache.extractors.registry import load_extractor
from featcache.inference.predict import predict_videos
from featcache.training.model_folder import ModelFolder
from featcache.training.train import train
from featcache.video.decode import read_sampled_frames

COLOUR_CLASSES = ["Red", "Green", "Blue"]
# What the fake extractor's model was "trained" with; fps sampling and extra provenance keys on purpose,
# so a predict that used defaults or passed the whole dict to ExtractorConfig would be caught.
STORED_EXTRACTOR = {
    "name": "scratch_cnn",
    "weights": "/models/colour.weights.h5",
    "handle": None,
    "image_size": 16,
    "seed": 5,
    "weights_sha256": "c0ffee",
    "preprocessing": "x / 255",
    "feature_dim": 3,
    "keras_version": "3",
    "backend": "tensorflow",
}
STORED_SAMPLING = {"num_frames": 4, "mode": "fps", "fps": 5.0}


def solid_colour_video(path: Path, channel: int, num_frames: int = 8) -> Path:
    frames = np.zeros((num_frames, 32, 32, 3), dtype=np.uint8)
    frames[..., channel] = 255
    return write_video(path, frames)


@pytest.fixture
def colour_videos(tmp_path: Path) -> list[Path]:
    """A red, a green and a blue 8-frame 32x32 video at 10 fps."""
    return [
        solid_colour_video(tmp_path / f"{name.lower()}.avi", channel) for channel, name in enumerate(COLOUR_CLASSES)
    ]


@pytest.fixture
def unreadable_videos(tmp_path: Path) -> list[Path]:
    """A text file named .avi and a path that does not exist."""
    not_a_video = tmp_path / "notes.avi"
    not_a_video.write_text("not a video")
    return [not_a_video, tmp_path / "missing.avi"]


@pytest.fixture
def colour_model(tmp_path: Path) -> Path:
    """A model over the first frame's mean RGB (scaled to [0, 1], x10): red -> Red, green -> Green, blue -> Blue."""
    model = first_frame_softmax_model(4, 3, 3, kernel=10 * np.eye(3))
    return write_model_folder(
        tmp_path / "colour_model",
        COLOUR_CLASSES,
        {"x.avi": "test"},
        model=model,
        extractor=STORED_EXTRACTOR,
        sampling=STORED_SAMPLING,
        num_frames=4,
        feature_dim=3,
    )


@pytest.fixture
def fake_extractor(monkeypatch) -> list[ExtractorConfig]:
    """Replace load_extractor by a mean-RGB extractor; returns the list of configs it was called with."""
    calls: list[ExtractorConfig] = []

    def load_mean_rgb_extractor(config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        calls.append(config)

        def embed_frames(frames: np.ndarray) -> np.ndarray:
            assert frames.dtype == np.uint8 and frames.shape[1:] == (config.image_size, config.image_size, 3)
            return frames.mean(axis=(1, 2)).astype(np.float32) / 255.0

        return Extractor("mean_rgb", config.image_size, 3, embed_frames, {"weights_sha256": "c0ffee"})

    monkeypatch.setattr(predict_module, "start_extractor", load_mean_rgb_extractor)
    return calls


def test_predict_uses_the_stored_extractor_and_sampling(
    monkeypatch, colour_model: Path, colour_videos: list[Path], fake_extractor
) -> None:
    samplings = []

    def recording_decode_videos(entries, sampling, image_size, num_workers, decoder):
        # Decoding runs in worker processes: record what they are asked for, once per video.
        samplings.extend([(sampling, image_size, decoder)] * len(entries))
        return decode_videos(entries, sampling, image_size, num_workers, decoder)

    monkeypatch.setattr(new_videos_module, "decode_videos", recording_decode_videos)

    predictions = predict_videos(colour_model, colour_videos, top_k=2)
    sequential = predict_videos(colour_model, colour_videos, top_k=2, decoder="sequential")

    assert (
        fake_extractor
        == [
            ExtractorConfig(name="scratch_cnn", weights="/models/colour.weights.h5", handle=None, image_size=16, seed=5)
        ]
        * 2
    )
    stored_sampling = SamplingConfig(num_frames=4, mode="fps", fps=5.0)
    assert samplings == [(stored_sampling, 16, "auto")] * 3 + [(stored_sampling, 16, "sequential")] * 3
    assert [prediction.top_k[0][0] for prediction in predictions] == COLOUR_CLASSES
    assert sequential == predictions  # the same frames whichever decodes them
    assert all(len(prediction.top_k) == 2 and prediction.error is None for prediction in predictions)
    for prediction in predictions:
        probabilities = [probability for _, probability in prediction.top_k]
        assert probabilities == sorted(probabilities, reverse=True)
        assert probabilities[0] > 0.9


def test_predict_reads_featcache_json_once(
    monkeypatch, colour_model: Path, colour_videos: list[Path], fake_extractor
) -> None:
    reads: list[Path] = []
    original_read_text = Path.read_text

    def counting_read_text(self: Path, *args, **kwargs) -> str:
        if self.name == "featcache.json":
            reads.append(self)
        return original_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting_read_text)
    predictions = predict_videos(colour_model, colour_videos)
    assert [prediction.top_k[0][0] for prediction in predictions] == COLOUR_CLASSES
    assert reads == [colour_model / "featcache.json"]


def test_changed_weights_file_is_refused(monkeypatch, colour_model: Path, colour_videos: list[Path]) -> None:
    changed = Extractor(
        "scratch_cnn", 16, 3, lambda frames: np.zeros((len(frames), 3), np.float32), {"weights_sha256": "0ther"}
    )
    monkeypatch.setattr(predict_module, "start_extractor", lambda config, runtime="keras": changed)
    with pytest.raises(CacheMismatchError, match="sha256 0ther\\) differs from the one used.*sha256 c0ffee"):
        predict_videos(colour_model, colour_videos)


def test_unreadable_videos_get_an_error_and_the_others_are_predicted(
    colour_model: Path, colour_videos: list[Path], unreadable_videos: list[Path], fake_extractor
) -> None:
    paths = [colour_videos[0], *unreadable_videos, colour_videos[2]]
    predictions = predict_videos(colour_model, paths)

    assert [prediction.path for prediction in predictions] == [str(path) for path in paths]
    assert [prediction.top_k[0][0] for prediction in (predictions[0], predictions[3])] == ["Red", "Blue"]
    assert "cannot be opened as a video" in predictions[1].error
    assert "file not found" in predictions[2].error
    assert predictions[1].top_k == [] and predictions[2].top_k == []


def test_top_k_beyond_the_classes_is_clamped(colour_model: Path, colour_videos: list[Path], fake_extractor) -> None:
    predictions = predict_videos(colour_model, colour_videos, top_k=4)
    assert all(len(prediction.top_k) == 3 for prediction in predictions)
    with pytest.raises(InputError, match="--top-k / top_k must be at least 1, got 0"):
        predict_videos(colour_model, colour_videos, top_k=0)


def test_folders_and_csv_lists_are_expanded(
    tmp_path: Path, colour_model: Path, colour_videos: list[Path], fake_extractor
) -> None:
    folder = colour_videos[0].parent
    listed = tmp_path / "list.csv"
    listed.write_text(
        "path,label\n"
        + "".join(
            f"{path.relative_to(tmp_path)},{name}\n" for path, name in zip(colour_videos, ["Red", "Green", "Blue"])
        )
    )
    from_folder = predict_videos(colour_model, [folder])
    assert sorted(prediction.path for prediction in from_folder) == sorted(str(path) for path in folder.rglob("*.avi"))
    from_csv = predict_videos(colour_model, [listed])
    assert [(Path(prediction.path).name, prediction.true_label) for prediction in from_csv] == sorted(
        [(path.name, name) for path, name in zip(colour_videos, ["Red", "Green", "Blue"])]
    )
    assert all(prediction.top_k[0][0] == prediction.true_label for prediction in from_csv)


def test_cli_writes_predictions_csv(
    tmp_path: Path, colour_model: Path, colour_videos: list[Path], unreadable_videos: list[Path], fake_extractor
) -> None:
    out = tmp_path / "predictions.csv"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(colour_model),
            str(colour_videos[2]),
            str(unreadable_videos[0]),
            "--out",
            str(out),
            "--top-k",
            "2",
        ],
    )
    assert result.exit_code == 1
    assert f"Error: {unreadable_videos[0]}" in result.stderr and "ERROR" not in result.output
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["path"] for row in rows] == [str(colour_videos[2]), str(unreadable_videos[0])]
    assert (
        rows[0]["predicted"] == "Blue"
        and float(rows[0]["probability"]) > 0.5
        and rows[0]["class_2"]
        and rows[0]["error"] == ""
    )
    assert rows[1]["predicted"] == "" and "cannot be opened" in rows[1]["error"]


def test_missing_or_foreign_model_folder(tmp_path: Path, colour_videos: list[Path]) -> None:
    with pytest.raises(ModelDirError, match="no such model folder"):
        predict_videos(tmp_path / "nowhere", colour_videos)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "featcache.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ModelDirError, match="format 99"):
        predict_videos(foreign, colour_videos)


def test_end_to_end_with_a_trained_model_matches_the_cached_features(tmp_path: Path, tiny_dataset: Path) -> None:
    """Embed tiny_dataset into a cache, train on it, then predict its videos from the files: same probabilities."""
    extractor_config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=32, seed=0)
    sampling = SamplingConfig(num_frames=4)
    extractor = load_extractor(extractor_config)
    video_paths = sorted(tiny_dataset.rglob("*.avi"))
    features = np.zeros((len(video_paths), 4, extractor.feature_dim), dtype=np.float32)
    for row, path in enumerate(video_paths):
        frames = read_sampled_frames(path, sampling, 32).frames
        features[row, : len(frames)] = extractor.embed_frames(frames)
    cache = write_test_cache(
        tmp_path / "tiny.h5",
        features,
        [path.parent.name for path in video_paths],
        ["Alpha", "Beta"],
        paths=[str(path.relative_to(tiny_dataset)) for path in video_paths],
        extractor=extractor.provenance,
        sampling={"num_frames": 4, "mode": "uniform", "fps": None},
    )
    # Too few videos to hold out a stratified validation set as well: keep the (only) last epoch.
    train(
        cache,
        tmp_path / "model",
        HeadConfig(head="lstm", units=8, dense=8),
        TrainConfig(epochs=1, batch_size=4, val_fraction=0),
    )

    predictions = predict_videos(tmp_path / "model", video_paths, top_k=2)

    index = read_cache_index(cache)
    expected = (
        ModelFolder.open(tmp_path / "model").load_model().predict_on_batch([read_all_features(cache), index.lengths])
    )
    for prediction, probabilities in zip(predictions, np.asarray(expected)):
        assert prediction.error is None
        got = dict(prediction.top_k)
        np.testing.assert_allclose([got["Alpha"], got["Beta"]], probabilities, rtol=1e-4, atol=1e-6)


def test_cli_json_and_exit_code_1_when_a_video_failed(
    colour_model: Path, colour_videos: list[Path], unreadable_videos: list[Path], fake_extractor
) -> None:
    arguments = [
        "predict",
        str(colour_model),
        str(colour_videos[1]),
        str(unreadable_videos[0]),
        "--json",
        "--top-k",
        "1",
    ]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1, result.output
    printed = json.loads(result.stdout)
    good, bad = printed["predictions"]
    assert good["top_k"][0]["class_name"] == "Green" and good["error"] is None and len(good["top_k"]) == 1
    assert bad["path"] == str(unreadable_videos[0]) and "cannot be opened" in bad["error"]
    assert "1 of 2 videos could not be read" in result.stderr


def test_cli_human_output(colour_model: Path, colour_videos: list[Path], fake_extractor) -> None:
    result = CliRunner().invoke(app, ["predict", str(colour_model), *map(str, colour_videos)])
    assert result.exit_code == 0, result.output
    assert f"{colour_videos[2]}:" in result.stdout
    assert "Blue" in result.stdout


def test_cli_missing_model_folder_exits_2(tmp_path: Path, colour_videos: list[Path]) -> None:
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nowhere"), str(colour_videos[0])])
    assert result.exit_code == 2
    assert "no such model folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("cache_dtype", ["float16", "float32"])
def test_new_features_are_rounded_like_the_training_cache(
    monkeypatch, colour_model: Path, colour_videos: list[Path], cache_dtype: str
) -> None:
    """The head saw features stored as the cache dtype; predict rounds new ones the same way."""
    feature = np.float32(1 / 3)  # not a float16 number: rounding shows in the probabilities
    metadata_path = colour_model / "featcache.json"
    metadata = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps({**metadata, "cache_dtype": cache_dtype}))
    constant = Extractor(
        "scratch_cnn",
        16,
        3,
        lambda frames: np.full((len(frames), 3), [feature, 0, 0], np.float32),
        {"weights_sha256": "c0ffee"},
    )
    monkeypatch.setattr(predict_module, "start_extractor", lambda config, runtime="keras": constant)

    (prediction,) = predict_videos(colour_model, colour_videos[:1], top_k=3)

    seen = np.float32(np.float16(feature)) if cache_dtype == "float16" else feature
    logits = 10 * np.array([seen, 0, 0], dtype=np.float64)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(dict(prediction.top_k)["Red"], expected[0], rtol=1e-6)
