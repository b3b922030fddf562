"""Stage one: decode sampled frames of every video once, embed them with a frozen CNN, write the cache.

This module decides what to embed: the videos not cached with their current contents (fingerprints), after
adopting the finished shards of an interrupted run and dropping videos whose file is gone. An engine embeds
them: `local_engine.py` on this machine, `ray_engine.py` on a cluster; both write immutable shards and commit
the index as they go (`cache/`), so a crash loses little and no byte is written twice. A cache never mixes
settings (`settings.py`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from featcache.cache.format import COMPACT_SUGGESTION_DEAD_SHARE, SHARD_SUFFIX, shard_folder_for
from featcache.cache.index import CacheWriter, IndexState, is_format2_index, read_index_state, remove_temporary_files_of
from featcache.cache.lock import CacheLock
from featcache.cache.shards import read_shard_contents
from featcache.config import EmbedConfig
from featcache.errors import CacheFormatError, CacheMismatchError
from featcache.video.fingerprints import FileFingerprint, current_fingerprint
from featcache.embedding.local_engine import build_extractor, embed_into_shards
from featcache.embedding.resources import check_embed_memory
from featcache.cache.settings import describe_settings_difference, requested_settings, settings_record
from featcache.video.find import VideoEntry, find_videos, storable_relative_path

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
) -> EmbedSummary:
    """Embed every video of `video_source` not yet in `cache_path` (by content), adding it to the cache.

    video_source: a UCF101-layout folder or a CSV list (see `videos.find_videos`).
    Resumes an interrupted run (its finished shards are adopted), re-embeds files whose contents changed,
    drops videos whose file is gone. Settings that differ from the cache's raise CacheMismatchError unless
    `overwrite`; a second embed on the same cache raises CacheLockedError. Videos that cannot be decoded
    are listed in the summary and the cache's `failures`, and never stop the run.
    """
    started = time.perf_counter()
    cache_path = Path(cache_path)
    root, entries = find_videos(Path(video_source), allow_outside_root=config.allow_outside_root)
    cache_path.parent.mkdir(parents=True, exist_ok=True)  # a bad --out fails now, not after loading the model
    wanted = requested_settings(config)
    with CacheLock(cache_path) as lock:
        existing = _existing_state(cache_path, overwrite, wanted)
        summary = EmbedSummary(cache_path, len(entries), 0, 0, 0, {}, 0.0)
        summary.num_outside_root = sum(1 for entry in entries if entry.is_outside_root)
        fingerprint_started = time.perf_counter()
        known = {path: FileFingerprint(record.fingerprint, record.file_mtime_ns) for path, record in existing.videos.items()} if existing else {}
        fingerprints = {entry.relative_path: current_fingerprint(entry.path, known.get(entry.relative_path)) for entry in entries}
        summary.fingerprint_seconds = time.perf_counter() - fingerprint_started
        orphans = _orphan_shards(cache_path, existing, wanted, summary)
        settings = existing.settings if existing else (orphans[0][1] if orphans else None)
        plan = _plan(entries, existing, orphans, fingerprints)
        extractor = None
        if plan.to_embed and config.engine == "local":
            check_embed_memory(config, config.num_decode_workers or os.cpu_count() or 1)
            extractor = build_extractor(config)
            loaded = settings_record(extractor.provenance, config.sampling, config.dtype)
            if settings is not None:
                _refuse_other_settings(settings, loaded, cache_path.name)  # now with the sha256 of weights the model fetched
            settings = settings or loaded
        elif plan.to_embed:
            from featcache.embedding.ray_cluster import import_ray

            import_ray()  # said before anything else starts
        elif settings is None:
            return _finish_summary(summary, started, None)  # nothing cached and nothing to embed: no cache file
        cache = CacheToWrite(
            cache_path, existing.compression if existing else config.compression, wanted,
            lambda record: CacheWriter.open(
                cache_path, record, int(record["extractor"]["feature_dim"]), config.compression, overwrite=overwrite and cache_path.exists(), lock=lock, state=existing,
                remove_temporary_files=False,  # done by CacheToWrite: Ray workers may be writing shards when it opens
            ),
        )  # fmt: skip
        with cache:
            if settings is not None:
                writer = cache.writer_for(settings)
                if _bring_index_up_to_date(writer, DatasetView(root, entries), orphans, fingerprints, plan, summary):
                    writer.commit()
            if plan.to_embed:
                embedding_started = time.perf_counter()
                try:
                    counter = _VideoCounter(summary, len(plan.to_embed), progress)
                    if config.engine == "ray":
                        _embed_on_ray(plan.to_embed, root, config, cache, fingerprints, counter)
                    else:
                        embed_into_shards(plan.to_embed, extractor, config, cache.writer, fingerprints, counter.video_done)
                finally:
                    summary.embedding_seconds = time.perf_counter() - embedding_started
            return _finish_summary(summary, started, cache.writer.state if cache.writer else None)


class CacheToWrite:
    """The cache an embed writes, whose writer opens once its settings record is known.

    That is at once when the cache, a shard of an interrupted run or the local engine's model gives the record.
    The Ray engine's driver builds no model: on a new cache the first embed worker's record becomes the cache's.
    Leaving the `with` block closes the writer as `CacheWriter` does (on an error, its uncommitted shards go).
    Made right after taking the cache's lock: it deletes what a killed writer left half-written then, before
    any worker of this run starts a shard.
    """

    def __init__(self, cache_path: Path, compression: str, requested: dict[str, Any], open_writer: Callable[[dict[str, Any]], CacheWriter]) -> None:
        remove_temporary_files_of(cache_path)
        self.cache_path = cache_path
        self.shard_folder = shard_folder_for(cache_path)
        self.compression = compression
        self.requested = requested  # `requested_settings`: what a worker's model must match when the cache has no record yet
        self._open_writer = open_writer
        self.writer: CacheWriter | None = None

    @property
    def settings(self) -> dict[str, Any] | None:
        return self.writer.state.settings if self.writer else None

    def writer_for(self, settings: dict[str, Any]) -> CacheWriter:
        """The writer, opened with `settings` on the first call."""
        if self.writer is None:
            self.writer = self._open_writer(settings)
        return self.writer

    def unlisted_shards(self) -> list[str]:
        """Shard files no index lists: the writer's orphans, or before it opens, those the cache on disk does not
        list (with --overwrite the old index still lists its shards, and they stay until the new one replaces it)."""
        if self.writer is not None:
            return self.writer.orphan_shards()
        listed = _listed_shards(self.cache_path)
        return sorted(path.name for path in self.shard_folder.glob("*" + SHARD_SUFFIX) if path.name not in listed)

    def __enter__(self) -> "CacheToWrite":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.writer is not None:
            self.writer.__exit__(*exc_info)


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


def _existing_state(cache_path: Path, overwrite: bool, wanted: dict) -> IndexState | None:
    """The cache's index when there is one to add to; raises for a format-1 cache or other settings."""
    if overwrite or not cache_path.exists():
        return None
    try:
        format2 = is_format2_index(cache_path)
    except OSError as err:
        raise CacheFormatError(f"{cache_path}: not an HDF5 file ({err}); choose another --out, or --overwrite to replace it") from err
    if not format2:
        raise CacheFormatError(f"{cache_path}: a format-1 cache; convert it with `featcache upgrade {cache_path}` to add videos (or re-embed with --overwrite)")
    existing = read_index_state(cache_path)
    _refuse_other_settings(existing.settings, wanted, cache_path.name)
    return existing


