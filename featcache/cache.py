"""The HDF5 feature cache: writing it crash-safely and reading it back.

STUB for the read API below (fixed interface); the writer comes with `featcache embed`.

Format (version 1), N videos, T frames, D dims — see README "The cache format":
  features (N, T, D) float16|float32, chunks (1, T, D); zero where padded
  lengths (N,) int32; frame_indices (N, T) int32, -1 where padded; timestamps_ms (N, T) float32
  labels (N,) int32, file attribute class_names (JSON list, sorted); paths (N,) UTF-8; groups (N,) UTF-8 ("" = none)
  video_fps (N,) float32; video_num_frames, video_width, video_height (N,) int32
  failures: compound (path UTF-8, reason UTF-8), shape (F,)
  file attributes: extractor (JSON), sampling (JSON), dtype, featcache_version, format_version, created
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CacheIndex:
    """Everything in a cache but the features (small enough to hold in memory)."""

    path: Path
    class_names: list[str]
    labels: np.ndarray  # int32 (N,)
    lengths: np.ndarray  # int32 (N,)
    paths: list[str]
    groups: list[str]
    num_frames: int
    feature_dim: int
    dtype: str
    extractor: dict[str, Any]
    sampling: dict[str, Any]
    failures: list[tuple[str, str]]

    @property
    def num_videos(self) -> int:
        return len(self.paths)


def read_cache_index(path: Path) -> CacheIndex:
    """Read all but the features; raises CacheFormatError for a missing, foreign or incomplete file."""
    raise NotImplementedError


class FeatureReader:
    """Reads feature rows of one cache; open it inside the process that reads (h5py handles don't fork).

    with FeatureReader(path) as reader:
        batch = reader.read(indices)   # float32, shape (len(indices), T, D), rows in the order asked
    """

    def __init__(self, path: Path) -> None:
        raise NotImplementedError

    def __enter__(self) -> "FeatureReader":
        raise NotImplementedError

    def __exit__(self, *exc_info: object) -> None:
        raise NotImplementedError

    def read(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def read_all_features(path: Path) -> np.ndarray:
    """All features at once, float32 (N, T, D); for caches that fit in memory."""
    raise NotImplementedError
