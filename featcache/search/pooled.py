"""One vector per video: the mean of its real frames' features, L2-normalized, read from a cache in blocks.

Cosine similarity between two videos is then a dot product of their vectors. Frames at or beyond a video's
length are padding and never enter its mean (the same mask the heads use). Features are read a block of videos
at a time (FEATURE_BLOCK_BYTES), so a cache larger than memory streams; only the (num_videos, feature_dim)
vectors are kept, or not even those with `iter_pooled_blocks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from featcache.cache import Cache, CacheIndex, open_cache
from featcache.cache.reader import CachePath

# Features held in memory per block while pooling (the scoring code's bound: a few hundred 25088-d x 10-frame videos).
FEATURE_BLOCK_BYTES = 256 * 2**20
# Below this norm a vector is treated as zero (a video whose features are all 0): it stays 0, similar to nothing.
ZERO_NORM = 1e-12


@dataclass(frozen=True)
class PooledFeatures:
    """Pooled vectors of some of a cache's videos, in the order of `rows`.

    rows: int64 (n,), the cache rows; paths: their cache paths; vectors: float32 (n, feature_dim), unit L2 norm
    (all-zero for a video whose features are all zero).
    """

    rows: np.ndarray
    paths: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def pool_sequences(features: np.ndarray, lengths: np.ndarray, normalize_frames: bool = False) -> np.ndarray:
    """Masked mean over frames, then L2 normalization.

    features: float (n, T, D), frames at or beyond lengths[i] are padding (any value); lengths: int (n,).
    normalize_frames: L2-normalize each frame before the mean (the CLIP way of averaging image embeddings).
    Returns float32 (n, D), unit norm (all-zero rows stay zero).
    """
    features = np.asarray(features, dtype=np.float32)
    lengths = np.asarray(lengths, dtype=np.int64)
    if normalize_frames:
        features = normalize_rows(features.reshape(-1, features.shape[-1])).reshape(features.shape)
    mask = (np.arange(features.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
    total = np.einsum("ntd,nt->nd", features, mask)
    # A video always has a frame; the floor only guards a malformed length of 0.
    means = total / np.maximum(mask.sum(axis=1), 1.0)[:, None]
    return normalize_rows(means)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 (n, D) with each row scaled to unit L2 norm; rows of norm below ZERO_NORM become zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norms > ZERO_NORM, vectors / np.maximum(norms, ZERO_NORM), 0.0).astype(np.float32)


def block_size_for(index: CacheIndex) -> int:
    """Videos per block so that one block of float32 features stays within FEATURE_BLOCK_BYTES."""
    return max(1, FEATURE_BLOCK_BYTES // max(1, index.num_frames * index.feature_dim * 4))


def iter_pooled_blocks(
    cache: CachePath | Cache,
    rows: Sequence[int] | np.ndarray | None = None,
    normalize_frames: bool = False,
    block_size: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows int64 (b,), vectors float32 (b, D)) per block of `rows` (default: every video), in order.

    Each video contributes the frames a head sees (the cache's T, uniform over longer videos), masked by length.
    """
    opened = open_cache(cache)
    index = opened.index
    rows = np.arange(index.num_videos, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    block_size = block_size or block_size_for(index)
    lengths = index.lengths_for(index.num_frames)
    with opened.reader() as reader:
        for start in range(0, len(rows), block_size):
            block = rows[start : start + block_size]
            features = reader.read(block, index.num_frames)
            yield block, pool_sequences(features, lengths[block], normalize_frames)


def pooled_features(
    cache: CachePath | Cache, rows: Sequence[int] | np.ndarray | None = None, normalize_frames: bool = False
) -> PooledFeatures:
    """The pooled vectors of `rows` (default: every video) of a cache, read block by block.

    Returns PooledFeatures(rows int64 (n,), paths, vectors float32 (n, feature_dim), unit norm).
    """
    opened = open_cache(cache)
    index = opened.index
    blocks = list(iter_pooled_blocks(opened, rows, normalize_frames))
    if blocks:
        chosen = np.concatenate([block for block, _ in blocks])
        vectors = np.concatenate([vectors for _, vectors in blocks])
    else:
        chosen = np.zeros(0, dtype=np.int64)
        vectors = np.zeros((0, index.feature_dim), dtype=np.float32)
    return PooledFeatures(rows=chosen, paths=[index.paths[row] for row in chosen], vectors=vectors)