def _refuse_other_settings(stored: dict, wanted: dict, source_name: str) -> None:
    difference = describe_settings_difference(stored, wanted)
    if difference:
        raise CacheMismatchError(
            f"{source_name} was embedded with other settings ({difference}); re-run with --overwrite to replace it, or choose another --out"
        )


def _orphan_shards(cache_path: Path, existing: IndexState | None, wanted: dict, summary: EmbedSummary) -> list[tuple[str, dict, list[tuple[str, str]]]]:
    """Complete shards the index does not list (a run that died before committing them): (name, settings, [(path, fingerprint)]).

    These are how an interrupted run resumes: their videos are adopted instead of embedded again.
    """
    folder = cache_path.with_name(cache_path.name + ".shards")
    if not folder.exists():
        return []
    listed = set(existing.shards) if existing else _listed_shards(cache_path)
    orphans = []
    for shard_path in sorted(folder.glob("*.h5")):
        if shard_path.name in listed:
            continue
        try:
            contents = read_shard_contents(shard_path)
        except CacheFormatError as err:
            summary.unreadable_parts.append(str(err))
            continue
        _refuse_other_settings(contents.settings, wanted, f"{shard_path} (left by an interrupted embed)")
        orphans.append((shard_path.name, contents.settings, list(zip(contents.paths, contents.fingerprints))))
    if existing is None and orphans:
        # Without an index the first orphan's settings become the cache's; an orphan with others cannot join.
        orphans = [orphan for orphan in orphans if orphan[1] == orphans[0][1]]
    return orphans


