"""The format-1 cache writer as featcache shipped it before format 2, kept to test old caches.

Format-1 caches keep working for train/evaluate/predict/info, and `featcache upgrade` converts them;
tests write one with this exact code (moved here unchanged from featcache/cache.py).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache import __version__
from featcache.cache.format import FAILURE_DTYPE, STRING_DTYPE
from featcache.cache.format1 import FORMAT_VERSION, FRAME_DATASETS, VIDEO_DATASETS, VideoRows


def write_cache(
    path: Path,
    row_sources: Iterable[VideoRows],
    all_paths: list[str],
    class_names: list[str],
    failures: list[tuple[str, str]],
    attributes: dict[str, Any],
    num_frames: int,
    feature_dim: int,
    dtype: str,
    compression: str = "none",
) -> None:
    """Write a complete cache atomically: a temporary file, fsync, then `os.replace` onto `path`.

    all_paths: every path the sources will yield (rows are placed in sorted-path order).
    attributes: extractor (dict) and sampling (dict); format and version attributes are added here.
    An interruption at any point leaves `path` as it was (absent or the previous complete cache).
    """
    path = Path(path)
    sorted_paths = sorted(all_paths)
    destination_of = {video_path: row for row, video_path in enumerate(sorted_paths)}
    temporary_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary_path, "w") as handle:
            features = _create_features(handle, len(sorted_paths), num_frames, feature_dim, dtype, compression)
            # Small per-video arrays are gathered in memory and written once; features go row by row.
            small = _empty_small_arrays(len(sorted_paths), num_frames)
            written = np.zeros(len(sorted_paths), dtype=bool)
            label_of = {name: index for index, name in enumerate(class_names)}
            for rows in row_sources:
                destinations = np.array([destination_of[video_path] for video_path in rows.paths], dtype=np.int64)
                for source_row, destination in enumerate(destinations):
                    features[destination] = rows.features[source_row]
                for name in [*FRAME_DATASETS, *VIDEO_DATASETS]:
                    small[name][destinations] = getattr(rows, name)
                small["labels"][destinations] = [label_of[label] for label in rows.labels]
                small["groups"][destinations] = rows.groups
                written[destinations] = True
            if not written.all():
                missing = [sorted_paths[row] for row in np.flatnonzero(~written)[:3]]
                raise AssertionError(f"cache rows never written, e.g. {missing}")  # internal invariant
            for name, values in small.items():
                handle.create_dataset(name, data=values, dtype=STRING_DTYPE if name == "groups" else values.dtype)
            handle.create_dataset("paths", data=np.array(sorted_paths, dtype=object), dtype=STRING_DTYPE)
            handle.create_dataset("failures", data=np.array(sorted(failures), dtype=FAILURE_DTYPE))
            _write_attributes(handle, class_names, attributes, dtype, compression)
        _fsync_file(temporary_path)
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


def _create_features(
    handle: h5py.File, num_videos: int, num_frames: int, feature_dim: int, dtype: str, compression: str
) -> h5py.Dataset:
    # One chunk per video: training reads whole videos in random order, so each read touches one chunk.
    filters = {} if compression == "none" else {"compression": compression}
    chunks = (1, num_frames, feature_dim) if num_videos else None
    return handle.create_dataset(
        "features", shape=(num_videos, num_frames, feature_dim), dtype=dtype, chunks=chunks, **filters
    )


def _empty_small_arrays(num_videos: int, num_frames: int) -> dict[str, np.ndarray]:
    arrays = {
        name: np.full((num_videos, num_frames), fill, dtype=frame_dtype)
        for name, (frame_dtype, fill) in FRAME_DATASETS.items()
    }
    arrays.update({name: np.zeros(num_videos, dtype=video_dtype) for name, video_dtype in VIDEO_DATASETS.items()})
    arrays["labels"] = np.zeros(num_videos, dtype=np.int32)
    arrays["groups"] = np.empty(num_videos, dtype=object)
    return arrays


def _write_attributes(
    handle: h5py.File, class_names: list[str], attributes: dict[str, Any], dtype: str, compression: str
) -> None:
    handle.attrs["class_names"] = json.dumps(class_names)
    handle.attrs["extractor"] = json.dumps(attributes["extractor"], sort_keys=True)
    handle.attrs["sampling"] = json.dumps(attributes["sampling"], sort_keys=True)
    handle.attrs["dtype"] = dtype
    handle.attrs["compression"] = compression
    handle.attrs["featcache_version"] = __version__
    handle.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    # Written last: a reader checks it first (the file only appears by os.replace, this is belt and braces).
    handle.attrs["format_version"] = FORMAT_VERSION


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())
