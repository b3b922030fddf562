"""Stage one: decode sampled frames of every video once, embed them with a frozen CNN, write the cache.

Decoding overlaps inference (`batching.py`). Finished videos go to the journal every few seconds; the
cache file is written once at the end (see `journal.py`, `cache.py`). A cache never mixes settings.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from featcache.batching import decode_videos, embed_decoded_videos
from featcache.cache import (
    CacheIndex,
    VideoRows,
    read_cache_index,
    read_rows_in_blocks,
    write_cache,
)
from featcache.config import EmbedConfig
from featcache.errors import CacheMismatchError, InputError, VideoDecodeError
from featcache.extractors import Extractor, load_extractor
from featcache.frames import SampledFrames
from featcache.journal import Journal, JournalContents
from featcache.resources import check_embed_memory
from featcache.videos import VideoEntry, find_videos
from featcache.weights import sha256_file

SECONDS_BETWEEN_PARTS = 10.0  # at most this much embedding is lost to a crash
MAX_VIDEOS_PER_PART = 256  # keeps a part (and the memory it buffers) small for 25088-d features


@dataclass(frozen=True)
class EmbedProgress:
    """Counts reported after each finished video."""

    num_done: int
    num_to_embed: int
    num_failed: int
    num_frames: int


@dataclass
class EmbedSummary:
    """What one `embed` call did."""

    cache_path: Path
    num_videos_found: int
    num_already_cached: int
    num_embedded: int
    num_frames_embedded: int
    failures: dict[str, str]
    seconds: float
    embedding_seconds: float = 0.0  # decode + model only, without loading the model or writing the cache
    num_videos_in_cache: int = 0
    cache_size_bytes: int = 0
    num_removed: int = 0  # cached videos whose file is gone, dropped from the cache
    num_relabelled: int = 0  # cached videos whose label or group changed in the dataset
    unreadable_parts: list[str] = field(default_factory=list)
    num_outside_root: int = 0  # CSV rows naming files outside the CSV's folder (--allow-outside-root)

    @property
    def videos_per_second(self) -> float:
        return self.num_embedded / self.embedding_seconds if self.embedding_seconds > 0 else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.num_frames_embedded / self.embedding_seconds if self.embedding_seconds > 0 else 0.0


def embed(
    video_source: Path,
    cache_path: Path,
    config: EmbedConfig = EmbedConfig(),
    overwrite: bool = False,
    progress: Callable[[EmbedProgress], None] | None = None,
) -> EmbedSummary:
    """Embed every video of `video_source` not yet in `cache_path`, then (re)write the cache.

    video_source: a UCF101-layout folder or a CSV list (see `videos.find_videos`).
    Resumes an interrupted run and adds new videos to an existing cache; settings that differ from the
    cache's raise CacheMismatchError unless `overwrite`. Videos that cannot be decoded are listed in the
    summary and the cache's `failures`, and never stop the run. Ctrl-C saves finished videos and re-raises.
    """
    started = time.perf_counter()
    cache_path = Path(cache_path)
    root, entries = find_videos(Path(video_source), allow_outside_root=config.allow_outside_root)
    cache_path.parent.mkdir(parents=True, exist_ok=True)  # a bad --out fails now, not after loading the model
    remove_abandoned_cache_writes(cache_path)
    journal = Journal(cache_path)
    if journal.folder.exists() and (overwrite or not journal.has_parts()):
        journal.remove()  # replaced settings, or a run that finished no video: nothing to resume
    # With overwrite the old cache is ignored, not deleted: it stays until the new one replaces it.
    existing = read_cache_index(cache_path) if cache_path.exists() and not overwrite else None
    _refuse_other_settings(existing, journal, config, cache_path)

    journal_paths = journal.read_contents().embedded_paths if journal.exists() else set()
    done_paths = set(existing.paths if existing else []) | journal_paths
    to_embed = [entry for entry in entries if entry.relative_path not in done_paths]
    summary = EmbedSummary(cache_path, len(entries), len(entries) - len(to_embed), 0, 0, {}, 0.0)
    summary.num_outside_root = sum(1 for entry in entries if entry.is_outside_root)

    if to_embed:
        check_embed_memory(config, config.num_decode_workers or os.cpu_count() or 1)
        extractor = load_extractor(config.extractor)
        journal.start(_identity(extractor.provenance, config))
        embedding_started = time.perf_counter()
        try:
            _embed_into_journal(to_embed, extractor, config, journal, summary, progress)
        finally:
            summary.embedding_seconds = time.perf_counter() - embedding_started
    if journal.exists() or existing is not None:
        _finish_cache(cache_path, existing, journal, DatasetView(root, entries), config, summary)
    summary.seconds = time.perf_counter() - started
    index = read_cache_index(cache_path) if cache_path.exists() else None
    summary.num_videos_in_cache = index.num_videos if index else 0
    summary.cache_size_bytes = cache_path.stat().st_size if cache_path.exists() else 0
    return summary


def remove_abandoned_cache_writes(cache_path: Path) -> None:
    """Delete temporary cache files of writers that died (kill -9, power loss): each can be a full cache's size."""
    for temporary in cache_path.parent.glob(f".{cache_path.name}.*.tmp"):
        writer_pid = temporary.name.removeprefix(f".{cache_path.name}.").removesuffix(".tmp")
        if writer_pid.isdigit() and not _process_is_running(int(writer_pid)):
            temporary.unlink(missing_ok=True)


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


