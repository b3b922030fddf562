"""Keeping a cache in shape: write one from rows, upgrade format 1, verify, compact (exports: cache/export.py).

Each operation that changes a cache takes its lock and ends with one atomic index replace, so an
interruption leaves the previous complete cache (plus, at worst, unlisted shards the next writer removes).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache import format1
from featcache.cache.format import FORMAT_VERSION, shard_folder_for
from featcache.cache.format1 import VideoRows
from featcache.cache.index import IndexState, read_index_state
from featcache.cache.integrity import identity_problem, needs_whole_verification
from featcache.cache.reader import cache_from_index_state, read_attributes
from featcache.cache.shards import (
    ShardInfo,
    ShardVideo,
    read_video_decoders,
    read_video_runtimes,
    unlisted_shard_names,
    write_shard,
)
from featcache.cache.writer import CacheWriter, WritableCache
from featcache.errors import CacheFormatError, ShardDamagedError
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


@dataclass(frozen=True)
class UpgradeSummary:
    """What `upgrade` did: "format 1 converted", "shards rewritten checksummed" or "already upgraded"."""

    num_videos: int
    done: str


def upgrade_cache(cache_path: Path) -> UpgradeSummary:
    """Bring a cache to the current format in place: a format-1 cache becomes format 2; a format-2 cache whose shards
    lack chunk checksums (shard_format 1) has them rewritten checksummed; a current cache is left as it is.

    Atomic: the new index replaces the old one last (the old shards are deleted after it).
    """
    cache_path = Path(cache_path)
    attributes = read_attributes(cache_path) if cache_path.is_file() else {}
    if attributes.get("format_version") == FORMAT_VERSION:
        state = read_index_state(cache_path)
        if not unchecksummed_shards(cache_path, state):
            return UpgradeSummary(len(state.videos), "already upgraded")
        compact_cache(cache_path)  # compact writes every live row into new, checksummed shards
        return UpgradeSummary(len(state.videos), "shards rewritten checksummed")
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
        compression=str(attributes.get("compression", "none")),
    )
    return UpgradeSummary(index.num_videos, "format 1 converted")


def unchecksummed_shards(cache_path: Path, state: IndexState) -> list[str]:
    """The live shards written before chunk checksums (shard_format 1): `upgrade` rewrites them."""
    folder = shard_folder_for(cache_path)
    old = []
    for name in state.shards:
        try:
            with h5py.File(folder / name, "r") as handle:
                if needs_whole_verification(handle):
                    old.append(name)
        except OSError:
            old.append(name)  # missing or unreadable: compact says which, and what to do
    return old


@dataclass
class VerifyReport:
    """What `verify` found: one line per problem (empty: the cache is sound), and the shard files no index lists."""

    cache_path: Path
    num_shards: int = 0
    num_videos: int = 0
    problems: list[str] = field(default_factory=list)
    unlisted_shards: list[str] = field(default_factory=list)
    damaged_videos: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_cache(cache_path: Path) -> VerifyReport:
    """Check every shard against the index: present, same size, same BLAKE2b, the index's shard (identity); list the
    shard files the index does not list (a killed upgrade, compact or embed left them)."""
    cache_path = Path(cache_path)
    attributes = read_attributes(cache_path) if cache_path.exists() else {}
    if attributes.get("format_version") == 1:
        index = format1.read_cache_index(cache_path)
        return VerifyReport(cache_path, 0, index.num_videos)
    state = read_index_state(cache_path)
    report = VerifyReport(cache_path, len(state.shards), len(state.videos))
    damaged = damaged_shards(cache_path, state)
    report.problems = list(damaged.values())
    report.damaged_videos = sorted(path for path, record in state.videos.items() if record.shard in damaged)
    report.unlisted_shards = unlisted_shard_names(shard_folder_for(cache_path), set(state.shards))
    return report


def damaged_shards(cache_path: Path, state: IndexState) -> dict[str, str]:
    """Live shard name -> what is wrong with it (missing, size, BLAKE2b, another cache's), for the damaged ones."""
    folder = shard_folder_for(cache_path)
    problems = {}
    for info in state.shards.values():
        shard_path = folder / info.name
        if not shard_path.exists():
            problems[info.name] = f"{shard_path}: missing"
        elif shard_path.stat().st_size != info.size:
            problems[info.name] = (
                f"{shard_path}: {shard_path.stat().st_size} bytes, "
                f"the index recorded {info.size} (truncated or replaced)"
            )
        elif blake2b_file(shard_path) != info.checksum:
            problems[info.name] = f"{shard_path}: contents changed (BLAKE2b differs from the index)"
        else:
            identity = _identity_problem_of(shard_path, info, state.settings, state.feature_dim)
            if identity:
                problems[info.name] = f"{shard_path}: {identity}"
    return problems


def _identity_problem_of(shard_path: Path, info: ShardInfo, settings: dict[str, Any], feature_dim: int) -> str | None:
    try:
        with h5py.File(shard_path, "r") as handle:
            return identity_problem(handle, info, settings, feature_dim)
    except OSError as err:
        return f"not a readable HDF5 file ({err})"


@dataclass(frozen=True)
class CompactSummary:
    """What `compact` did: dead rows dropped, shards now, damaged videos dropped (--drop-damaged), unlisted shard
    files removed."""

    num_dead: int
    num_shards: int
    dropped_videos: list[str] = field(default_factory=list)
    removed_unlisted: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[int]:  # `num_dead, num_shards = compact_cache(...)`, as before
        return iter((self.num_dead, self.num_shards))


def compact_cache(cache_path: Path, drop_damaged: bool = False) -> CompactSummary:
    """Rewrite the live rows, in their order, into as few shards as needed and delete the old ones, and the shard
    files no index lists (no writer is running: compact holds the cache's lock).

    Each new shard holds the rows of one runtime (its `runtime` attribute, as embed writes it): a cache embedded
    partly by Keras and partly by OpenVINO compacts into one shard per run of rows of the same runtime.

    Every shard is verified first (`damaged_shards`): compact never copies a damaged row under a fresh checksum.
    Raises ShardDamagedError listing the videos of damaged shards, unless `drop_damaged`: they then leave the
    index (the next `embed` embeds them again).
    Atomic: new shards first, then one index replace; the old shards are deleted only after it.
    """
    with WritableCache.open(cache_path) as writable:
        state = writable.existing
        if state is None:
            raise CacheFormatError(f"{cache_path}: no such cache file; write one with `featcache embed`")
        removed_unlisted = writable.unlisted_shards()
        damaged = damaged_shards(writable.path, state)
        damaged_videos = sorted(path for path, record in state.videos.items() if record.shard in damaged)
        if damaged and not drop_damaged:
            raise ShardDamagedError(
                f"{cache_path}: {len(damaged)} damaged shard(s) ({'; '.join(damaged.values())}) holding "
                f"{len(damaged_videos)} video(s): {_first_few(damaged_videos)}; nothing was rewritten; "
                f"`featcache compact --drop-damaged {cache_path}` drops them, then `featcache embed` re-embeds them"
            )
        writer = writable.writer_for(state.settings)
        writer.remove_videos(damaged_videos)
        num_dead = state.num_dead_rows
        cache = cache_from_index_state(writable.path, state)
        old_videos = dict(state.videos)  # adopting the new shards replaces these records
        decoders = read_video_decoders(writer.shard_folder, old_videos.values())
        runtimes = read_video_runtimes(writer.shard_folder, old_videos.values())
        with cache.reader() as reader:
            # One runtime per new shard, so each video keeps the runtime that embedded it (the shard's `runtime`
            # attribute); a new shard starts where the runtime changes in row order, so the rows keep their order.
            for runtime, rows in itertools.groupby(enumerate(cache.index.paths), key=lambda item: runtimes[item[1]]):
                videos = (_shard_video(reader, row, old_videos[path], decoders[path]) for row, path in rows)
                for batch in _batched_by_bytes(videos, state.feature_dim, state.settings["dtype"]):
                    writer.adopt_shard(
                        write_shard(
                            writer.shard_folder,
                            batch,
                            state.settings["dtype"],
                            state.settings,
                            state.compression,
                            runtime=runtime,
                        )
                    )
        writer.commit()
        for name in removed_unlisted:
            (writable.shard_folder / name).unlink(missing_ok=True)
        return CompactSummary(num_dead, len(state.shards), damaged_videos, removed_unlisted)


def _first_few(paths: list[str], count: int = 5) -> str:
    return ", ".join(paths[:count]) + (f" and {len(paths) - count} more" if len(paths) > count else "")


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
