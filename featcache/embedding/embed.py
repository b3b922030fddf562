"""Stage one: decode sampled frames of every video once, embed them with a frozen CNN, write the cache.

This module decides what to embed: the videos not cached with their current contents (fingerprints), after
adopting the finished shards of an interrupted run and dropping videos whose file is gone. An engine embeds
them (`engine.py` is what every engine takes and gives back): `local_engine.py` on this machine, `ray_engine.py`
on a cluster; both write immutable shards and commit the index as they go (`cache/`), so a crash loses little
and no byte is written twice. The cache is opened once, under its lock (`cache.writer.WritableCache`), and never
mixes settings (`cache/settings.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featcache.cache.describe import count_decoders
from featcache.cache.format import COMPACT_SUGGESTION_DEAD_SHARE, resolve_cache_path
from featcache.cache.index import IndexState, read_index_state
from featcache.cache.settings import describe_settings_difference, requested_settings
from featcache.cache.shards import read_shard_contents, read_video_decoders
from featcache.cache.writer import CacheWriter, WritableCache
from featcache.config import ENGINES, EmbedConfig
from featcache.embedding.engine import EmbedJob, Engine
from featcache.embedding.local_engine import LocalEngine
from featcache.embedding.ray_engine import RayEngine
from featcache.errors import CacheFormatError, CacheMismatchError, DiskWriteError
from featcache.video.find import VideoEntry, find_videos, storable_relative_path
from featcache.video.fingerprints import FileFingerprint, current_fingerprint


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
    cache_size_bytes: int = 0  # the index and its live shards
    num_removed: int = 0  # cached videos whose file is gone, dropped from the cache
    num_relabelled: int = 0  # cached videos whose label or group changed in the dataset
    num_changed: int = 0  # cached videos whose file changed (another fingerprint): embedded again
    num_resumed: int = 0  # videos taken from shards an interrupted run had finished
    num_dead_rows: int = 0  # rows in the shards no longer listed (`featcache compact` drops them)
    fingerprint_seconds: float = 0.0
    unreadable_parts: list[str] = field(default_factory=list)  # shards of an interrupted run that could not be read
    num_outside_root: int = 0  # CSV rows naming files outside the CSV's folder (--allow-outside-root)
    engine_workers: str = ""  # with --engine ray: the workers it ran (ray_cluster.ClusterPlan.describe)
    decoders: dict[str, int] = field(
        default_factory=dict
    )  # decoder -> videos embedded this run (describe.count_decoders)
    runtime: str = ""  # what ran the extractor (runtimes.py): "openvino", "keras (why)"; '' when nothing embedded

    @property
    def videos_per_second(self) -> float:
        return self.num_embedded / self.embedding_seconds if self.embedding_seconds > 0 else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.num_frames_embedded / self.embedding_seconds if self.embedding_seconds > 0 else 0.0

    @property
    def suggests_compact(self) -> bool:
        total = self.num_dead_rows + self.num_videos_in_cache
        return total > 0 and self.num_dead_rows / total >= COMPACT_SUGGESTION_DEAD_SHARE


def embed(
    video_source: Path,
    cache_path: Path,
    config: EmbedConfig = EmbedConfig(),
    overwrite: bool = False,
    progress: Callable[[EmbedProgress], None] | None = None,
    verbose: bool = False,
) -> EmbedSummary:
    """Embed every video of `video_source` not yet in `cache_path` (by content), adding it to the cache.

    video_source: a UCF101-layout folder or a CSV list (see `video.find.find_videos`).
    Resumes an interrupted run (its finished shards are adopted), re-embeds files whose contents changed,
    drops videos whose file is gone. Settings that differ from the cache's raise CacheMismatchError unless
    `overwrite`; a second embed on the same cache raises CacheLockedError. Videos that cannot be decoded
    are listed in the summary and the cache's `failures`, and never stop the run.
    A disk that fills up (or another OS write failure) is a DiskWriteError saying how many videos are kept.
    verbose: let the engine show its own logs (with the Ray engine: Ray's and its workers' output).
    """
    try:
        return _embed_under_lock(video_source, cache_path, config, overwrite, progress, verbose)
    except DiskWriteError as err:
        raise DiskWriteError(
            f"{err}: {_num_videos_kept(Path(cache_path))} videos embedded so far are kept; "
            f"{err.remedy} and re-run the same command",
            err.remedy,
        ) from err


def _num_videos_kept(cache_path: Path) -> int:
    """Videos the cache's index on disk lists (0 when there is none yet): what a failed run leaves."""
    try:
        return len(read_index_state(resolve_cache_path(cache_path)).videos)
    except (OSError, CacheFormatError):
        return 0


