"""Format 2 of the cache: names, dtypes and layout shared by the writer, the index and the readers.

A cache is one index file the user names (`CACHE.h5`) plus a folder of immutable shards
(`CACHE.h5.shards/`); see docs/cache-format.md for the layout table.

Shard (`CACHE.h5.shards/<hex>.h5`, written once, never modified):
  features (F, D) float16|float32   every frame of its videos, concatenated
  frame_indices (F,) int32; timestamps_ms (F,) float32
  offsets (n+1,) int64              video j is rows offsets[j]:offsets[j+1]
  paths, labels, groups, fingerprints (n,) UTF-8; VIDEO_DATASETS (n,)
  decoders (n,) UTF-8, optional (absent in shards written before 0.3.0): how each video was decoded
  attributes: settings (JSON of the settings record), shard_format 1
Index (`CACHE.h5`): the same per-video and per-frame names over the live videos only (per-frame ones
as HDF5 virtual datasets over the shards), plus `shards` (the live shard table), `shard_ids` and
`shard_rows` (where each video lives), `failures`, and attributes with format_version 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.errors import CacheFormatError
from featcache.version import newer_writer_problem

FORMAT_VERSION = 2
STRING_DTYPE = h5py.string_dtype(encoding="utf-8")
FAILURE_DTYPE = np.dtype([("path", STRING_DTYPE), ("reason", STRING_DTYPE)])
SHARD_TABLE_DTYPE = np.dtype(
    [
        ("name", STRING_DTYPE),
        ("size", np.int64),
        ("checksum", STRING_DTYPE),
        ("num_videos", np.int64),
        ("num_frames", np.int64),
    ]
)
FRAME_DATASETS = {"frame_indices": np.int32, "timestamps_ms": np.float32}
VIDEO_DATASETS = {
    "lengths": np.int32,
    "video_fps": np.float32,
    "video_num_frames": np.int32,
    "video_width": np.int32,
    "video_height": np.int32,
}
SHARD_FORMAT = 1
SHARD_SUFFIX = ".h5"
# `embed` suggests `featcache compact` once this share of the rows in live shards is dead.
COMPACT_SUGGESTION_DEAD_SHARE = 0.25


def refuse_newer_writer(attributes: Any, cache_path: Path) -> None:
    """CacheFormatError when the file's `featcache_version` attribute names a newer featcache
    (featcache.version's rule)."""
    written_by = attributes.get("featcache_version", "")
    problem = newer_writer_problem(
        written_by.decode() if isinstance(written_by, bytes) else str(written_by), str(cache_path)
    )
    if problem:
        raise CacheFormatError(problem)


def shard_folder_for(cache_path: Path) -> Path:
    """`CACHE.h5` -> `CACHE.h5.shards/`, next to the index (the index names shards relative to it)."""
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".shards")


def decode_strings(values: np.ndarray) -> list[str]:
    """UTF-8 string array as h5py returns it -> list of str."""
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]


@dataclass(frozen=True)
class CacheIndex:
    """Everything in a cache but the features (small enough to hold in memory), for either format.

    num_frames: the T a head takes per video by default: the sampling's frame count, or for a
    `--frames 0` cache (every sampled frame) the longest stored video.
    fingerprints: "size:blake2b" per video (empty strings for a format-1 cache, which has none).
    """

    path: Path
    class_names: list[str]
    labels: np.ndarray  # int32 (N,)
    lengths: np.ndarray  # int32 (N,), frames stored per video
    paths: list[str]
    groups: list[str]
    num_frames: int
    feature_dim: int
    dtype: str
    extractor: dict[str, Any]
    sampling: dict[str, Any]
    failures: list[tuple[str, str]]
    fingerprints: list[str] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    @property
    def num_videos(self) -> int:
        return len(self.paths)

    @property
    def settings(self) -> dict[str, Any]:
        """The one settings record features depend on (see `settings.describe_settings_difference`)."""
        return {"extractor": self.extractor, "sampling": self.sampling, "dtype": self.dtype}

    def lengths_for(self, num_frames: int) -> np.ndarray:
        """int32 (N,): frames a head sees per video when it takes `num_frames` (uniform over longer videos)."""
        return np.minimum(self.lengths, num_frames).astype(np.int32)


def default_num_frames(sampling: dict[str, Any], lengths: np.ndarray) -> int:
    """The cache's T: the sampling's frame count; for `--frames 0` (every sampled frame) the longest video."""
    if int(sampling.get("num_frames") or 0) > 0:
        return int(sampling["num_frames"])
    return int(lengths.max()) if len(lengths) else 1