def _listed_shards(cache_path: Path) -> set[str]:
    """Shards an existing (possibly replaced by --overwrite) index lists: not orphans, whatever happens to them."""
    if cache_path.exists() and is_format2_index(cache_path):
        return set(read_index_state(cache_path).shards)
    return set()


@dataclass
class _Plan:
    to_embed: list[VideoEntry]
    changed: set[str]  # cached paths whose file has other contents now


def _plan(entries: list[VideoEntry], existing: IndexState | None, orphans: list, fingerprints: dict[str, FileFingerprint]) -> _Plan:
    """Which videos need the model: not cached with their current contents, nor in an orphan shard."""
    live = existing.videos if existing else {}
    in_orphans = {(path, fingerprint) for _, _, rows in orphans for path, fingerprint in rows}
    plan = _Plan([], set())
    for entry in entries:
        fingerprint = fingerprints[entry.relative_path].fingerprint
        record = live.get(entry.relative_path)
        if record is not None and record.fingerprint in (fingerprint, ""):  # "": upgraded from format 1, never fingerprinted
            continue
        if (entry.relative_path, fingerprint) in in_orphans:
            continue
        plan.to_embed.append(entry)
        if record is not None:
            plan.changed.add(entry.relative_path)
    return plan


def _bring_index_up_to_date(
    writer: CacheWriter, dataset: DatasetView, orphans: list, fingerprints: dict[str, FileFingerprint], plan: _Plan, summary: EmbedSummary
) -> None:
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
        return known is not None and known.fingerprint == fingerprint and not (record and record.fingerprint == fingerprint)

    for name, _, _ in orphans:
        summary.num_resumed += len(writer.adopt_shard(name, keep=wanted_now))
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
    summary.num_already_cached = sum(1 for entry in dataset.entries if entry.relative_path in state.videos) - summary.num_resumed
    changes = summary.num_resumed + summary.num_changed + summary.num_removed + summary.num_relabelled + num_refingerprinted
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
            self.progress(EmbedProgress(self.summary.num_embedded + num_failed, self.num_to_embed, num_failed, self.summary.num_frames_embedded))


def _embed_on_ray(
    to_embed: list[VideoEntry], root: Path, config: EmbedConfig, cache: CacheToWrite, fingerprints: dict[str, FileFingerprint], counter: _VideoCounter
) -> None:
    """The Ray engine (`ray_engine.py`)."""
    from featcache.embedding.ray_engine import embed_with_ray

    plan, problems = embed_with_ray(to_embed, root, config, cache, fingerprints, counter.video_done)
    counter.summary.engine_workers = plan
    for problem in problems:
        if problem not in counter.summary.unreadable_parts:  # found at the start too, when it was there before the run
            counter.summary.unreadable_parts.append(problem)


def _finish_summary(summary: EmbedSummary, started: float, state: IndexState | None) -> EmbedSummary:
    summary.seconds = time.perf_counter() - started
    if state is not None:
        summary.num_videos_in_cache = len(state.videos)
        summary.num_dead_rows = state.num_dead_rows
        summary.cache_size_bytes = summary.cache_path.stat().st_size + sum(info.size for info in state.shards.values())
    return summary