@dataclass(frozen=True)
class DatasetView:
    """The dataset as found now: its root and its videos."""

    root: Path
    entries: list[VideoEntry]

    @property
    def by_path(self) -> dict[str, VideoEntry]:
        return {entry.relative_path: entry for entry in self.entries}

    def still_exists(self, relative_path: str) -> bool:
        return (self.root / relative_path).exists()


def _identity(provenance: dict[str, Any], config: EmbedConfig) -> dict[str, Any]:
    """The settings a cache's features depend on: a cache never mixes two identities."""
    return {"extractor": provenance, "sampling": dataclasses.asdict(config.sampling), "dtype": config.dtype}


def _refuse_other_settings(existing: CacheIndex | None, journal: Journal, config: EmbedConfig, cache_path: Path) -> None:
    """Raise CacheMismatchError when the cache or an unfinished run used other settings than `config`."""
    stored = []
    if existing is not None:
        stored.append((cache_path.name, {"extractor": existing.extractor, "sampling": existing.sampling, "dtype": existing.dtype}))
    if journal.exists():
        stored.append((journal.folder.name, journal.read_identity()))
    for source_name, identity in stored:
        difference = describe_setting_difference(identity, config)
        if difference:
            raise CacheMismatchError(
                f"{source_name} was embedded with other settings ({difference}); "
                "re-run with --overwrite to replace it, or choose another --out"
            )


def describe_setting_difference(identity: dict[str, Any], config: EmbedConfig) -> str:
    """'' when a stored identity matches `config`, else a short 'stored X, asked Y' text."""
    stored_extractor, wanted_extractor = identity["extractor"], config.extractor
    differences = []
    for name in ("name", "handle", "image_size"):
        if stored_extractor.get(name) != getattr(wanted_extractor, name):
            differences.append(f"extractor {name} {stored_extractor.get(name)!r} vs {getattr(wanted_extractor, name)!r}")
    differences += _weights_difference(stored_extractor, wanted_extractor.weights, wanted_extractor.seed)
    for name, wanted in dataclasses.asdict(config.sampling).items():
        if identity["sampling"].get(name) != wanted:
            differences.append(f"sampling {name} {identity['sampling'].get(name)!r} vs {wanted!r}")
    if identity["dtype"] != config.dtype:
        differences.append(f"dtype {identity['dtype']} vs {config.dtype}")
    return "; ".join(differences)


def _weights_difference(stored: dict[str, Any], weights: str, seed: int) -> list[str]:
    if weights in ("imagenet", "random"):
        if stored.get("weights") != weights:
            return [f"weights {stored.get('weights')!r} vs {weights!r}"]
        if weights == "random" and stored.get("seed") != seed:
            return [f"random weights seed {stored.get('seed')} vs {seed}"]
        return []
    weights_path = Path(weights)
    if not weights_path.is_file():
        raise InputError(f"--weights {weights}: no such file; give a weights file, 'imagenet' or 'random'")
    if stored.get("weights_sha256") != sha256_file(weights_path):
        return [f"weights file {weights} differs from the one used ({stored.get('weights')})"]
    return []


