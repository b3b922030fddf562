"""featcache.dataset: the same subsets as train, every format, clips, streaming one batch at a time."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache, write_cache

import featcache
from featcache.cache import CacheReader, FeatureReader, read_cache_index
from featcache.cache.maintenance import upgrade_cache
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import FeatcacheError
from featcache.training.splits import choose_split
from featcache.training.train import train, training_batches
from featcache.training.training_data import load_training_data


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 groups x 2 clips, 6 frames x 8 dims."""
    return ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "small.h5", num_classes=3, num_groups=10, clips_per_group=2
    )


@pytest.fixture(scope="module", params=[1, 2], ids=["format1", "format2"])
def cache_of_numbered_frames(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 videos of 20 stored frames with lengths 3..20; feature [row, frame] = 100 * row + frame (a readable position).
    As written (format 1, padded) and upgraded to format 2 (variable-length shards)."""
    lengths = np.array([3, 5, 8, 12, 20, 20])
    features = (100 * np.arange(6)[:, None, None] + np.arange(20)[None, :, None]) * np.ones((1, 1, 2))
    labels = np.array([0, 0, 0, 1, 1, 1])  # paths A/..c000 .. B/..c005: already in sorted order, as format 2 keeps rows
    cache = write_cache(
        tmp_path_factory.mktemp("cache") / "numbered.h5", features, lengths, labels, ["A", "B"], dtype="float32"
    )
    if request.param == 2:
        upgrade_cache(cache)
    return cache


def _collect(batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = list(batches)
    features = np.concatenate([np.asarray(features) for (features, _), _ in parts])
    lengths = np.concatenate([np.asarray(lengths) for (_, lengths), _ in parts])
    labels = np.concatenate([np.asarray(labels) for _, labels in parts])
    return features, lengths, labels


def test_subsets_are_trains_split(cache: Path) -> None:
    index = read_cache_index(cache)
    split = choose_split(index, TrainConfig(seed=3))
    with FeatureReader(cache) as reader:
        for subset, rows in (("train", split.train_indices), ("val", split.val_indices), ("test", split.test_indices)):
            batches = featcache.dataset(cache, subset, split=TrainConfig(seed=3), batch_size=7, shuffle=False)
            features, lengths, labels = _collect(batches)
            assert len(batches) == -(-len(rows) // 7)
            np.testing.assert_array_equal(labels, index.labels[rows])
            np.testing.assert_array_equal(lengths, index.lengths[rows])
            np.testing.assert_allclose(features, reader.read(rows))
    assert len(_collect(featcache.dataset(cache, None))[2]) == index.num_videos == 60


def test_a_model_folder_gives_back_its_split(cache: Path, tmp_path: Path) -> None:
    result = train(
        cache,
        tmp_path / "model",
        HeadConfig(head="meanpool", dense=4),
        TrainConfig(epochs=1, seed=5, test_fraction=0.3),
    )
    index = read_cache_index(cache)
    for subset, rows in (("train", result.split.train_indices), ("test", result.split.test_indices)):
        labels = _collect(featcache.dataset(cache, subset, split=tmp_path / "model", shuffle=False))[2]
        np.testing.assert_array_equal(labels, index.labels[rows])
    # The model's split.csv as a split file names the same videos.
    test_labels = _collect(featcache.dataset(cache, "test", split=tmp_path / "model" / "split.csv", shuffle=False))[2]
    np.testing.assert_array_equal(test_labels, index.labels[result.split.test_indices])


def test_training_batches_are_reshuffled_every_epoch(cache: Path) -> None:
    batches = featcache.dataset(cache, "train", batch_size=64)
    first, second = _collect(batches), _collect(batches)
    assert not np.array_equal(first[0], second[0])  # another order...
    np.testing.assert_allclose(np.sort(first[0], axis=0), np.sort(second[0], axis=0))  # ...of the same videos
    again = featcache.dataset(cache, "train", batch_size=64)
    np.testing.assert_allclose(_collect(again)[0], first[0])  # the same seed, the same first epoch


def test_batches_stream_one_batch_at_a_time(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_sizes: list[int] = []
    original_read = CacheReader.read
    monkeypatch.setattr(
        CacheReader,
        "read",
        lambda self, rows, num_frames=None: read_sizes.append(len(rows)) or original_read(self, rows, num_frames),
    )
    batches = featcache.dataset(cache, None, batch_size=8)
    assert read_sizes == []  # nothing read before iterating
    iterator = iter(batches)
    next(iterator)
    assert read_sizes == [8]
    list(iterator)
    assert max(read_sizes) == 8 and sum(read_sizes) == 60


def test_uniform_clips_take_each_segments_centre(cache_of_numbered_frames: Path) -> None:
    features, lengths, _ = _collect(featcache.dataset(cache_of_numbered_frames, None, frames=4, shuffle=False))
    positions = features[:, :, 0] - 100 * np.arange(6)[:, None]
    np.testing.assert_array_equal(lengths, [3, 4, 4, 4, 4, 4])
    # length 3 < 4 frames: all 3, then padding (zeros, so position = -100 * row); 8 frames: segments of 2, centre 1.
    np.testing.assert_array_equal(positions[0], [0, 1, 2, -0])
    np.testing.assert_array_equal(positions[2], [1, 3, 5, 7])
    np.testing.assert_array_equal(positions[4], [2, 7, 12, 17])


def test_random_clips_change_every_epoch_within_their_segments(cache_of_numbered_frames: Path) -> None:
    batches = featcache.dataset(cache_of_numbered_frames, None, frames=4, clip_sampling="random", shuffle=False)
    epochs = [_collect(batches)[0][4:, :, 0] - 100 * np.arange(4, 6)[:, None] for _ in range(5)]  # the 20-frame videos
    for positions in epochs:
        assert (
            (positions >= np.arange(4) * 5) & (positions < (np.arange(4) + 1) * 5)
        ).all()  # one frame per 5-frame segment
    assert len({positions.tobytes() for positions in epochs}) == 5


@pytest.mark.parametrize("memory_budget_mb", [2048, 0], ids=["train-in-memory", "train-streamed"])
def test_train_and_dataset_give_the_same_batches_for_the_same_seed(
    cache_of_numbered_frames: Path, memory_budget_mb: int
) -> None:
    config = TrainConfig(
        frames=4,
        clip_sampling="random",
        batch_size=2,
        seed=7,
        val_fraction=0,
        test_fraction=0.34,
        memory_budget_mb=memory_budget_mb,
    )
    data = load_training_data(cache_of_numbered_frames, config)
    (fed,) = training_batches(data, config)  # what `fit` reads (no validation side here)
    ours = featcache.dataset(
        cache_of_numbered_frames, "train", split=config, batch_size=2, seed=7, frames=4, clip_sampling="random"
    )
    for _ in range(3):  # each epoch: a new order and new clips, the same on both sides
        epoch = list(ours)
        assert len(epoch) == len(fed) == 2
        for batch_number, ((features, lengths), labels) in enumerate(epoch):
            (fed_features, fed_lengths), fed_labels = fed[batch_number]
            np.testing.assert_array_equal(features, fed_features)
            np.testing.assert_array_equal(lengths, fed_lengths)
            np.testing.assert_array_equal(labels, fed_labels)
        fed.on_epoch_end()
    fed.close()


def test_a_shuffled_batch_is_in_the_epochs_order(cache_of_numbered_frames: Path) -> None:
    """Read in cache order (one pass through the file), returned in the epoch's order:
    shuffling reaches inside a batch."""
    batches = featcache.dataset(cache_of_numbered_frames, None, batch_size=6, seed=1, shuffle=True)
    (features, _), labels = next(iter(batches))
    order = np.random.default_rng([1, 0]).permutation(6)
    np.testing.assert_array_equal(features[:, 0, 0], 100 * order)  # feature [row, frame 0] = 100 * row
    np.testing.assert_array_equal(labels, read_cache_index(cache_of_numbered_frames).labels[order])


def test_tf_dataset_trains_a_head(cache: Path) -> None:
    import tensorflow as tf

    from featcache.training.heads import build_head, compile_head

    train_set = featcache.dataset(cache, "train", batch_size=16, format="tf")
    val_set = featcache.dataset(cache, "val", batch_size=16, format="tf")
    assert isinstance(train_set, tf.data.Dataset)
    assert train_set.element_spec[0][0].shape.as_list() == [None, 6, 8] and train_set.element_spec[1].dtype == tf.int32
    model = compile_head(build_head(HeadConfig(head="meanpool", dense=8), 6, 8, 3), 1e-2)
    history = model.fit(train_set, validation_data=val_set, epochs=2, verbose=0)
    assert len(history.history["val_accuracy"]) == 2
    labels = np.concatenate([labels.numpy() for _, labels in val_set])
    np.testing.assert_array_equal(labels, _collect(featcache.dataset(cache, "val"))[2])


def test_torch_dataset_in_a_dataloader_with_workers(cache: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    videos = featcache.dataset(cache, "train", format="torch")
    assert isinstance(videos, torch.utils.data.Dataset) and videos.class_names == ["ActionA", "ActionB", "ActionC"]
    index = read_cache_index(cache)
    rows = choose_split(index, TrainConfig()).train_indices
    loader = DataLoader(videos, batch_size=8, shuffle=False, num_workers=2)
    features, lengths, labels = (torch.cat(parts) for parts in zip(*loader))
    assert features.dtype == torch.float32 and labels.dtype == torch.int64 and features.shape == (len(rows), 6, 8)
    np.testing.assert_array_equal(labels.numpy(), index.labels[rows])
    with FeatureReader(cache) as reader:
        np.testing.assert_allclose(features.numpy(), reader.read(rows))
    # Forked workers open their own handle (the parent's is not shared); spawned ones (macOS, Windows) get a pickled
    # copy, which opens its own too.
    copy = pickle.loads(pickle.dumps(videos))
    np.testing.assert_allclose(copy[3][0].numpy(), videos[3][0].numpy())


def test_jax_batches_are_jax_arrays(cache: Path) -> None:
    import jax

    (features, lengths), labels = next(iter(featcache.dataset(cache, "test", batch_size=4, format="jax")))
    assert all(isinstance(array, jax.Array) for array in (features, lengths, labels))
    assert features.shape == (4, 6, 8) and features.dtype == np.float32


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"format": "pandas"}, "choose one of numpy, jax, tf, torch"),
        ({"subset": "validation"}, "choose one of train, val, test"),
        ({"frames": -1}, "--frames / frames must be at least 1"),
        ({"frames": 4, "clip_sampling": "dense"}, "choose one of uniform, random"),
        ({"subset": "train", "split": "nowhere/split.csv"}, "not a split name"),
    ],
)
def test_bad_arguments_are_clear_errors(cache: Path, arguments: dict, message: str) -> None:
    with pytest.raises(FeatcacheError, match=message):
        featcache.dataset(cache, **arguments)
