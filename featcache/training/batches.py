"""Batches of cached videos for training: one seeded epoch order and one clip rule (numpy only, no Keras).

`train` (through a keras PyDataset in featcache.training.train), `featcache.dataset` (numpy, jax, tf) and the
torch dataset read videos here, so the same subset, batch size, seed and clip settings give the same batches:
- epoch e visits the subset's videos in the order default_rng([seed, e]).permutation(n) when shuffled, else in
  cache order; batch b is the next batch_size of them, in that order;
- a batch is read in cache-row order (for a streamed cache, one pass through the file instead of seeking back
  and forth) and returned in the epoch's order;
- frames T > 0 makes each video a T-frame clip (featcache.training.clips); "random" clip positions of batch b of
  epoch e are drawn from default_rng([seed, e, b]), in cache-row order, so any batch can be read alone and in any
  order (Keras asks for batches by number, from a worker thread).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from featcache.cache import Cache, CacheIndex, CacheReader, FeatureReader
from featcache.training.clips import clip_positions, gather_clips, read_clips

Batch = tuple[
    tuple[np.ndarray, np.ndarray], np.ndarray
]  # ((features float32 (B, T, D), lengths int32 (B,)), labels int32 (B,))


class EpochBatches:
    """Any batch of any epoch of one subset of a cache: ((features float32 (B, T, D), lengths int32 (B,)),
    labels int32 (B,)).

    cache: the cache's path or an opened Cache; index: its CacheIndex; rows: int64, the subset's cache rows.
    frames: 0 for the stored frames as they are (T the cache's), T > 0 for T-frame clips taken by clip_sampling
      ("uniform" or "random").
    features: float32 (len(rows), T_stored, D), the rows' features already in memory; None: read from the file,
      one batch at a time (the file opens on the first read, in the reading process; `close` closes it).
    The structure is what Keras' `fit` takes for a featcache head ([features, lengths] -> probabilities).
    """

    def __init__(
        self,
        cache: Path | Cache,
        index: CacheIndex,
        rows: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int,
        frames: int = 0,
        clip_sampling: str = "uniform",
        features: np.ndarray | None = None,
    ) -> None:
        self.cache = cache
        self.index = index
        self.rows = np.asarray(rows, dtype=np.int64)
        self.lengths = index.lengths_for(index.num_frames)[self.rows]
        self.labels = np.asarray(index.labels[self.rows], dtype=np.int32)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.frames = frames
        self.clip_sampling = clip_sampling
        self.features = features
        self._reader: CacheReader | None = None
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its order): batches of one epoch come in a row

    @property
    def num_frames(self) -> int:
        """T of every batch: the clip's frames, or the cache's."""
        return self.frames or self.index.num_frames

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """int64 (len(rows),): positions into `rows` in the order epoch `epoch` visits them."""
        if self._order is None or self._order[0] != epoch:
            order = (
                np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
                if self.shuffle
                else np.arange(len(self.rows))
            )
            self._order = (epoch, order)
        return self._order[1]

    def batch(self, epoch: int, batch_number: int) -> Batch:
        """Batch `batch_number` (0-based, < len(self)) of epoch `epoch` (0-based)."""
        if not 0 <= batch_number < len(self):
            raise IndexError(f"batch {batch_number} of {len(self)}")
        positions = self.epoch_order(epoch)[batch_number * self.batch_size : (batch_number + 1) * self.batch_size]
        reading_order = np.argsort(positions, kind="stable")
        in_cache_order = positions[reading_order]
        rng = np.random.default_rng([self.seed, epoch, batch_number]) if self.frames else None
        features, lengths = self._read(in_cache_order, rng)
        labels = self.labels[in_cache_order]
        if np.array_equal(in_cache_order, positions):
            return (features, lengths), labels
        back = np.argsort(reading_order)  # in_cache_order[back] == positions
        return (features[back], lengths[back]), labels[back]

    def _read(self, positions: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        if self.features is None:
            if self._reader is None:
                self._reader = FeatureReader(self.cache).__enter__()
            return read_videos(self._reader, self.index, self.rows[positions], self.frames, self.clip_sampling, rng)
        features, lengths = self.features[positions], self.lengths[positions]
        if self.frames:
            clip_frames, lengths = clip_positions(lengths, self.frames, self.clip_sampling, rng)
            features = gather_clips(features, clip_frames, lengths)
        return features, lengths

    def close(self) -> None:
        """Close the cache file if a batch opened it (the next read opens it again)."""
        if self._reader is not None:
            self._reader.__exit__(None, None, None)
            self._reader = None

    def __enter__(self) -> EpochBatches:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_videos(
    reader: CacheReader,
    index: CacheIndex,
    rows: np.ndarray,
    frames: int,
    clip_sampling: str,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (n, T, D), lengths int32 (n,)) of cache `rows`: as stored (frames 0; T the cache's) or as
    T-frame clips (frames T), for which only the chosen frames are read. rng: for "random" clips."""
    if not frames:
        return reader.read(rows), index.lengths_for(index.num_frames)[rows]
    return read_clips(reader, rows, index.lengths[rows], frames, clip_sampling, rng)
