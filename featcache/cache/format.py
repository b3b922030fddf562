"""Format 2 of the cache: names, dtypes and layout shared by the writer, the index and the readers.

A cache is one index file the user names (`CACHE.h5`) plus a folder of immutable shards
(`CACHE.h5.shards/`); see docs/cache-format.md for the layout table.

Shard (`CACHE.h5.shards/<hex>.h5`, written once, never modified):
  features (F, D) float16|float32   every frame of its videos, concatenated
  frame_indices (F,) int32; timestamps_ms (F,) float32
  offsets (n+1,) int64              video j is rows offsets[j]:offsets[j+1]
  paths, labels, groups, fingerprints (n,) UTF-8; VIDEO_DATASETS (n,)
  decoders (n,) UTF-8, optional (absent in shards written before 0.3.0): how each video was decoded
  attributes: settings (JSON of the settings record), shard_id (its file name's stem), shard_format 2
  shard_format 2: every numeric dataset chunked with HDF5's fletcher32 checksum, so a damaged byte is a read
  error, never a number; shard_format 1 (older shards): contiguous, verified whole against the index's BLAKE2b
  the first time a process opens it (`featcache upgrade` rewrites them checksummed).
Index (`CACHE.h5`): the same per-video and per-frame names over the live videos only (per-frame ones
as HDF5 virtual datasets over the shards), plus `shards` (the live shard table), `shard_ids` and
`shard_rows` (where each video lives), `failures`, and attributes with format_version 2.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
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
# The per-video numeric datasets of a shard beyond VIDEO_DATASETS' (name -> dtype): add one here and both the
# writer and the readers of shard facts pick it up; readers must tolerate its absence in older shards.
SHARD_VIDEO_DATASETS = {**VIDEO_DATASETS, "file_mtime_ns": np.int64}
# (n,) UTF-8 each; "decoders" is absent in shards written before featcache recorded it (read_shard_decoders).
SHARD_STRING_DATASETS = ("paths", "labels", "groups", "fingerprints", "decoders")
SHARD_FORMAT = 2
# Shards from this format on carry fletcher32 checksums on every chunk; older ones are verified whole.
FIRST_CHECKSUMMED_SHARD_FORMAT = 2
SHARD_SUFFIX = ".h5"
# Shards use HDF5 1.10's file structures: their object headers and chunk indexes carry checksums too, so a damaged
# byte of HDF5's own bookkeeping (where a chunk is, a dataset's shape or type) is an error, not another chunk's data.
# Any h5py 3 reads them.
SHARD_LIBVER = ("v110", "latest")
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
    """`CACHE.h5` -> `CACHE.h5.shards/`, next to the index (the index names shards relative to it); for a symbolic
    link to the index, next to the real file."""
    cache_path = resolve_cache_path(cache_path)
    return cache_path.with_name(cache_path.name + ".shards")


def resolve_cache_path(cache_path: Path) -> Path:
    """The cache file's real location when `cache_path` is a symbolic link to it (its shard folder lies beside the
    real file, and a writer replaces the real file, not the link); any other path as given."""
    cache_path = Path(cache_path)
    return Path(os.path.realpath(cache_path)) if cache_path.is_symlink() else cache_path


def write_hdf5_file(path: Path, fill: Callable[[h5py.File], None], libver: Any = None) -> None:
    """Build an HDF5 file in memory with `fill(handle)`, then write its bytes to `path` with plain file I/O.

    Why: when the disk fills up under HDF5 itself, its close fails, the file stays half-open inside the library
    and the process crashes at exit (segfault); written this way a full disk is an ordinary OSError (ENOSPC).
    Costs the file's size in memory while it is written (a shard: at most a few hundred MB).
    libver: h5py's bounds on the file-format structures (shards: SHARD_LIBVER).
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", **({"libver": libver} if libver else {})) as handle:
        fill(handle)
    with open(path, "wb") as stream:
        stream.write(buffer.getbuffer())


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
