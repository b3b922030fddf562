"""The index file `CACHE.h5`: which shards are live, which of their rows are live, in which order.

The index is small (per-video facts, no features) and only ever replaced whole (`files.write_atomically`),
so removing or re-embedding a video never rewrites a shard: its row just stops being listed (dead).
`CacheWriter` is the one writer (it holds the cache's lock); `read_index_state` is for everyone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from featcache.version import __version__
from featcache.files import write_atomically
from featcache.cache.format import (
    FAILURE_DTYPE,
    FORMAT_VERSION,
    FRAME_DATASETS,
    SHARD_SUFFIX,
    SHARD_TABLE_DTYPE,
    STRING_DTYPE,
    VIDEO_DATASETS,
    decode_strings,
    shard_folder_for,
)
from featcache.cache.lock import CacheLock
from featcache.cache.shards import ShardInfo, read_shard_contents
from featcache.errors import CacheFormatError, CacheMismatchError
from featcache.failpoints import failpoint


@dataclass
class VideoRecord:
    """One live video: its facts and where its frames are (shard name, row in it, first frame, length)."""

    path: str
    label: str
    group: str
    fingerprint: str
    shard: str
    shard_row: int
    shard_start: int
    length: int
    video_fps: float
    video_num_frames: int
    video_width: int
    video_height: int
    file_mtime_ns: int = 0


@dataclass
class IndexState:
    """An index in memory. videos: path -> record; shards: name -> info (live shards only)."""

    settings: dict[str, Any]
    feature_dim: int
    compression: str = "none"
    videos: dict[str, VideoRecord] = field(default_factory=dict)
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def sorted_records(self) -> list[VideoRecord]:
        # Rows in the order shards were adopted, then by row within a shard, so each shard's live rows form one
        # block of the index and the virtual datasets need a mapping per block, not per video (measured: 13.4 s
        # vs 0.2 s to write the index of 7,272 videos whose paths interleave across shards). `embed` writes
        # videos in path order, so a fresh cache is in path order however the run was interrupted.
        position = {name: number for number, name in enumerate(self.shards)}
        return sorted(self.videos.values(), key=lambda record: (position[record.shard], record.shard_row))

    @property
    def num_dead_rows(self) -> int:
        return sum(info.num_videos for info in self.shards.values()) - len(self.videos)

    @property
    def num_shard_rows(self) -> int:
        return sum(info.num_videos for info in self.shards.values())


def is_format2_index(cache_path: Path) -> bool:
    with h5py.File(cache_path, "r") as handle:
        return handle.attrs.get("format_version") == FORMAT_VERSION


def _is_readable_format2(cache_path: Path) -> bool:
    try:
        return is_format2_index(cache_path)
    except OSError:
        return False


def read_index_state(cache_path: Path) -> IndexState:
    """Read a format-2 index file (no shard is opened)."""
    cache_path = Path(cache_path)
    with h5py.File(cache_path, "r") as handle:
        if handle.attrs.get("format_version") != FORMAT_VERSION:
            raise CacheFormatError(f"{cache_path}: not a featcache cache of format {FORMAT_VERSION}")
        if handle.attrs.get("self_contained", False):
            raise CacheFormatError(
                f"{cache_path} is a self-contained export (`featcache export`): train, evaluate, predict and info read it, "
                "but it is not added to, compacted or verified; embed into the cache it was exported from"
            )
        shard_table = handle["shards"][()]
        shard_names = decode_strings(shard_table["name"])
        shards = {
            name: ShardInfo(name, int(row["size"]), decode_strings(np.array([row["checksum"]]))[0], int(row["num_videos"]), int(row["num_frames"]))
            for name, row in zip(shard_names, shard_table)
        }
        class_names = json.loads(handle.attrs["class_names"])
        paths = decode_strings(handle["paths"][()])
        # Plain Python lists first: indexing numpy arrays element by element costs ~10x more per video,
        # and this runs on every embed, however few videos it adds.
        columns = {name: handle[name][()].tolist() for name in ("labels", "shard_ids", "shard_rows", "shard_starts", "file_mtime_ns", *VIDEO_DATASETS)}
        groups, fingerprints = decode_strings(handle["groups"][()]), decode_strings(handle["fingerprints"][()])
        videos = {
            path: VideoRecord(path, class_names[label], group, fingerprint, shard_names[shard_id], *numbers)
            for path, label, group, fingerprint, shard_id, *numbers in zip(
                paths, columns["labels"], groups, fingerprints, columns["shard_ids"], columns["shard_rows"], columns["shard_starts"], columns["lengths"],
                columns["video_fps"], columns["video_num_frames"], columns["video_width"], columns["video_height"], columns["file_mtime_ns"],
            )
        }
        failures = handle["failures"][()]
        return IndexState(
            settings=json.loads(handle.attrs["settings"]),
            feature_dim=int(handle.attrs["feature_dim"]),
            compression=str(handle.attrs.get("compression", "none")),
            videos=videos,
            shards=shards,
            failures=dict(zip(decode_strings(failures["path"]), decode_strings(failures["reason"]))),
            created=str(handle.attrs.get("created", "")),
        )


def write_index_file(cache_path: Path, state: IndexState, before_replace: Callable[[], None] | None = None) -> None:
    """Replace the index at `cache_path` atomically with `state` (per-frame arrays as virtual datasets)."""
    write_atomically(Path(cache_path), lambda temporary: _write_index(temporary, Path(cache_path), state), before_replace)


def _write_index(file_path: Path, cache_path: Path, state: IndexState) -> None:
    records = state.sorted_records()
    used = {record.shard for record in records}
    live_shards = [name for name in state.shards if name in used]  # adoption order, as the rows
    shard_id = {name: position for position, name in enumerate(live_shards)}
    class_names = sorted({record.label for record in records})
    lengths = np.array([record.length for record in records], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    dtype = state.settings["dtype"]
    with h5py.File(file_path, "w") as handle:
        _write_frame_datasets(handle, cache_path, state, records, offsets, dtype)
        handle.create_dataset("offsets", data=offsets)
        class_number = {name: number for number, name in enumerate(class_names)}
        handle.create_dataset("labels", data=np.array([class_number[record.label] for record in records], dtype=np.int32))
        for name in ("path", "group", "fingerprint"):
            handle.create_dataset(name + "s", data=np.array([getattr(record, name) for record in records], dtype=object), dtype=STRING_DTYPE)
        handle.create_dataset("lengths", data=lengths.astype(np.int32))
        for name in ("video_fps", "video_num_frames", "video_width", "video_height"):
            handle.create_dataset(name, data=np.array([getattr(record, name) for record in records], dtype=VIDEO_DATASETS[name]))
        handle.create_dataset("shard_ids", data=np.array([shard_id[record.shard] for record in records], dtype=np.int32))
        handle.create_dataset("shard_rows", data=np.array([record.shard_row for record in records], dtype=np.int32))
        handle.create_dataset("shard_starts", data=np.array([record.shard_start for record in records], dtype=np.int64))
        handle.create_dataset("file_mtime_ns", data=np.array([record.file_mtime_ns for record in records], dtype=np.int64))
        table = [dataclasses.astuple(state.shards[name]) for name in live_shards]
        handle.create_dataset("shards", data=np.array(table, dtype=SHARD_TABLE_DTYPE))
        handle.create_dataset("failures", data=np.array(sorted(state.failures.items()), dtype=FAILURE_DTYPE))
        handle.attrs["class_names"] = json.dumps(class_names)
        handle.attrs["settings"] = json.dumps(state.settings, sort_keys=True)
        # Also as separate attributes, as in format 1, for plain-h5py readers.
        handle.attrs["extractor"] = json.dumps(state.settings["extractor"], sort_keys=True)
        handle.attrs["sampling"] = json.dumps(state.settings["sampling"], sort_keys=True)
        handle.attrs["dtype"] = dtype
        handle.attrs["feature_dim"] = state.feature_dim
        handle.attrs["compression"] = state.compression
        handle.attrs["featcache_version"] = __version__
        handle.attrs["created"] = state.created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        handle.attrs["format_version"] = FORMAT_VERSION


def _write_frame_datasets(handle: h5py.File, cache_path: Path, state: IndexState, records: list[VideoRecord], offsets: np.ndarray, dtype: str) -> None:
    """`features`, `frame_indices`, `timestamps_ms` as virtual datasets over the shards' live rows.

    Source files are named relative to the index (`CACHE.h5.shards/<name>`): HDF5 looks for a relative
    source next to the virtual dataset's file, so the cache folder can be moved or copied whole.
    The mappings go through h5py's low-level API (the same calls `h5py.VirtualLayout` makes): its
    high-level sources deep-copy themselves on every slice, which made this half of an incremental
    embed's fixed cost on a cache of 7,272 videos in 57 shards.
    """
    total_frames = int(offsets[-1])
    shapes = {"features": ((total_frames, state.feature_dim), dtype), **{name: ((total_frames,), frame_dtype) for name, frame_dtype in FRAME_DATASETS.items()}}
    folder_name = shard_folder_for(cache_path).name
    runs = _contiguous_runs(records, offsets)
    for name, (shape, dataset_dtype) in shapes.items():
        if total_frames == 0:
            handle.create_dataset(name, shape=shape, dtype=dataset_dtype)
            continue
        mappings = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        mappings.set_layout(h5py.h5d.VIRTUAL)
        virtual_space = h5py.h5s.create_simple(shape)
        trailing = shape[1:]
        for shard, shard_start, index_start, count in runs:
            source_space = h5py.h5s.create_simple((state.shards[shard].num_frames, *trailing))
            source_space.select_hyperslab((shard_start, *(0 for _ in trailing)), (count, *trailing))
            virtual_space.select_hyperslab((index_start, *(0 for _ in trailing)), (count, *trailing))
            mappings.set_virtual(virtual_space, f"{folder_name}/{shard}".encode(), name.encode(), source_space)
        type_id = h5py.h5t.py_create(np.dtype(dataset_dtype), logical=True)
        h5py.h5d.create(handle.id, name.encode(), type_id, h5py.h5s.create_simple(shape), dcpl=mappings)


def _contiguous_runs(records: list[VideoRecord], offsets: np.ndarray) -> list[tuple[str, int, int, int]]:
    """(shard, first frame in shard, first frame in index, frame count), merging neighbours: few mappings."""
    runs: list[list[Any]] = []
    for record, index_start in zip(records, offsets[:-1]):
        if runs and runs[-1][0] == record.shard and runs[-1][1] + runs[-1][3] == record.shard_start:
            runs[-1][3] += record.length
        else:
            runs.append([record.shard, record.shard_start, int(index_start), record.length])
    return [tuple(run) for run in runs if run[3] > 0]  # type: ignore[misc]


class CacheWriter:
    """The one writer of a format-2 cache: holds its lock and its index in memory until `commit`.

    with CacheWriter.open(cache_path, settings, feature_dim) as writer:
        info = write_shard(writer.shard_folder, videos, dtype, settings)   # any process
        writer.adopt_shard(info)                                           # the writer
        writer.commit()                                                    # index replaced atomically
    """

    def __init__(self, cache_path: Path, state: IndexState, lock: CacheLock) -> None:
        self.cache_path = Path(cache_path)
        self.shard_folder = shard_folder_for(self.cache_path)
        self.state = state
        self._lock = lock
        self._shards_to_delete: set[str] = set()
        self._uncommitted: set[str] = set()

    @classmethod
    def open(
        cls,
        cache_path: Path,
        settings: dict[str, Any],
        feature_dim: int,
        compression: str = "none",
        overwrite: bool = False,
        lock: CacheLock | None = None,
        state: IndexState | None = None,
        remove_temporary_files: bool = True,
    ) -> "CacheWriter":
        """Lock the cache and load its index (an empty one if none, or if `overwrite`: old shards go at commit).

        lock: a CacheLock the caller already holds (the writer releases it on close).
        state: the index the caller read while holding `lock` (not read again: on a big cache that is most
          of an incremental embed's fixed cost).
        remove_temporary_files: False when the caller did it (`remove_temporary_files`) right after taking the
          lock, and Ray workers may be writing shards now (a writer opened at the first worker's shard).
        Raises CacheLockedError when another process writes it, CacheFormatError for a format-1 file.
        """
        cache_path = Path(cache_path)
        lock = lock or CacheLock(cache_path).__enter__()
        try:
            already_read = state
            state = IndexState(settings=settings, feature_dim=feature_dim, compression=compression)
            shards_to_delete: set[str] = set()
            if cache_path.exists() and overwrite:
                # The old cache stays readable until the new index replaces it; then its shards go.
                shards_to_delete = set(read_index_state(cache_path).shards) if _is_readable_format2(cache_path) else set()
            elif already_read is not None:
                state = already_read
            elif cache_path.exists():
                if not is_format2_index(cache_path):
                    raise CacheFormatError(f"{cache_path}: a format-1 cache; convert it first with `featcache upgrade {cache_path}` (or use --overwrite)")
                state = read_index_state(cache_path)
            writer = cls(cache_path, state, lock)
            writer._shards_to_delete = shards_to_delete
            if remove_temporary_files:
                remove_temporary_files_of(cache_path)
            return writer
        except BaseException:
            lock.__exit__(None, None, None)
            raise

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            if exc_type is not None:
                # Shards this writer adopted but never committed would be orphans; a failed upgrade,
                # compact or overwrite must leave the folder as it found it.
                for name in self._uncommitted:
                    (self.shard_folder / name).unlink(missing_ok=True)
        finally:
            self.close()

    def close(self) -> None:
        self._lock.__exit__(None, None, None)

    def orphan_shards(self) -> list[str]:
        """Shard files in the folder that the index does not list (a run that died before committing them)."""
        if not self.shard_folder.exists():
            return []
        listed = set(self.state.shards) | self._shards_to_delete
        return sorted(path.name for path in self.shard_folder.glob("*" + SHARD_SUFFIX) if path.name not in listed)

    def adopt_shard(self, info: ShardInfo | str, keep: Callable[[str, str], bool] | None = None) -> list[str]:
        """List a complete shard's videos in the index (not yet committed); returns the paths adopted.

        info: the ShardInfo `write_shard` returned, or an orphan's file name (its checksum is then computed).
        keep(path, fingerprint): which of its videos to adopt (default all); a video adopted replaces a
        live one at the same path (that row becomes dead). A shard with no video kept is deleted at commit.
        Raises CacheMismatchError when the shard was written with other settings.
        """
        name = info if isinstance(info, str) else info.name
        contents = read_shard_contents(self.shard_folder / name, checksum=None if isinstance(info, str) else info.checksum)
        if contents.settings != self.state.settings:
            raise CacheMismatchError(f"{self.shard_folder / name}: written with other settings than {self.cache_path}; it cannot join this cache")
        rows = [row for row, path in enumerate(contents.paths) if keep is None or keep(path, contents.fingerprints[row])]
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
                **{key: contents.video_arrays[key][row].item() for key in ("video_fps", "video_num_frames", "video_width", "video_height", "file_mtime_ns")},
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
        still_used = {record.shard for record in self.state.videos.values()}  # once per call: O(videos), not O(videos) per path
        for shard in {record.shard for record in removed} - still_used:
            self.state.shards.pop(shard, None)
            self._shards_to_delete.add(shard)

    def commit(self) -> None:
        """Replace the index file with the state in memory, then delete shards no longer listed."""
        write_index_file(self.cache_path, self.state, before_replace=lambda: failpoint("index-temp-written"))
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