def _embed_under_lock(
    video_source: Path,
    cache_path: Path,
    config: EmbedConfig,
    overwrite: bool,
    progress: Callable[[EmbedProgress], None] | None,
    verbose: bool,
) -> EmbedSummary:
    started = time.perf_counter()
    cache_path = Path(cache_path)
    root, entries = find_videos(Path(video_source), allow_outside_root=config.allow_outside_root)
    cache_path.parent.mkdir(parents=True, exist_ok=True)  # a bad --out fails now, not after loading the model
    wanted = requested_settings(config)
    with WritableCache.open(cache_path, overwrite=overwrite, compression=config.compression) as cache:
        if cache.existing is not None:
            _refuse_other_settings(cache.existing.settings, wanted, cache_path.name)
        summary = EmbedSummary(cache_path, len(entries), 0, 0, 0, {}, 0.0)
        summary.num_outside_root = sum(1 for entry in entries if entry.is_outside_root)
        fingerprints = _fingerprints(entries, cache.existing, summary)
        orphans = _orphan_shards(cache, wanted, summary)
        plan = _plan(entries, cache.existing, orphans, fingerprints)
        engine = _ENGINES[config.engine](config) if plan.to_embed else None
        settings = cache.settings or (orphans[0].settings if orphans else None)
        if engine is not None and engine.settings_record is not None:
            if settings is not None:
                _refuse_other_settings(
                    settings, engine.settings_record, cache_path.name
                )  # now with the sha256 of weights the model fetched
            settings = settings or engine.settings_record
        if settings is None and engine is None:
            return _finish_summary(summary, started, None)  # nothing cached and nothing to embed: no cache file
        if (
            settings is not None
        ):  # else (a new cache on the Ray engine) the first embed worker's record opens the writer
            writer = cache.writer_for(settings)
            if _bring_index_up_to_date(writer, DatasetView(root, entries), orphans, fingerprints, plan, summary):
                writer.commit()
        if engine is not None:
            counter = _VideoCounter(summary, len(plan.to_embed), progress)
            job = EmbedJob(plan.to_embed, root, config, fingerprints, wanted, counter.video_done, verbose)
            embedding_started = time.perf_counter()
            try:
                outcome = engine.embed(job, cache)
            finally:
                summary.embedding_seconds = time.perf_counter() - embedding_started
            summary.engine_workers = outcome.workers
            summary.runtime = outcome.runtimes
            # A problem found at the start too, when the shard was there before the run, is said once.
            summary.unreadable_parts += [
                problem for problem in outcome.problems if problem not in summary.unreadable_parts
            ]
            if cache.writer is not None:
                summary.decoders = _decoders_used(cache, plan.to_embed, summary)
        return _finish_summary(summary, started, cache.writer.state if cache.writer else None)


# The engines by `--engine` name (config.ENGINES lists the same names for the CLI's choices).
_ENGINES: dict[str, Callable[[EmbedConfig], Engine]] = {"local": LocalEngine, "ray": RayEngine}
assert tuple(_ENGINES) == ENGINES, "config.ENGINES names the engines of this registry"


def _fingerprints(
    entries: list[VideoEntry], existing: IndexState | None, summary: EmbedSummary
) -> dict[str, FileFingerprint]:
    """Each video's content fingerprint; a file whose size and mtime the cache already knows is not read again."""
    fingerprint_started = time.perf_counter()
    known = (
        {path: FileFingerprint(record.fingerprint, record.file_mtime_ns) for path, record in existing.videos.items()}
        if existing
        else {}
    )
    fingerprints = {
        entry.relative_path: current_fingerprint(entry.path, known.get(entry.relative_path)) for entry in entries
    }
    summary.fingerprint_seconds = time.perf_counter() - fingerprint_started
    return fingerprints


