"""Shards as featcache wrote them before chunk checksums (shard_format 1: contiguous datasets, no filter, no
shard_id), for tests of reading and upgrading caches written the old way.

`old_style_shards()` makes every shard written inside it an old one (the index then records its real BLAKE2b,
as the old writer did).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache import shards
from featcache.cache.format import FRAME_DATASETS, STRING_DTYPE, VIDEO_DATASETS


def write_shard_format1_file(
    path: Path,
    shard_id: str,
    videos: list,
    dtype: str,
    settings: dict[str, Any],
    compression: str,
    runtime: str | None = None,
) -> None:
    """The shard writer of featcache 0.2 (shard_format 1), unchanged but for the unused shard_id and runtime
    arguments (0.2 recorded neither)."""
    lengths = np.array([len(video.features) for video in videos], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    feature_dim = videos[0].features.shape[1]
    with h5py.File(path, "w") as handle:
        features = handle.create_dataset("features", shape=(int(offsets[-1]), feature_dim), dtype=dtype)
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
        handle.attrs["shard_format"] = 1


@contextlib.contextmanager
def old_style_shards() -> Iterator[None]:
    """Inside: `write_shard` writes shard_format-1 shards."""
    current = shards._write_shard_file
    shards._write_shard_file = write_shard_format1_file
    try:
        yield
    finally:
        shards._write_shard_file = current
