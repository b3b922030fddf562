"""The training data of a run: a cache's index, the three-way split, and the features in memory when they fit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache, CacheIndex, FeatureReader, open_cache
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.training.splits import Split, choose_split

BYTES_PER_MB = 2**20
FLOAT32_BYTES = 4


@dataclass
class TrainingData:
    """A cache's index, the split, and its features per subset when in memory: ((features, lengths), labels).

    val_inputs is None when there is no validation set. test_inputs is only for scoring a finished model
    (score_accuracy); fit_head never reads it.
    """

    index: CacheIndex
    split: Split
    in_memory: bool
    cache: Cache | None = None  # the opened cache (index + reader), handed to readers instead of a path
    train_inputs: Any = None
    val_inputs: Any = None
    test_inputs: Any = None

    @property
    def feature_megabytes(self) -> float:
        return self.index.num_videos * self.index.num_frames * self.index.feature_dim * FLOAT32_BYTES / BYTES_PER_MB


def load_training_data(cache_path: Path | Cache, train_config: TrainConfig) -> TrainingData:
    """Read a cache's index, choose the split and load the features (in memory when within the memory budget)."""
    cache = open_cache(cache_path)  # a path, or a Cache opened once by the caller
    index = cache.index
    check_trainable(index)
    split = choose_split(index, train_config)
    data = TrainingData(index=index, split=split, in_memory=False, cache=cache)
    data.in_memory = data.feature_megabytes <= train_config.memory_budget_mb
    if data.in_memory:
        # Each side is read straight from the file: holding all features and then copies of the
        # sides would double the peak memory.
        with FeatureReader(cache) as reader:
            data.train_inputs = _arrays(reader, index, split.train_indices)
            data.val_inputs = _arrays(reader, index, split.val_indices) if split.num_val else None
            data.test_inputs = _arrays(reader, index, split.test_indices)
    return data


def check_trainable(index: CacheIndex) -> None:
    """InputError unless the cache has videos of at least 2 classes and every listed class has videos."""
    if index.num_videos == 0:
        raise InputError(f"{index.path}: the cache holds no videos; embed some with `featcache embed`")
    counts = np.bincount(index.labels, minlength=len(index.class_names))
    if len(index.class_names) < 2:
        raise InputError(
            f"{index.path}: a classifier needs at least 2 classes, "
            f"the cache has {len(index.class_names)} ({', '.join(index.class_names)})"
        )
    empty = [name for name, count in zip(index.class_names, counts) if count == 0]
    if empty:
        raise InputError(
            f"{index.path}: class(es) {', '.join(empty)} have no videos in the cache (failed or removed); "
            "add videos for them or re-embed without their folders"
        )


def _arrays(
    reader: FeatureReader, index: CacheIndex, rows: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    return (reader.read(rows), index.lengths[rows]), index.labels[rows]
