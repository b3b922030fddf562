"""Format 1 of the cache (featcache before format 2): read-only, for old caches and `featcache upgrade`.

Format (version 1), N videos, T frames, D dims — also in docs/cache-format.md:
  features (N, T, D) float16|float32, chunks (1, T, D); zero where padded
  lengths (N,) int32; frame_indices (N, T) int32, -1 where padded; timestamps_ms (N, T) float32, -1 where padded
  labels (N,) int32 into the file attribute class_names (JSON list, sorted)
  paths (N,) UTF-8, relative to the dataset root; groups (N,) UTF-8, "" when a video has none
  video_fps (N,) float32; video_num_frames, video_width, video_height (N,) int32
  failures: compound (path UTF-8, reason UTF-8), shape (F,)
  file attributes: extractor (JSON), sampling (JSON), dtype, compression, featcache_version, format_version, created
Rows are sorted by path, so the same videos give the same file however the embedding was interrupted.

Format 1 is still read by train/evaluate/predict/info; `featcache upgrade` converts it to format 2.
tests/format1_writer.py keeps the writer that produced it, to test that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from featcache.cache.format import VIDEO_DATASETS, CacheIndex  # shared with format 2
from featcache.errors import CacheFormatError

FORMAT_VERSION = 1
# Format 1 pads frames: its per-frame datasets carry the value that fills padded frames.
FRAME_DATASETS = {"frame_indices": (np.int32, -1), "timestamps_ms": (np.float32, -1.0)}


def open_cache_file(path: Path) -> h5py.File:
    """Open a cache read-only, with a clear error for a missing, foreign or unreadable file."""
    path = Path(path)
    if not path.exists():
        journal = Path(f"{path}.parts")
        hint = (
            f" (an unfinished embed left {journal.name}: re-run the same `featcache embed` to finish it)"
            if journal.exists()
            else ""
        )
        raise CacheFormatError(f"{path}: no such cache file{hint}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        # h5py's message is a page of HDF5 internals (errno, buffer addresses); --verbose shows it as the cause.
        raise CacheFormatError(f"{path}: not an HDF5 file; expected a cache written by `featcache embed`") from err
    if handle.attrs.get("format_version") != FORMAT_VERSION or "features" not in handle:
        handle.close()
        raise CacheFormatError(
            f"{path}: not a featcache cache of format {FORMAT_VERSION}; write one with `featcache embed`"
        )
    return handle


def decode_strings(dataset: h5py.Dataset) -> list[str]:
    """UTF-8 string dataset -> list of str."""
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in dataset[()]]


def read_cache_index(path: Path) -> CacheIndex:
    """Read all but the features; raises CacheFormatError for a missing, foreign or incomplete file."""
    with open_cache_file(path) as handle:
        failures = handle["failures"][()]
        return CacheIndex(
            path=Path(path),
            class_names=json.loads(handle.attrs["class_names"]),
            labels=handle["labels"][()].astype(np.int32),
            lengths=handle["lengths"][()].astype(np.int32),
            paths=decode_strings(handle["paths"]),
            groups=decode_strings(handle["groups"]),
            num_frames=int(handle["features"].shape[1]),
            feature_dim=int(handle["features"].shape[2]),
            dtype=str(handle.attrs["dtype"]),
            extractor=json.loads(handle.attrs["extractor"]),
            sampling=json.loads(handle.attrs["sampling"]),
            failures=[(_text(row["path"]), _text(row["reason"])) for row in failures],
            fingerprints=[""] * len(handle["paths"]),
            format_version=FORMAT_VERSION,
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class VideoRows:
    """Embedded videos in memory, ready to be written (all arrays have N rows, in any order).

    features: (N, T, D) in the cache dtype; frame_indices int32 (N, T); timestamps_ms float32 (N, T);
    labels: class names (str); paths, groups: str; the per-video arrays of VIDEO_DATASETS.
    """

    features: np.ndarray
    frame_indices: np.ndarray
    timestamps_ms: np.ndarray
    lengths: np.ndarray
    video_fps: np.ndarray
    video_num_frames: np.ndarray
    video_width: np.ndarray
    video_height: np.ndarray
    labels: list[str]
    paths: list[str]
    groups: list[str]

    @property
    def num_videos(self) -> int:
        return len(self.paths)


def read_rows_in_blocks(path: Path, block_size: int = 256) -> Iterable[VideoRows]:
    """A complete cache's rows as VideoRows blocks (for merging it into a new file without holding it all)."""
    with open_cache_file(path) as handle:
        class_names = json.loads(handle.attrs["class_names"])
        paths, groups = decode_strings(handle["paths"]), decode_strings(handle["groups"])
        for start in range(0, len(paths), block_size):
            block = slice(start, start + block_size)
            yield VideoRows(
                features=handle["features"][block],
                labels=[class_names[label] for label in handle["labels"][block]],
                paths=paths[block],
                groups=groups[block],
                **{name: handle[name][block] for name in [*FRAME_DATASETS, *VIDEO_DATASETS]},
            )
