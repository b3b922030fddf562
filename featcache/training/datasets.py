"""A cache as training data for your own loop: numpy or JAX batches, a tf.data.Dataset, or a torch Dataset.

    train = featcache.dataset("cache.h5", subset="train", batch_size=32, format="tf")
    model.fit(train, validation_data=featcache.dataset("cache.h5", subset="val", format="tf"))

The videos of each subset are those `featcache train` would use with the same split settings (featcache.training.splits,
not a copy of it). Features stream from the HDF5 file one batch (numpy, JAX, tf) or one video (torch) at a time,
so a cache larger than memory works; nothing is decoded. Every format gives, per video, the features float32
(T, D) zero beyond the video's length, the length int32 (frames at or beyond it are padding:
`mask = arange(T) < length`), and the label int32 into `class_names`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import CacheIndex, read_cache_index
from featcache.config import SPLIT_NAMES, TrainConfig
from featcache.errors import InputError
from featcache.training.batches import Batch, EpochBatches
from featcache.training.clips import clip_positions
from featcache.training.model_folder import ModelMetadata
from featcache.training.splits import SUBSETS, choose_split

FORMATS = ("numpy", "jax", "tf", "torch")


class CacheBatches:
    """Batches of one subset of a cache, re-iterable: each `for` over it is one epoch.

    Yields ((features float32 (B, T, D), lengths int32 (B,)), labels int32 (B,)): the structure Keras' `fit`
    takes for a featcache head ([features, lengths] -> probabilities). The batches are `train`'s for the same
    subset, batch size, seed and clip settings (featcache.training.batches: shuffled epochs draw a new order from
    (seed, epoch); "random" clips new positions every epoch). Each epoch opens the cache file and closes it at its end.
    rows: the cache rows in this subset (int64); class_names: what the labels index.
    """

    def __init__(
        self,
        index: CacheIndex,
        rows: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int,
        frames: int | None,
        clip_sampling: str,
    ) -> None:
        self.index = index
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.frames = frames
        self.clip_sampling = clip_sampling
        self.epoch = 0

    @property
    def class_names(self) -> list[str]:
        return list(self.index.class_names)

    @property
    def num_frames(self) -> int:
        return self.frames or self.index.num_frames

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        # Its own file handle per epoch: two iterations at once (zip, a tf.data prefetch) never share one.
        with EpochBatches(
            self.index.path,
            self.index,
            self.rows,
            self.batch_size,
            self.shuffle,
            self.seed,
            self.frames or 0,
            self.clip_sampling,
        ) as batches:
            for batch_number in range(len(batches)):
                yield batches.batch(epoch, batch_number)


def dataset(
    cache: str | Path,
    subset: str | None = None,
    split: TrainConfig | str | Path | None = None,
    frames: int | None = None,
    batch_size: int = 32,
    format: str = "numpy",
    shuffle: bool | None = None,
    seed: int = 0,
    clip_sampling: str = "uniform",
) -> Any:
    """One subset of a cache's videos as batches for your own training loop.

    subset: "train", "val", "test" (as `featcache train` splits them) or None (every video).
    split: how to split: None (train's defaults), a TrainConfig (its split, fractions and seed), a split name
      ("auto", "ucf101-1", ...), a split file (UCF101 list or path,subset CSV) or a model folder (its exact split).
    frames: T frames per video taken from what is stored (clip_sampling "uniform": each of T equal segments'
      centre; "random": a random frame of each segment, new every epoch); None or 0 (as `train --frames 0`): the
      stored frames as they are.
    batch_size: videos per batch (numpy, jax, tf); the torch Dataset gives single videos for a DataLoader to batch.
    format: "numpy" (a re-iterable CacheBatches), "jax" (the same with jax arrays), "tf" (a tf.data.Dataset)
      or "torch" (a torch.utils.data.Dataset of (features, length, label) tensors; labels int64 for its losses).
    shuffle: a new video order every epoch; default True for subset "train", else False.
    seed: the shuffling and random clips' seed (the split's seed is the split's).
    """
    if format not in FORMATS:
        raise InputError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
    if subset is not None and subset not in SUBSETS:
        raise InputError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}, or None for every video")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    frames = frames or None
    if frames is not None:
        clip_positions(np.ones(1), frames, clip_sampling, np.random.default_rng(0))  # checks frames and clip_sampling
    index = read_cache_index(Path(cache))
    rows = subset_rows(index, subset, split)
    shuffle = subset == "train" if shuffle is None else shuffle
    batches = CacheBatches(index, rows, batch_size, shuffle, seed, frames, clip_sampling)
    if format == "numpy":
        return batches
    if format == "jax":
        return JaxBatches(batches)
    if format == "tf":
        return tf_dataset(batches)
    from featcache.training.torch_dataset import CacheTorchDataset

    return CacheTorchDataset(index, rows, frames, clip_sampling, seed)


def subset_rows(index: CacheIndex, subset: str | None, split: TrainConfig | str | Path | None) -> np.ndarray:
    """The cache rows (int64, sorted) of `subset` under `split` (see `dataset`); every row for subset None."""
    if subset is None:
        return np.arange(index.num_videos, dtype=np.int64)
    chosen = choose_split(index, split_config(split))
    return {"train": chosen.train_indices, "val": chosen.val_indices, "test": chosen.test_indices}[subset]


def split_config(split: TrainConfig | str | Path | None) -> TrainConfig:
    """The TrainConfig whose split settings `split` names (see `dataset`)."""
    if split is None:
        return TrainConfig()
    if isinstance(split, TrainConfig):
        return split
    if isinstance(split, str) and split in SPLIT_NAMES:
        return TrainConfig(split=split)
    path = Path(split)
    if path.is_dir():
        # The model's own training settings on its own cache give back its split exactly (choose_split is seeded).
        return ModelMetadata.read(path).train_config
    if not path.is_file():
        raise InputError(
            f"split {split!r}: not a split name ({', '.join(SPLIT_NAMES)}), a split file or a model folder"
        )
    return TrainConfig(split_file=str(path))


class JaxBatches:
    """CacheBatches with jax arrays (on JAX's default device): ((features, lengths), labels)."""

    def __init__(self, batches: CacheBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        import jax.numpy as jnp

        for (features, lengths), labels in self.batches:
            yield (jnp.asarray(features), jnp.asarray(lengths)), jnp.asarray(labels)


def tf_dataset(batches: CacheBatches):
    """A tf.data.Dataset of CacheBatches' batches, its cardinality known (Keras then knows an epoch's steps)."""
    import tensorflow as tf

    feature_dim = batches.index.feature_dim
    signature = (
        (tf.TensorSpec((None, batches.num_frames, feature_dim), tf.float32), tf.TensorSpec((None,), tf.int32)),
        tf.TensorSpec((None,), tf.int32),
    )
    # from_generator calls the function again for every pass, so each epoch is a new iteration (new order).
    stream = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)
    return stream.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(tf.data.AUTOTUNE)
