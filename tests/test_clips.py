"""Clips from stored frames (TSN segments): positions, training on random clips, scoring on K uniform clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import write_cache
from typer.testing import CliRunner

from featcache.cli import app
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import FeatcacheError
from featcache.inference.evaluate import evaluate
from featcache.inference.predict import classify_padded
from featcache.training.batches import EpochBatches
from featcache.training.clips import clip_positions, evenly_spaced_offsets, predict_over_clips
from featcache.training.train import train
from featcache.training.training_data import load_training_data


def test_uniform_positions_are_segment_centres_and_short_videos_keep_every_frame() -> None:
    positions, lengths = clip_positions(np.array([40, 8, 3]), 4, "uniform")
    np.testing.assert_array_equal(positions, [[5, 15, 25, 35], [1, 3, 5, 7], [0, 1, 2, 0]])
    np.testing.assert_array_equal(lengths, [4, 4, 3])
    np.testing.assert_array_equal(clip_positions(np.array([40]), 4, "uniform", offset=0.0)[0], [[0, 10, 20, 30]])
    assert evenly_spaced_offsets(1) == [0.5] and evenly_spaced_offsets(4) == [0.125, 0.375, 0.625, 0.875]


def test_random_positions_take_one_frame_of_each_segment_and_cover_it() -> None:
    rng = np.random.default_rng(0)
    lengths = np.array([40, 41, 7, 4])
    seen = np.zeros((4, 41), dtype=bool)
    for _ in range(200):
        positions, clip_lengths = clip_positions(lengths, 4, "random", rng)
        np.testing.assert_array_equal(clip_lengths, 4)
        assert (np.diff(positions, axis=1) > 0).all()  # in order, no frame twice
        bounds = np.arange(5)[None, :] * lengths[:, None] // 4  # segment k: [bounds[k], bounds[k + 1])
        assert ((positions >= bounds[:, :-1]) & (positions < bounds[:, 1:])).all()
        seen[np.arange(4)[:, None], positions] = True
    assert seen[0, :40].all() and seen[2, :7].all()  # every stored frame gets its turn


def test_bad_clip_settings_are_refused() -> None:
    with pytest.raises(FeatcacheError, match="pass --frames T too"):
        TrainConfig(clip_sampling="random")
    with pytest.raises(FeatcacheError, match="--test-clips / test_clips must be at least 1"):
        TrainConfig(frames=4, test_clips=0)
    with pytest.raises(FeatcacheError, match="choose one of uniform, random"):
        TrainConfig(frames=4, clip_sampling="dense")


def test_predict_over_clips_averages_k_offset_clips() -> None:
    features = np.arange(20, dtype=np.float32)[None, :, None]  # one video, feature = stored frame position
    seen = []

    def predict(clips, lengths):
        seen.append(clips[0, :, 0].tolist())
        return np.array([[clips[0, 0, 0], 1.0]])

    probabilities = predict_over_clips(predict, features, np.array([20]), frames=2, num_clips=2)
    assert seen == [[2.0, 12.0], [7.0, 17.0]]  # offsets 0.25 and 0.75 of two 10-frame segments
    np.testing.assert_allclose(probabilities, [[4.5, 1.0]])


@pytest.fixture(scope="module")
def dense_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 videos of up to 30 stored frames x 2 dims; feature 0 is the stored frame's position, feature 1 the class."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 12)
    lengths = rng.integers(10, 31, size=24)
    features = np.zeros((24, 30, 2))
    features[:, :, 0] = np.arange(30)
    features[:, :, 1] = labels[:, None]
    paths = [f"{'AB'[label]}/v_{'AB'[label]}_g{row % 6 + 1:02d}_c{row:02d}.avi" for row, label in enumerate(labels)]
    order = np.argsort(paths)
    return write_cache(
        tmp_path_factory.mktemp("cache") / "dense.h5",
        features[order],
        lengths[order],
        labels[order],
        ["A", "B"],
        paths=[paths[row] for row in order],
        groups=[str(row % 6 + 1) for row in order],
        dtype="float32",
    )


def test_training_batches_take_new_random_clips_every_epoch_validation_uniform(dense_cache: Path) -> None:
    config = TrainConfig(frames=4, clip_sampling="random", batch_size=64)
    data = load_training_data(dense_cache, config)
    rows = data.split.train_indices
    lengths = data.index.lengths[rows]
    batches = EpochBatches(
        dense_cache, data.index, rows, 64, False, 0, frames=4, clip_sampling="random", features=data.train_inputs[0][0]
    )
    epochs = []
    for epoch in range(3):
        (features, clip_lengths), _ = batches.batch(epoch, 0)
        assert features.shape == (len(rows), 4, 2)
        np.testing.assert_array_equal(clip_lengths, 4)
        epochs.append(features[:, :, 0])
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(batches.batch(1, 0)[0][0][:, :, 0], epochs[1])  # any epoch can be read again
    with EpochBatches(dense_cache, data.index, rows, 64, False, 0, frames=4, clip_sampling="uniform") as uniform:
        (first, _), _ = uniform.batch(0, 0)
        (second, _), _ = uniform.batch(1, 0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[:, :, 0], clip_positions(lengths, 4, "uniform")[0])


@pytest.mark.parametrize("memory_budget_mb", [2048, 0], ids=["in-memory", "streamed"])
def test_a_clip_model_trains_evaluates_and_says_so(dense_cache: Path, tmp_path: Path, memory_budget_mb: int) -> None:
    config = TrainConfig(
        epochs=2, frames=4, clip_sampling="random", test_clips=3, memory_budget_mb=memory_budget_mb, test_fraction=0.34
    )
    result = train(dense_cache, tmp_path / "model", HeadConfig(head="meanpool", dense=4), config)
    assert result.model.inputs[0].shape[1] == 4  # the head sees 4-frame clips, not the 30 stored frames
    metadata = json.loads((tmp_path / "model" / "featcache.json").read_text())
    assert (
        metadata["num_frames"] == 4 and metadata["training"]["frames"] == 4 and metadata["training"]["test_clips"] == 3
    )
    report = evaluate(tmp_path / "model", dense_cache)  # a 30-frame cache for a 4-frame head: clips, not a mismatch
    assert report.num_videos == result.split.num_test and 0.0 <= report.accuracy <= 1.0


def test_predict_feeds_a_clip_model_its_test_clips() -> None:
    inputs = []

    class RecordingModel:
        def predict_on_batch(self, batch):
            features, lengths = batch
            inputs.append((features[:, :, 0].tolist(), lengths.tolist()))
            return np.full((len(features), 2), 0.5)

    videos = [(0, np.arange(12, dtype=np.float32)[:, None]), (1, np.arange(3, dtype=np.float32)[:, None])]
    outcomes = classify_padded(RecordingModel(), videos, num_frames=4, clip_frames=4, test_clips=2)
    assert inputs == [([[0, 3, 6, 9], [0, 1, 2, 0]], [4, 3]), ([[2, 5, 8, 11], [0, 1, 2, 0]], [4, 3])]
    np.testing.assert_allclose(outcomes[0], [0.5, 0.5])


def test_train_command_with_clips(dense_cache: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(dense_cache),
            "--out",
            str(tmp_path / "m"),
            "--head",
            "tcn",
            "--units",
            "4",
            "--dense",
            "4",
            "--epochs",
            "1",
            "--frames",
            "6",
            "--clip-sampling",
            "random",
            "--test-clips",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "clips: 6 of each video's stored frames, random positions for training" in result.output
    result = CliRunner().invoke(app, ["train", str(dense_cache), "--out", str(tmp_path / "m2"), "--test-clips", "3"])
    assert result.exit_code == 2 and "pass --frames T too" in result.output
