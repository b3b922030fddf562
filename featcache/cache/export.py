"""Exporting a cache for tools outside featcache: one .npy per video plus a CSV index, or one Parquet file.

npy: OUT/<video path>.npy holds the video's real frames only, (length, D) in the cache's dtype (a 12-frame
  video of a 1280-d float16 cache: (12, 1280) float16); `.npy` is appended to the whole video path, so
  `a.avi` and `a.mp4` never collide. OUT/index.csv: npy,path,label,group,length, one row per video, in the
  cache's order (sorted by path).
parquet: one row per real frame: path (string), label (string), group (string), frame (int32, the position in
  the stored sequence, 0-based), frame_index (int32, the frame's index in the video file), timestamp_ms (float32),
  vector (fixed-size list of D floats, the cache's dtype). Written in row groups of a few hundred videos, so
  a cache larger than memory exports in bounded memory. Needs pyarrow (`pip install 'featcache[export]'`).
h5: the cache as one self-contained HDF5 file of format 2 (`write_self_contained`).
Every format is built under a temporary name, fsynced and renamed into place (featcache.files):
OUT exists only when complete.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from featcache.cache.format import FRAME_DATASETS
from featcache.cache.reader import Cache, open_cache
from featcache.cache.shards import feature_chunk_rows
from featcache.errors import CacheFormatError, InputError
from featcache.files import write_atomically, write_folder_atomically

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
    cache = open_cache(cache_path)  # checks the cache before anything is written
    if format == "npy":
        write_folder_atomically(out, lambda temporary: write_npy(cache, temporary))
    elif format == "parquet":
        _remove_folder(out)  # a file replaces a folder left there (an --overwrite of an npy export)
        write_atomically(out, lambda temporary: write_parquet(cache, temporary))
    else:
        if cache.format_version == 1:
            raise CacheFormatError(
                f"{cache.path}: a format-1 cache is already one file; `featcache upgrade` it first to export format 2"
            )
        _remove_folder(out)
        write_atomically(out, lambda temporary: write_self_contained(cache, temporary))
    return ExportSummary(
        out=out, format=format, num_videos=cache.index.num_videos, num_frames=int(cache.index.lengths.sum())
    )


def format_from_suffix(out: Path) -> str:
    suffix = out.suffix.lower()
    return {".parquet": "parquet", ".h5": "h5", ".hdf5": "h5"}.get(suffix, "npy")


def write_npy(cache: Cache, out_dir: Path) -> int:
    """One .npy per video (real frames only) and index.csv under `out_dir`; returns the number of frames written."""
    index = cache.index
    out_dir.mkdir(parents=True)
    with open(out_dir / INDEX_FILE_NAME, "w", newline="", encoding="utf-8") as stream, cache.reader() as reader:
        index_writer = csv.writer(stream)
        index_writer.writerow(INDEX_COLUMNS)
        for row, video_path in enumerate(index.paths):
            npy_name = f"{video_path}.npy"
            target = out_dir / npy_name
            target.parent.mkdir(parents=True, exist_ok=True)
            # read_sequence gives float32; the cache's dtype (float16) round-trips exactly.
            np.save(target, reader.read_sequence(row).astype(index.dtype))
            index_writer.writerow(
                [npy_name, video_path, index.class_names[index.labels[row]], index.groups[row], int(index.lengths[row])]
            )
    return int(index.lengths.sum())


def write_parquet(cache: Cache, out_file: Path) -> int:
    """One Parquet file, a row per real frame (see the module docstring); returns the number of rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise InputError(
            "export --format parquet needs pyarrow: `pip install 'featcache[export]'` (or pyarrow), or use --format npy"
        ) from err
    index = cache.index
    schema = pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            ("group", pa.string()),
            ("frame", pa.int32()),
            ("frame_index", pa.int32()),
            ("timestamp_ms", pa.float32()),
            ("vector", pa.list_(pa.from_numpy_dtype(np.dtype(index.dtype)), index.feature_dim)),
        ]
    )
    with pq.ParquetWriter(out_file, schema) as writer, cache.reader() as reader:
        for start in range(0, index.num_videos, PARQUET_VIDEOS_PER_ROW_GROUP):
            rows = range(start, min(start + PARQUET_VIDEOS_PER_ROW_GROUP, index.num_videos))
            vectors = np.concatenate([reader.read_sequence(row).astype(index.dtype) for row in rows])
            frames = [reader.read_frame_arrays(row) for row in rows]
            video_of_frame = np.repeat(np.array(rows), index.lengths[list(rows)])
            columns = [
                pa.array([index.paths[row] for row in video_of_frame], pa.string()),
                pa.array([index.class_names[index.labels[row]] for row in video_of_frame], pa.string()),
                pa.array([index.groups[row] for row in video_of_frame], pa.string()),
                pa.array(np.concatenate([np.arange(index.lengths[row], dtype=np.int32) for row in rows])),
                pa.array(np.concatenate([arrays["frame_indices"] for arrays in frames]).astype(np.int32)),
                pa.array(np.concatenate([arrays["timestamps_ms"] for arrays in frames]).astype(np.float32)),
                pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors).reshape(-1)), index.feature_dim
                ),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return int(index.lengths.sum())


def write_self_contained(cache: Cache, file_path: Path) -> None:
    """The cache as one HDF5 file with the same layout as the index, real datasets instead of virtual ones, and the
    attribute `self_contained`: for plain-h5py readers (the two-line recipe of docs/cache-format.md works the same on
    it); train, evaluate, predict and info open it like the cache."""
    with h5py.File(cache.path, "r") as source, h5py.File(file_path, "w") as target:
        for name, value in source.attrs.items():
            target.attrs[name] = value
        for name in source:
            if name in ("features", *FRAME_DATASETS) or name in (
                "shards",
                "shard_ids",
                "shard_rows",
                "shard_starts",
                "file_mtime_ns",
            ):
                continue
            source.copy(source[name], target, name=name)
        total = int(source["offsets"][-1])
        # Chunked with fletcher32, as shards are: a damaged byte of the export is a read error, never a number.
        chunk_rows = feature_chunk_rows(
            cache.index.lengths, cache.index.feature_dim * np.dtype(cache.index.dtype).itemsize
        )
        checked = {"chunks": True, "fletcher32": True} if total else {}
        features = target.create_dataset(
            "features",
            shape=(total, cache.index.feature_dim),
            dtype=cache.index.dtype,
            **({**checked, "chunks": (chunk_rows, cache.index.feature_dim)} if total else {}),
        )
        frame_arrays = {
            name: target.create_dataset(
                name, shape=(total,), dtype=dtype, **({**checked, "chunks": (chunk_rows,)} if total else {})
            )
            for name, dtype in FRAME_DATASETS.items()
        }
        offsets = source["offsets"][()]
        with cache.reader() as reader:
            for row in range(cache.index.num_videos):
                start, stop = int(offsets[row]), int(offsets[row + 1])
                features[start:stop] = reader.read_sequence(row).astype(cache.index.dtype)
                frames = reader.read_frame_arrays(row)
                for name, dataset in frame_arrays.items():
                    dataset[start:stop] = frames[name]
        target.attrs["self_contained"] = True


def _remove_folder(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
