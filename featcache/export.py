"""Exporting a cache for tools outside featcache: one .npy per video plus a CSV index, or one Parquet file.

npy: OUT/<video path>.npy holds the video's real frames only, (length, D) in the cache's dtype (a 12-frame
  video of a 1280-d float16 cache: (12, 1280) float16); `.npy` is appended to the whole video path, so
  `a.avi` and `a.mp4` never collide. OUT/index.csv: npy,path,label,group,length, one row per video, in the
  cache's order (sorted by path).
parquet: one row per real frame: path (string), label (string), group (string), frame (int32, the position in
  the stored sequence, 0-based), frame_index (int32, the frame's index in the video file), timestamp_ms (float32),
  vector (fixed-size list of D floats, the cache's dtype). Written in row groups of a few hundred videos, so
  a cache larger than memory exports in bounded memory. Needs pyarrow (`pip install 'featcache[export]'`).
h5: the cache as one HDF5 file (issue 7's format-2 export; not available in this build yet).
Both writers build the result under a temporary name and rename it into place: OUT exists only when complete.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.cache import read_cache_index, read_rows_in_blocks
from featcache.errors import InputError

EXPORT_FORMATS = ("npy", "parquet", "h5")
INDEX_FILE_NAME = "index.csv"
INDEX_COLUMNS = ("npy", "path", "label", "group", "length")
PARQUET_VIDEOS_PER_ROW_GROUP = 256


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: the output path, its format, and the numbers of videos and frames."""

    out: Path
    format: str
    num_videos: int
    num_frames: int


def export_cache(cache_path: Path, out: Path, format: str | None = None, overwrite: bool = False) -> ExportSummary:
    """Export `cache_path` to `out` as `format` (default: from OUT's suffix, .parquet or .h5, else npy).

    Raises InputError for an unknown format, an existing OUT without `overwrite`, or a missing pyarrow;
    CacheFormatError for an unreadable cache. OUT appears only when complete.
    """
    cache_path, out = Path(cache_path), Path(out)
    format = format or format_from_suffix(out)
    if format not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; choose another OUT or pass --overwrite to replace it")
    index = read_cache_index(cache_path)  # checks the cache before anything is written
    if format == "h5":
        raise InputError("export --format h5 (the format-2 single-file cache) is not available in this build yet; use --format npy or parquet")
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        num_frames = write_npy(cache_path, temporary) if format == "npy" else write_parquet(cache_path, temporary)
        _remove(out)
        os.replace(temporary, out)
    finally:
        _remove(temporary)
    return ExportSummary(out=out, format=format, num_videos=index.num_videos, num_frames=num_frames)


def format_from_suffix(out: Path) -> str:
    suffix = out.suffix.lower()
    return {".parquet": "parquet", ".h5": "h5", ".hdf5": "h5"}.get(suffix, "npy")


def write_npy(cache_path: Path, out_dir: Path) -> int:
    """One .npy per video (real frames only) and index.csv under `out_dir`; returns the number of frames written."""
    out_dir.mkdir(parents=True)
    num_frames = 0
    with open(out_dir / INDEX_FILE_NAME, "w", newline="", encoding="utf-8") as stream:
        index_writer = csv.writer(stream)
        index_writer.writerow(INDEX_COLUMNS)
        for rows in read_rows_in_blocks(cache_path):
            for row, video_path in enumerate(rows.paths):
                length = int(rows.lengths[row])
                npy_name = f"{video_path}.npy"
                target = out_dir / npy_name
                target.parent.mkdir(parents=True, exist_ok=True)
                np.save(target, rows.features[row, :length])
                index_writer.writerow([npy_name, video_path, rows.labels[row], rows.groups[row], length])
                num_frames += length
    return num_frames


def write_parquet(cache_path: Path, out_file: Path) -> int:
    """One Parquet file, a row per real frame (see the module docstring); returns the number of rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise InputError("export --format parquet needs pyarrow: `pip install 'featcache[export]'` (or pyarrow), or use --format npy") from err
    index = read_cache_index(cache_path)
    schema = pa.schema(
        [
            ("path", pa.string()), ("label", pa.string()), ("group", pa.string()), ("frame", pa.int32()), ("frame_index", pa.int32()),
            ("timestamp_ms", pa.float32()), ("vector", pa.list_(pa.from_numpy_dtype(np.dtype(index.dtype)), index.feature_dim)),
        ]
    )  # fmt: skip
    num_frames = 0
    with pq.ParquetWriter(out_file, schema) as writer:
        for rows in read_rows_in_blocks(cache_path, block_size=PARQUET_VIDEOS_PER_ROW_GROUP):
            is_real = np.arange(rows.features.shape[1])[None, :] < rows.lengths[:, None]
            video_of_frame, frame_of_frame = np.nonzero(is_real)  # row-major: videos in order, frames in order
            vectors = np.ascontiguousarray(rows.features[video_of_frame, frame_of_frame])
            columns = [
                pa.array([rows.paths[video] for video in video_of_frame], pa.string()),
                pa.array([rows.labels[video] for video in video_of_frame], pa.string()),
                pa.array([rows.groups[video] for video in video_of_frame], pa.string()),
                pa.array(frame_of_frame.astype(np.int32)),
                pa.array(rows.frame_indices[video_of_frame, frame_of_frame].astype(np.int32)),
                pa.array(rows.timestamps_ms[video_of_frame, frame_of_frame].astype(np.float32)),
                pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), index.feature_dim),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            num_frames += len(video_of_frame)
    return num_frames


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
