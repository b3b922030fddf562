"""Scoring a model on cached features: softmax outputs of cache rows read block by block, accuracy on a subset.

Used by training (compare's test column) and by featcache.inference.evaluate, which builds its report on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache, CacheIndex, FeatureReader
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.training.clips import predict_over_clips
from featcache.training.training_data import TrainingData

# Features held in memory per block while scoring: bounds memory for caches larger than RAM
# (a 25088-d x 10-frame video is ~1 MB in float32, so a block is a few hundred videos).
FEATURE_BLOCK_BYTES = 256 * 2**20
PREDICT_BATCH_SIZE = 64


def predict_cached_features(
    model: Any,
    cache_path: Path | Cache,
    index: CacheIndex,
    video_indices: np.ndarray,
    frames: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """Run a Keras model over the given cache rows, reading features block by block.

    frames, num_clips: a model trained on T-frame clips sees `num_clips` uniform clips per video, softmax averaged.
    Returns float32, shape (len(video_indices), num_classes), the softmax output in the order of `video_indices`.
    """
    bytes_per_video = max(1, index.num_frames * index.feature_dim * 4)
    block_size = max(1, FEATURE_BLOCK_BYTES // bytes_per_video)
    blocks = []
    with FeatureReader(cache_path) as reader:
        for start in range(0, len(video_indices), block_size):
            rows = video_indices[start : start + block_size]
            features = reader.read(rows)
            lengths = index.lengths[rows].astype(np.int32)
            for batch_start in range(0, len(rows), PREDICT_BATCH_SIZE):
                batch = slice(batch_start, batch_start + PREDICT_BATCH_SIZE)
                output = predict_over_clips(
                    lambda clips, clip_lengths: model.predict_on_batch([clips, clip_lengths]),
                    features[batch],
                    lengths[batch],
                    frames,
                    num_clips,
                )
                blocks.append(output)
    return np.concatenate(blocks, axis=0)


def score_accuracy(
    model: Any, data: TrainingData, subset: str = "test", train_config: TrainConfig | None = None
) -> float:
    """Accuracy of a finished Keras model on one subset ("train", "val" or "test") of `data`'s split.

    For scoring after training (compare's test column); reads the features from memory or, block by block,
    from the cache. A model trained on clips (train_config.frames) is scored on train_config.test_clips uniform
    clips per video, softmax averaged.
    """
    frames, num_clips = (train_config.frames, train_config.test_clips) if train_config is not None else (0, 1)
    rows = {"train": data.split.train_indices, "val": data.split.val_indices, "test": data.split.test_indices}[subset]
    if len(rows) == 0:
        raise InputError(f"the split has no {subset} videos to score")
    if data.in_memory:
        (features, lengths), labels = {"train": data.train_inputs, "val": data.val_inputs, "test": data.test_inputs}[
            subset
        ]
        probabilities = predict_over_clips(
            lambda batch, batch_lengths: model.predict([batch, batch_lengths], batch_size=256, verbose=0),
            features,
            lengths,
            frames,
            num_clips,
        )
    else:
        labels = data.index.labels[rows]
        probabilities = predict_cached_features(
            model, data.cache or data.index.path, data.index, rows, frames, num_clips
        )
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))