class DatasetView:
    """The dataset as found now: its root and its videos."""

    def __init__(self, root: Path, entries: list[VideoEntry]) -> None:
        self.root = root
        self.entries = entries
        self.by_path = {entry.relative_path: entry for entry in entries}
        self._folder_listings: dict[str, set[str]] = {}

    def gone_from_disk(self, relative_paths: list[str]) -> list[str]:
        """Those of these paths (cached videos a CSV may not list now) whose file is no longer on disk.

        One directory listing per folder instead of a stat per video: on a cache of 7,272 videos this runs
        over the whole index on every incremental embed.
        """
        gone = []
        for relative_path in relative_paths:
            folder, _, name = relative_path.rpartition("/")
            if name not in self._folder_listing(folder):
                gone.append(relative_path)
        return gone

    def _folder_listing(self, folder: str) -> set[str]:
        if folder not in self._folder_listings:
            try:
                names = os.listdir(self.root / folder)
            except (FileNotFoundError, NotADirectoryError):
                names = []
            self._folder_listings[folder] = {storable_relative_path(name) for name in names}
        return self._folder_listings[folder]


def _refuse_other_settings(stored: dict, wanted: dict, source_name: str) -> None:
    difference = describe_settings_difference(stored, wanted)
    if difference:
        raise CacheMismatchError(
            f"{source_name} was embedded with other settings ({difference}); "
            "re-run with --overwrite to replace it, or choose another --out"
        )


@dataclass(frozen=True)
class _OrphanShard:
    """A complete shard the index does not list (a run that died before committing it): its videos are adopted
    instead of embedded again."""

    name: str
    settings: dict[str, Any]
    videos: list[tuple[str, str]]  # (path, fingerprint)


def _orphan_shards(cache: WritableCache, wanted: dict, summary: EmbedSummary) -> list[_OrphanShard]:
    """The unlisted shards an interrupted run finished, checked against the settings asked for; unreadable ones are
    reported in the summary (their videos are embedded again)."""
    orphans = []
    for name in cache.unlisted_shards():
        shard_path = cache.shard_folder / name
        try:
            contents = read_shard_contents(shard_path)
        except CacheFormatError as err:
            summary.unreadable_parts.append(str(err))
            continue
        _refuse_other_settings(contents.settings, wanted, f"{shard_path} (left by an interrupted embed)")
        orphans.append(_OrphanShard(name, contents.settings, list(zip(contents.paths, contents.fingerprints))))
    if cache.existing is None and orphans:
        # Without an index the first orphan's settings become the cache's; an orphan with others cannot join.
        orphans = [orphan for orphan in orphans if orphan.settings == orphans[0].settings]
    return orphans


@dataclass
class _Plan:
    to_embed: list[VideoEntry]
    changed: set[str]  # cached paths whose file has other contents now


def _plan(
    entries: list[VideoEntry],
    existing: IndexState | None,
    orphans: list[_OrphanShard],
    fingerprints: dict[str, FileFingerprint],
) -> _Plan:
    """Which videos need the model: not cached with their current contents, nor in an orphan shard."""
    live = existing.videos if existing else {}
    in_orphans = {video for orphan in orphans for video in orphan.videos}
    plan = _Plan([], set())
    for entry in entries:
        fingerprint = fingerprints[entry.relative_path].fingerprint
        record = live.get(entry.relative_path)
        if record is not None and record.fingerprint in (
            fingerprint,
            "",
        ):  # "": upgraded from format 1, never fingerprinted
            continue
        if (entry.relative_path, fingerprint) in in_orphans:
            continue
        plan.to_embed.append(entry)
        if record is not None:
            plan.changed.add(entry.relative_path)
    return plan


