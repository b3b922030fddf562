"""Writing a cache: one process at a time, holding its lock, with the index read once.

    with WritableCache.open(cache_path, overwrite=False) as cache:   # lock, leftovers removed, index read
        cache.existing                      # the index to add to (IndexState), or None (new cache, or overwrite)
        cache.unlisted_shards()             # shard files no index lists: a killed run's finished shards
        writer = cache.writer_for(settings) # the one writer, opened once
        info = write_shard(cache.shard_folder, videos, dtype, settings)   # any process
        writer.adopt_shard(info)
        writer.commit()                     # the index replaced atomically

`WritableCache` is everything a writing command knows about the cache on disk, read under the lock; every writer
(`embed` on either engine, upgrade, compact, write_cache) goes through it. `CacheWriter.open` is the shorthand
for a writer of known settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

from featcache.cache.format import FORMAT_VERSION, refuse_newer_writer, resolve_cache_path, shard_folder_for
from featcache.cache.index import IndexState, VideoRecord, read_index_state, write_index_file
from featcache.cache.lock import CacheLock
from featcache.cache.shards import ShardInfo, read_shard_contents, unlisted_shard_names
from featcache.errors import CacheFormatError, CacheMismatchError
from featcache.failpoints import failpoint


class WritableCache:
    """A cache opened for writing: its lock held, what a killed writer left half-written removed, its index read.

    existing: the index to add to, or None for a new cache or with `overwrite` (the old index then stays on disk,
      readable, until the new one replaces it; its shards are deleted at that commit).
    """

    def __init__(
        self, path: Path, lock: CacheLock, on_disk: IndexState | None, overwrite: bool, compression: str
    ) -> None:
        self.path = path
        self.shard_folder = shard_folder_for(path)
        self._lock = lock
        self._on_disk = on_disk
        self._overwrite = overwrite
        self._compression = compression
        self.writer: CacheWriter | None = None

    @classmethod
    def open(cls, cache_path: Path, overwrite: bool = False, compression: str = "none") -> WritableCache:
        """Take the cache's lock (CacheLockedError when another process writes it) and read its index once.

        Raises CacheFormatError for a file that is not a format-2 cache, unless `overwrite` (it is replaced).
        compression: for a new cache; an existing cache keeps its own.
        """
        cache_path = resolve_cache_path(Path(cache_path))  # a symbolic link: write the real file, beside its shards
        lock = CacheLock(cache_path).__enter__()
        try:
            # Right after taking the lock, before any shard writer of this run starts: no writer is mid-file now.
            remove_temporary_files_of(cache_path)
            return cls(cache_path, lock, _index_on_disk(cache_path, overwrite), overwrite, compression)
        except BaseException:
            lock.__exit__(None, None, None)
            raise

    @property
    def existing(self) -> IndexState | None:
        return None if self._overwrite else self._on_disk

    @property
    def settings(self) -> dict[str, Any] | None:
        """The cache's settings record: the writer's, else the existing index's; None for a new cache."""
        if self.writer is not None:
            return self.writer.state.settings
        return self.existing.settings if self.existing else None

    @property
    def compression(self) -> str:
        return self.existing.compression if self.existing else self._compression

    def writer_for(self, settings: dict[str, Any], feature_dim: int | None = None) -> CacheWriter:
        """The cache's writer, opened with `settings` on the first call (on a new cache they become its record).

        feature_dim: default the record's extractor feature_dim.
        """
        if self.writer is None:
            if self.existing is not None:
                assert settings == self.existing.settings, "an existing cache is written with its own settings record"
                state = self.existing
            else:
                dimension = feature_dim if feature_dim is not None else int(settings["extractor"]["feature_dim"])
                state = IndexState(settings=settings, feature_dim=dimension, compression=self._compression)
            old_shards = set(self._on_disk.shards) if self._overwrite and self._on_disk else set()
            self.writer = CacheWriter(self.path, state, shards_to_delete=old_shards)
        return self.writer

    def unlisted_shards(self) -> list[str]:
        """Shard files that no index lists (neither the one on disk nor the writer's): a killed run's finished shards.

        With --overwrite the old index still lists its shards, and they stay until the new index replaces it.
        """
        listed = set(self._on_disk.shards) if self._on_disk else set()
        if self.writer is not None:
            listed |= self.writer.listed_shards()
        return unlisted_shard_names(self.shard_folder, listed)

    def close(self) -> None:
        self._lock.__exit__(None, None, None)

    def __enter__(self) -> WritableCache:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            if exc_type is not None and self.writer is not None:
                self.writer.discard_uncommitted()
        finally:
            self.close()