def _embed_into_journal(
    to_embed: list[VideoEntry],
    extractor: Extractor,
    config: EmbedConfig,
    journal: Journal,
    summary: EmbedSummary,
    progress: Callable[[EmbedProgress], None] | None,
) -> None:
    """Run decode + model over `to_embed`, writing finished videos to the journal as it goes."""
    finished: list[tuple[VideoEntry, SampledFrames, np.ndarray]] = []
    failures: dict[str, str] = {}
    last_part_time = time.perf_counter()

    def save_part() -> None:
        nonlocal last_part_time
        if finished or failures:
            journal.append(_rows_from_videos(finished, config) if finished else None, dict(failures))
        finished.clear()
        failures.clear()
        last_part_time = time.perf_counter()

    num_workers = config.num_decode_workers or os.cpu_count() or 1
    decoded = decode_videos(to_embed, config.sampling, extractor.image_size, num_workers)
    try:
        for entry, sampled, features_or_error in embed_decoded_videos(decoded, extractor, config.batch_size):
            if isinstance(features_or_error, VideoDecodeError):
                # The cache names videos by relative path; the absolute path in the message is noise there.
                reason = str(features_or_error).removeprefix(f"{entry.path}: ")
                failures[entry.relative_path] = reason
                summary.failures[entry.relative_path] = reason
            else:
                check_features_fit_dtype(features_or_error, config.dtype, entry.relative_path)
                finished.append((entry, sampled, features_or_error))
                summary.num_embedded += 1
                summary.num_frames_embedded += len(sampled.frame_indices)
            if progress:
                progress(EmbedProgress(summary.num_embedded + len(summary.failures), len(to_embed), len(summary.failures), summary.num_frames_embedded))
            if len(finished) >= MAX_VIDEOS_PER_PART or time.perf_counter() - last_part_time > SECONDS_BETWEEN_PARTS:
                save_part()
    finally:
        # Also on Ctrl-C or an unexpected error: what is finished is kept for the next run.
        save_part()


def check_features_fit_dtype(features: np.ndarray, dtype: str, video_path: str) -> None:
    """Refuse features that the cache dtype would turn into zeros or infinities.

    Not hypothetical: randomly initialised MobileNetV2 (BatchNorm with untrained statistics) outputs
    values near 1e-11, which float16 stores as exact zeros, and every head then sits at chance.
    """
    if dtype != "float16":
        return
    peak = float(np.abs(features).max())
    limits = np.finfo(np.float16)
    if peak > limits.max:
        raise InputError(f"{video_path}: features reach {peak:.3g}, beyond float16's range ({limits.max:.0f}); use --dtype float32 (with --overwrite if videos are already embedded)")
    if 0.0 < peak < limits.smallest_normal:
        raise InputError(
            f"{video_path}: features peak at {peak:.3g}, below float16's smallest normal number "
            f"({limits.smallest_normal:.2g}), so the cache would hold zeros; use --dtype float32 (with --overwrite if videos are already embedded)"
        )


def _rows_from_videos(videos: list[tuple[VideoEntry, SampledFrames, np.ndarray]], config: EmbedConfig) -> VideoRows:
    """Pad each video to `num_frames` (zeros / -1) and stack them as cache rows."""
    num_frames = config.sampling.num_frames
    feature_dim = videos[0][2].shape[1]
    features = np.zeros((len(videos), num_frames, feature_dim), dtype=config.dtype)
    frame_indices = np.full((len(videos), num_frames), -1, dtype=np.int32)
    timestamps_ms = np.full((len(videos), num_frames), -1.0, dtype=np.float32)
    for row, (_, sampled, video_features) in enumerate(videos):
        length = len(video_features)
        features[row, :length] = video_features
        frame_indices[row, :length] = sampled.frame_indices
        timestamps_ms[row, :length] = sampled.timestamps_ms
    return VideoRows(
        features=features,
        frame_indices=frame_indices,
        timestamps_ms=timestamps_ms,
        lengths=np.array([len(video_features) for _, _, video_features in videos], dtype=np.int32),
        video_fps=np.array([sampled.video_fps for _, sampled, _ in videos], dtype=np.float32),
        video_num_frames=np.array([sampled.video_num_frames for _, sampled, _ in videos], dtype=np.int32),
        video_width=np.array([sampled.video_width for _, sampled, _ in videos], dtype=np.int32),
        video_height=np.array([sampled.video_height for _, sampled, _ in videos], dtype=np.int32),
        labels=[entry.label for entry, _, _ in videos],
        paths=[entry.relative_path for entry, _, _ in videos],
        groups=[entry.group for entry, _, _ in videos],
    )