def _bring_index_up_to_date(
    writer: CacheWriter,
    dataset: DatasetView,
    orphans: list[_OrphanShard],
    fingerprints: dict[str, FileFingerprint],
    plan: _Plan,
    summary: EmbedSummary,
) -> bool:
    """Adopt finished orphan shards, drop changed and gone videos, take labels/groups/fingerprints from the dataset now.

    Videos whose file is gone (deleted, or its class folder renamed) leave the cache; videos still on disk
    but not listed this time (a CSV naming a subset) stay. A failure stands until the video embeds or its
    file is gone. Rows dropped here are only unlisted: shards are never rewritten. Returns whether
    anything changed (the index needs a commit).
    """
    state = writer.state
    current = dataset.by_path
    live_before = set(state.videos)

    def wanted_now(path: str, fingerprint: str) -> bool:
        known = fingerprints.get(path)
        record = state.videos.get(path)
        return (
            known is not None
            and known.fingerprint == fingerprint
            and not (record and record.fingerprint == fingerprint)
        )

    for orphan in orphans:
        summary.num_resumed += len(writer.adopt_shard(orphan.name, keep=wanted_now))
    writer.remove_videos(sorted(plan.changed))
    summary.num_changed = len(plan.changed)
    gone = dataset.gone_from_disk([path for path in state.videos if path not in current])
    writer.remove_videos(gone)
    summary.num_removed = len(gone)
    num_refingerprinted = 0
    for path, record in state.videos.items():
        entry = current.get(path)
        if entry is None:
            continue
        if path in live_before and (record.label, record.group) != (entry.label, entry.group):
            summary.num_relabelled += 1
        now = fingerprints[path]
        num_refingerprinted += (record.fingerprint, record.file_mtime_ns) != (now.fingerprint, now.mtime_ns)
        record.label, record.group = entry.label, entry.group
        record.fingerprint, record.file_mtime_ns = now.fingerprint, now.mtime_ns
    failures_before = dict(state.failures)
    failed_paths = [path for path in state.failures if path not in state.videos]
    failed_gone = set(dataset.gone_from_disk([path for path in failed_paths if path not in current]))
    state.failures = {path: state.failures[path] for path in failed_paths if path not in failed_gone}
    summary.num_already_cached = (
        sum(1 for entry in dataset.entries if entry.relative_path in state.videos) - summary.num_resumed
    )
    changes = (
        summary.num_resumed + summary.num_changed + summary.num_removed + summary.num_relabelled + num_refingerprinted
    )
    return bool(changes or orphans) or state.failures != failures_before  # unwanted orphans are deleted at the commit


@dataclass
class _VideoCounter:
    """Counts finished videos into the summary and reports progress: the same for every engine."""

    summary: EmbedSummary
    num_to_embed: int
    progress: Callable[[EmbedProgress], None] | None

    def video_done(self, path: str, num_frames: int, failure: str | None) -> None:
        if failure is None:
            self.summary.num_embedded += 1
            self.summary.num_frames_embedded += num_frames
        else:
            self.summary.failures[path] = failure
        if self.progress:
            num_failed = len(self.summary.failures)
            self.progress(
                EmbedProgress(
                    self.summary.num_embedded + num_failed,
                    self.num_to_embed,
                    num_failed,
                    self.summary.num_frames_embedded,
                )
            )


def _decoders_used(cache: WritableCache, embedded: list[VideoEntry], summary: EmbedSummary) -> dict[str, int]:
    """How the videos this run embedded were decoded, as their shards record it."""
    assert cache.writer is not None
    videos = cache.writer.state.videos
    records = [videos[entry.relative_path] for entry in embedded if entry.relative_path in videos]
    return count_decoders(read_video_decoders(cache.shard_folder, records).values())


def _finish_summary(summary: EmbedSummary, started: float, state: IndexState | None) -> EmbedSummary:
    summary.seconds = time.perf_counter() - started
    if state is not None:
        summary.num_videos_in_cache = len(state.videos)
        summary.num_dead_rows = state.num_dead_rows
        summary.cache_size_bytes = summary.cache_path.stat().st_size + sum(info.size for info in state.shards.values())
    return summary