def _index_on_disk(cache_path: Path, overwrite: bool) -> IndexState | None:
    """The index at `cache_path` (None where there is none), or an error for a file that cannot be added to."""
    if not cache_path.exists():
        return None
    try:
        with h5py.File(cache_path, "r") as handle:
            format_version = handle.attrs.get("format_version")
            if not overwrite:  # replacing a newer featcache's cache is the user's explicit choice
                refuse_newer_writer(handle.attrs, cache_path)
    except OSError as err:
        if overwrite:
            return None
        raise CacheFormatError(
            f"{cache_path}: not an HDF5 file ({err}); choose another --out, or --overwrite to replace it"
        ) from err
    if format_version != FORMAT_VERSION:
        if overwrite:
            return None  # a format-1 cache is one file: the new index replaces it whole
        raise CacheFormatError(
            f"{cache_path}: a format-1 cache; convert it with `featcache upgrade {cache_path}` to add videos "
            "(or re-embed with --overwrite)"
        )
    return read_index_state(cache_path)


class CacheWriter:
    """The one writer of a format-2 cache: its index in memory until `commit`. Made by `WritableCache.writer_for`.

    with CacheWriter.open(cache_path, settings, feature_dim) as writer:   # shorthand: WritableCache.open + writer_for
        writer.adopt_shard(write_shard(writer.shard_folder, videos, dtype, settings))
        writer.commit()
    """

    def __init__(self, cache_path: Path, state: IndexState, shards_to_delete: set[str] | None = None) -> None:
        self.cache_path = Path(cache_path)
        self.shard_folder = shard_folder_for(self.cache_path)
        self.state = state
        self._shards_to_delete: set[str] = set(shards_to_delete or ())
        self._uncommitted: set[str] = set()
        self._owning_cache: WritableCache | None = None  # set by `open`: the writer then releases the lock

    @classmethod
    def open(
        cls,
        cache_path: Path,
        settings: dict[str, Any],
        feature_dim: int,
        compression: str = "none",
        overwrite: bool = False,
    ) -> CacheWriter:
        """Open the cache for writing (`WritableCache.open`) and its writer with `settings`;
        leaving the `with` releases it.

        Raises CacheLockedError when another process writes it, CacheFormatError for a format-1 file (unless
        `overwrite`), CacheMismatchError when an existing cache has another settings record.
        """
        cache = WritableCache.open(cache_path, overwrite=overwrite, compression=compression)
        try:
            if cache.existing is not None and cache.existing.settings != settings:
                raise CacheMismatchError(f"{cache_path} was written with other settings; pass overwrite to replace it")
            writer = cache.writer_for(settings, feature_dim)
        except BaseException:
            cache.close()
            raise
        writer._owning_cache = cache
        return writer

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self._owning_cache is not None:
            self._owning_cache.__exit__(exc_type, *exc_info)
        elif exc_type is not None:
            self.discard_uncommitted()

    def discard_uncommitted(self) -> None:
        """Delete the shards adopted since the last commit: a failed upgrade, compact or overwrite leaves the folder as
        it found it, and no orphan behind."""
        for name in self._uncommitted:
            (self.shard_folder / name).unlink(missing_ok=True)
        self._uncommitted.clear()

    def listed_shards(self) -> set[str]:
        """The shards this writer knows: live in its index, or to be deleted at the next commit."""
        return set(self.state.shards) | self._shards_to_delete

    def orphan_shards(self) -> list[str]:
        """Shard files in the folder this writer's index does not list (a run that died before committing them)."""
        return unlisted_shard_names(self.shard_folder, self.listed_shards())

    def adopt_shard(self, info: ShardInfo | str, keep: Callable[[str, str], bool] | None = None) -> list[str]:
        """List a complete shard's videos in the index (not yet committed); returns the paths adopted.

        info: the ShardInfo `write_shard` returned, or an orphan's file name (its checksum is then computed).
        keep(path, fingerprint): which of its videos to adopt (default all); a video adopted replaces a
        live one at the same path (that row becomes dead). A shard with no video kept is deleted at commit.
        Raises CacheMismatchError when the shard was written with other settings.
        """
        name = info if isinstance(info, str) else info.name
        contents = read_shard_contents(
            self.shard_folder / name, checksum=None if isinstance(info, str) else info.checksum
        )
        if contents.settings != self.state.settings:
            raise CacheMismatchError(
                f"{self.shard_folder / name}: written with other settings than {self.cache_path}; "
                "it cannot join this cache"
            )
        rows = [
            row for row, path in enumerate(contents.paths) if keep is None or keep(path, contents.fingerprints[row])
        ]
        adopted = [contents.paths[row] for row in rows]
        self.remove_videos(adopted)  # a video adopted replaces a live one at its path
        for row in rows:
            path = contents.paths[row]
            self.state.videos[path] = VideoRecord(
                path=path,
                label=contents.labels[row],
                group=contents.groups[row],
                fingerprint=contents.fingerprints[row],
                shard=name,
                shard_row=row,
                shard_start=int(contents.offsets[row]),
                length=int(contents.offsets[row + 1] - contents.offsets[row]),
                **{
                    key: contents.video_arrays[key][row].item()
                    for key in ("video_fps", "video_num_frames", "video_width", "video_height", "file_mtime_ns")
                },
            )
            self.state.failures.pop(path, None)
        if adopted:
            self.state.shards[name] = contents.info
            self._uncommitted.add(name)
            self._shards_to_delete.discard(name)
        else:
            self._shards_to_delete.add(name)
        return adopted

    def remove_videos(self, paths: list[str]) -> None:
        """Drop these videos from the index (their rows become dead; shards left without any go at commit)."""
        removed = [self.state.videos.pop(path) for path in paths if path in self.state.videos]
        if not removed:
            return
        still_used = {
            record.shard for record in self.state.videos.values()
        }  # once per call: O(videos), not O(videos) per path
        for shard in {record.shard for record in removed} - still_used:
            self.state.shards.pop(shard, None)
            self._shards_to_delete.add(shard)

    def commit(self) -> None:
        """Replace the index file with the state in memory, then delete shards no longer listed."""
        write_index_file(self.cache_path, self.state, before_replace=lambda temporary: failpoint("index-temp-written"))
        failpoint("index-replaced")
        for name in sorted(self._shards_to_delete - set(self.state.shards)):
            (self.shard_folder / name).unlink(missing_ok=True)
        self._shards_to_delete.clear()
        self._uncommitted.clear()


def remove_temporary_files_of(cache_path: Path) -> None:
    """Delete the half-written files a killed writer left (a shard's or the index's `.NAME.PID.tmp`).

    Only right after taking the cache's lock, before any shard writer of this run starts: no writer can be
    mid-file then.
    """
    shard_folder = shard_folder_for(cache_path)
    if shard_folder.exists():
        for temporary in shard_folder.glob(".*.tmp"):
            temporary.unlink(missing_ok=True)
    for temporary in cache_path.parent.glob(f".{cache_path.name}.*.tmp"):
        temporary.unlink(missing_ok=True)
