"""Keeping a cache in shape: write one from rows, upgrade format 1, verify, compact (exports: cache/export.py).

Each operation that changes a cache takes its lock and ends with one atomic index replace, so an
interruption leaves the previous complete cache (plus, at worst, unlisted shards the next writer removes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import format1
from featcache.cache.format import shard_folder_for
from featcache.cache.format1 import VideoRows
from featcache.cache.index import read_index_state
from featcache.cache.reader import cache_from_index_state, read_attributes
from featcache.cache.shards import ShardVideo, read_video_decoders, write_shard
from featcache.cache.writer import CacheWriter, WritableCache
from featcache.files import blake2b_file

# A shard holds at most this many feature bytes (compact, upgrade): large enough for few files, small
# enough that a crash while writing one costs little.
MAX_SHARD_BYTES = 1 << 30


def shard_videos_from_rows(rows: VideoRows, fingerprints: dict[str, str] | None = None) -> list[ShardVideo]:
    """Padded (N, T, D) VideoRows -> one ShardVideo per video with only its `lengths[i]` stored frames."""
    fingerprints = fingerprints or {}
    videos = []
    for row, path in enumerate(rows.paths):
        length = int(rows.lengths[row])
        videos.append(
            ShardVideo(
                path=path,
                label=rows.labels[row],
                group=rows.groups[row],
                fingerprint=fingerprints.get(path, ""),
                features=rows.features[row, :length],
                frame_indices=rows.frame_indices[row, :length],
                timestamps_ms=rows.timestamps_ms[row, :length],
                **{
                    name: rows.__getattribute__(name)[row].item()
                    for name in ("video_fps", "video_num_frames", "video_width", "video_height")
                },
            )
        )
    return videos


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
    fingerprints: dict[str, str] | None = None,
) -> None:
    """Write a complete format-2 cache from padded VideoRows blocks (replacing any cache at `path`).

    Used by `upgrade`, benchmarks and tests; `embed` writes shards as videos finish instead.
    attributes: extractor (dict) and sampling (dict). all_paths, class_names, num_frames: as in format 1
    (kept for its callers; rows define the videos and labels). fingerprints: path -> "size:blake2b" ("" if unknown).
    """
    settings = {"extractor": attributes["extractor"], "sampling": attributes["sampling"], "dtype": dtype}
    with CacheWriter.open(path, settings, feature_dim, compression, overwrite=True) as writer:
        for videos in _batched_by_bytes(
            (video for rows in row_sources for video in shard_videos_from_rows(rows, fingerprints)), feature_dim, dtype
        ):
            writer.adopt_shard(write_shard(writer.shard_folder, videos, dtype, settings, compression))
        writer.state.failures = dict(failures)
        writer.commit()


def _batched_by_bytes(videos: Iterable[ShardVideo], feature_dim: int, dtype: str) -> Iterator[list[ShardVideo]]:
    batch: list[ShardVideo] = []
    bytes_per_frame = feature_dim * np.dtype(dtype).itemsize
    batch_bytes = 0
    for video in videos:
        batch.append(video)
        batch_bytes += len(video.features) * bytes_per_frame
        if batch_bytes >= MAX_SHARD_BYTES:
            yield batch
            batch, batch_bytes = [], 0
    if batch:
        yield batch


def upgrade_cache(cache_path: Path) -> int:
    """Convert a format-1 cache to format 2 in place; returns the number of videos.

    Atomic: the index replaces the file last.
    """
    cache_path = Path(cache_path)
    index = format1.read_cache_index(cache_path)
    write_cache(
        cache_path,
        format1.read_rows_in_blocks(cache_path),
        index.paths,
        index.class_names,
        index.failures,
        {"extractor": index.extractor, "sampling": index.sampling},
        index.num_frames,
        index.feature_dim,
        index.dtype,
        compression=str(read_attributes(cache_path).get("compression", "none")),
    )
    return index.num_videos


@dataclass
class VerifyReport:
    """What `verify` found: one line per problem (empty: the cache is sound)."""

    cache_path: Path
    num_shards: int = 0
    num_videos: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_cache(cache_path: Path) -> VerifyReport:
    """Check every shard against the index: present, same size, same BLAKE2b, rows where the index says."""
    cache_path = Path(cache_path)
    attributes = read_attributes(cache_path) if cache_path.exists() else {}
    if attributes.get("format_version") == 1:
        index = format1.read_cache_index(cache_path)
        return VerifyReport(cache_path, 0, index.num_videos)
    state = read_index_state(cache_path)
    report = VerifyReport(cache_path, len(state.shards), len(state.videos))
    folder = shard_folder_for(cache_path)
    for info in state.shards.values():
        shard_path = folder / info.name
        if not shard_path.exists():
            report.problems.append(f"{shard_path}: missing")
        elif shard_path.stat().st_size != info.size:
            report.problems.append(
                f"{shard_path}: {shard_path.stat().st_size} bytes, "
                f"the index recorded {info.size} (truncated or replaced)"
            )
        elif blake2b_file(shard_path) != info.checksum:
            report.problems.append(f"{shard_path}: contents changed (BLAKE2b differs from the index)")
    return report


def compact_cache(cache_path: Path) -> tuple[int, int]:
    """Rewrite the live rows into as few shards as needed and delete the old ones;
    returns (dead rows dropped, shards now).

    Atomic: new shards first, then one index replace; the old shards are deleted only after it.
    """
    with WritableCache.open(cache_path) as writable:
        state = writable.existing
        cache = cache_from_index_state(writable.path, state)
        num_dead = state.num_dead_rows
        writer = writable.writer_for(state.settings)
        old_videos = dict(state.videos)  # adopting the new shards replaces these records
        decoders = read_video_decoders(writer.shard_folder, old_videos.values())
        with cache.reader() as reader:
            videos = (
                _shard_video(reader, row, old_videos[path], decoders[path])
                for row, path in enumerate(cache.index.paths)
            )
            for batch in _batched_by_bytes(videos, state.feature_dim, state.settings["dtype"]):
                writer.adopt_shard(
                    write_shard(writer.shard_folder, batch, state.settings["dtype"], state.settings, state.compression)
                )
        writer.commit()
        return num_dead, len(state.shards)


def _shard_video(reader: Any, row: int, record: Any, decoder: str) -> ShardVideo:
    frames = reader.read_frame_arrays(row)
    return ShardVideo(
        path=record.path,
        label=record.label,
        group=record.group,
        fingerprint=record.fingerprint,
        features=reader.read_sequence(row).astype(reader.cache.index.dtype),
        **frames,
        video_fps=record.video_fps,
        video_num_frames=record.video_num_frames,
        video_width=record.video_width,
        video_height=record.video_height,
        file_mtime_ns=record.file_mtime_ns,
        decoder=decoder,
    )