def _finish_cache(
    cache_path: Path, existing: CacheIndex | None, journal: Journal, dataset: DatasetView, config: EmbedConfig, summary: EmbedSummary
) -> None:
    """Merge the previous cache (if any) and the journal into a new cache file that matches the dataset now.

    Videos whose file is gone (deleted, or its class folder renamed) leave the cache; videos still on disk
    but not listed this time (a CSV naming a subset) stay. Labels and groups come from the dataset as
    found now, so a relabelled CSV row or a moved group needs no re-embedding. The file is rewritten only
    when something changed.
    """
    contents = journal.read_contents() if journal.exists() else JournalContents()
    summary.unreadable_parts = contents.unreadable_parts
    identity = journal.read_identity() if journal.exists() else {"extractor": existing.extractor, "sampling": existing.sampling}
    current = dataset.by_path
    old_paths = set(existing.paths) if existing else set()
    gone = {path for path in old_paths if path not in current and not dataset.still_exists(path)}
    kept_paths = (old_paths - gone) | contents.embedded_paths
    old_failures = dict(existing.failures) if existing else {}
    # A failure stands until the video embeds or its file is gone; this run retried those it lists.
    failures = {
        path: reason
        for path, reason in {**old_failures, **contents.failures}.items()
        if path not in kept_paths and (path in current or dataset.still_exists(path))
    }
    summary.num_removed, summary.num_relabelled = len(gone), _count_relabelled(existing, current)
    unchanged = existing is not None and not contents.embedded_paths and not gone and not summary.num_relabelled and failures == old_failures
    if not unchanged:
        old_labels = {path: existing.class_names[label] for path, label in zip(existing.paths, existing.labels)} if existing else {}
        old_rows = read_rows_in_blocks(cache_path) if existing else iter(())
        write_cache(
            cache_path,
            row_sources=(_rows_as_listed_now(rows, current, gone) for rows in itertools.chain(old_rows, journal.iter_rows(contents.parts))),
            all_paths=sorted(kept_paths),
            class_names=sorted({current[path].label if path in current else old_labels[path] for path in kept_paths}),
            failures=sorted(failures.items()),
            attributes={"extractor": identity["extractor"], "sampling": identity["sampling"]},
            num_frames=config.sampling.num_frames,
            feature_dim=int(identity["extractor"]["feature_dim"]),
            dtype=config.dtype,
            compression=config.compression,
        )
    if journal.folder.exists():
        journal.remove()


def _count_relabelled(existing: CacheIndex | None, current: dict[str, VideoEntry]) -> int:
    if existing is None:
        return 0
    return sum(
        1
        for path, label, group in zip(existing.paths, existing.labels, existing.groups)
        if path in current and (current[path].label, current[path].group) != (existing.class_names[label], group)
    )


def _rows_as_listed_now(rows: VideoRows, current: dict[str, VideoEntry], gone: set[str]) -> VideoRows:
    """Drop the rows of videos that are gone; take labels and groups from the dataset as found now."""
    keep = np.array([path not in gone for path in rows.paths], dtype=bool)
    arrays = {field.name: getattr(rows, field.name)[keep] for field in dataclasses.fields(rows) if isinstance(getattr(rows, field.name), np.ndarray)}
    kept = [position for position, kept_row in enumerate(keep) if kept_row]
    paths = [rows.paths[position] for position in kept]
    return VideoRows(
        **arrays,
        paths=paths,
        labels=[current[path].label if path in current else rows.labels[position] for path, position in zip(paths, kept)],
        groups=[current[path].group if path in current else rows.groups[position] for path, position in zip(paths, kept)],
    )
