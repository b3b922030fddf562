"""Shards: immutable HDF5 files holding finished videos, each written whole or not at all.

Any process may write a shard into a cache's shard folder (`write_shard`); only the one writer holding
the cache's lock adopts shards into the index (`index.CacheWriter.adopt_shard`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache.format import (
    FRAME_DATASETS,
    SHARD_FORMAT,
    SHARD_SUFFIX,
    STRING_DTYPE,
    VIDEO_DATASETS,
    decode_strings,
)
from featcache.errors import CacheFormatError
from featcache.failpoints import failpoint
from featcache.files import blake2b_file, write_atomically


@dataclass(frozen=True)
class ShardVideo:
    """One embedded video, ready for a shard. features: (length, D) in any float dtype (cast on write)."""

    path: str
    label: str
    group: str
    fingerprint: str
    features: np.ndarray
    frame_indices: np.ndarray  # int32 (length,)
    timestamps_ms: np.ndarray  # float32 (length,)
    video_fps: float
    video_num_frames: int
    video_width: int
    video_height: int
    file_mtime_ns: int = 0  # when the fingerprint was taken (lets the next run skip rehashing the file)


@dataclass(frozen=True)
class ShardInfo:
    """What the index records about a shard: its file name (in the shard folder), size and BLAKE2b."""

    name: str
    size: int
    checksum: str
    num_videos: int
    num_frames: int


def write_shard(
    shard_folder: Path,
    videos: list[ShardVideo],
    dtype: str,
    settings: dict[str, Any],
    compression: str = "none",
    *,
    runtime: str | None = None,
) -> ShardInfo:
    """Write these videos as one new shard file: temporary name, fsync, rename. Safe from any process.

    settings: the cache's settings record (stored in the shard so an orphan can be checked before adoption).
    compression: HDF5 filter of the features ("none", "gzip", "lzf"), as `embed --compression`.
    runtime: what ran the extractor ("keras", "openvino"), stored as the shard's `runtime` attribute
      (provenance only: both give the same features); None writes none (read back as DEFAULT_SHARD_RUNTIME).
    Returns the ShardInfo to hand to the cache's writer (`CacheWriter.adopt_shard`).
    """
    if not videos:
        raise ValueError("a shard needs at least one video")
    shard_folder = Path(shard_folder)
    shard_folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex + SHARD_SUFFIX  # unique across processes and machines: no coordination needed
    written: dict[str, Any] = {}

    def checksum_before_rename(temporary: Path) -> None:
        failpoint("shard-temp-written")
        written["checksum"], written["size"] = blake2b_file(temporary), temporary.stat().st_size

    write_atomically(
        shard_folder / name,
        lambda temporary: _write_shard_file(temporary, videos, dtype, settings, compression, runtime),
        checksum_before_rename,
    )
    failpoint("shard-renamed")
    return ShardInfo(
        name, written["size"], written["checksum"], len(videos), int(sum(len(video.features) for video in videos))
    )


def _write_shard_file(
    path: Path, videos: list[ShardVideo], dtype: str, settings: dict[str, Any], compression: str, runtime: str | None
) -> None:
    lengths = np.array([len(video.features) for video in videos], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    feature_dim = videos[0].features.shape[1]
    with h5py.File(path, "w") as handle:
        # Chunks of up to 16 frames: a video's frames are read together, and a chunk stays small (25088-d: 0.8 MB).
        chunks = (int(min(16, max(1, offsets[-1]))), feature_dim) if compression != "none" else None
        filters = {} if compression == "none" else {"compression": compression, "chunks": chunks}
        features = handle.create_dataset("features", shape=(int(offsets[-1]), feature_dim), dtype=dtype, **filters)
        for video, start in zip(videos, offsets[:-1]):
            features[start : start + len(video.features)] = video.features.astype(dtype, copy=False)
        for name, frame_dtype in FRAME_DATASETS.items():
            handle.create_dataset(
                name, data=np.concatenate([getattr(video, name) for video in videos]).astype(frame_dtype)
            )
        handle.create_dataset("offsets", data=offsets)
        handle.create_dataset("lengths", data=lengths.astype(np.int32))
        for name in ("video_fps", "video_num_frames", "video_width", "video_height"):
            handle.create_dataset(
                name, data=np.array([getattr(video, name) for video in videos], dtype=VIDEO_DATASETS[name])
            )
        handle.create_dataset("file_mtime_ns", data=np.array([video.file_mtime_ns for video in videos], dtype=np.int64))
        for name in ("path", "label", "group", "fingerprint"):
            handle.create_dataset(
                name + "s", data=np.array([getattr(video, name) for video in videos], dtype=object), dtype=STRING_DTYPE
            )
        handle.attrs["settings"] = json.dumps(settings, sort_keys=True)
        handle.attrs["shard_format"] = SHARD_FORMAT
        if runtime is not None:
            handle.attrs["runtime"] = runtime


# What ran the extractor for a shard written before shards recorded it (featcache 0.2 ran Keras only).
DEFAULT_SHARD_RUNTIME = "keras"


def shard_runtime(shard_path: Path) -> str:
    """The runtime that embedded a shard's features (its `runtime` attribute; DEFAULT_SHARD_RUNTIME when absent)."""
    try:
        with h5py.File(shard_path, "r") as handle:
            return str(handle.attrs.get("runtime", DEFAULT_SHARD_RUNTIME))
    except OSError as err:
        raise CacheFormatError(f"{shard_path}: not a readable featcache shard ({err})") from err


def unlisted_shard_names(shard_folder: Path, listed: Collection[str]) -> list[str]:
    """The shard files in `shard_folder` that `listed` does not name, sorted (the one place that decides what a shard
    file is): a run killed before its index commit leaves such shards; temporary files are not shards."""
    shard_folder = Path(shard_folder)
    if not shard_folder.is_dir():
        return []
    return sorted(path.name for path in shard_folder.glob("*" + SHARD_SUFFIX) if path.name not in listed)


@dataclass(frozen=True)
class ShardContents:
    """A shard's per-video facts (not its features)."""

    info: ShardInfo
    settings: dict[str, Any]
    paths: list[str]
    labels: list[str]
    groups: list[str]
    fingerprints: list[str]
    offsets: np.ndarray
    video_arrays: dict[str, np.ndarray]  # VIDEO_DATASETS and file_mtime_ns, (n,) each


def read_shard_contents(shard_path: Path, checksum: str | None = None) -> ShardContents:
    """Read a shard's per-video facts; computes the checksum unless it is given (already known)."""
    shard_path = Path(shard_path)
    try:
        with h5py.File(shard_path, "r") as handle:
            offsets = handle["offsets"][()]
            contents = ShardContents(
                info=ShardInfo(
                    shard_path.name,
                    shard_path.stat().st_size,
                    checksum or blake2b_file(shard_path),
                    len(offsets) - 1,
                    int(offsets[-1]),
                ),
                settings=json.loads(handle.attrs["settings"]),
                paths=decode_strings(handle["paths"][()]),
                labels=decode_strings(handle["labels"][()]),
                groups=decode_strings(handle["groups"][()]),
                fingerprints=decode_strings(handle["fingerprints"][()]),
                offsets=offsets,
                video_arrays={name: handle[name][()] for name in [*VIDEO_DATASETS, "file_mtime_ns"]},
            )
    except (OSError, KeyError) as err:
        raise CacheFormatError(f"{shard_path}: not a readable featcache shard ({err})") from err
    return contents
