"""Reading a cache of either format: `open_cache` once, then read sequences or T frames per video.

cache = open_cache("CACHE.h5")                 # index + settings; checks every shard exists, whole size
with cache.reader() as reader:                # open inside the process that reads (h5py handles don't fork)
    sequences = reader.read_sequences(rows)   # list of float32 (length_i, D): every stored frame
    batch = reader.read(rows, num_frames=T)   # float32 (n, T, D): uniform over each video, zero after its length
    batch = reader.read_frames(rows, positions)  # float32 (n, T, D): the stored frames at these positions
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from featcache.cache import format1
from featcache.cache.format import (
    FORMAT_VERSION,
    FRAME_DATASETS,
    CacheIndex,
    decode_strings,
    default_num_frames,
    refuse_newer_writer,
    shard_folder_for,
)
from featcache.cache.index import IndexState, read_index_state
from featcache.cache.integrity import identity_problem, needs_whole_verification, whole_checksum_problem
from featcache.errors import CacheFormatError, ShardDamagedError

CachePath = str | Path
# What h5py raises reading a damaged file: OSError for a failed checksum or read, KeyError/ValueError/RuntimeError
# when its metadata (object headers, chunk indexes) is damaged.
HDF5_READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError)


def uniform_positions(length: int, num_frames: int) -> np.ndarray:
    """int64 positions of `num_frames` stored frames spread evenly over `length` (all of them if fewer).

    First and last stored frame included, as `--sampling uniform` does over a video's frames.
    """
    if length <= num_frames:
        return np.arange(length, dtype=np.int64)
    return np.round(np.linspace(0, length - 1, num_frames)).astype(np.int64)


@dataclass(frozen=True)
class Cache:
    """A cache opened once: its index (`CacheIndex`), settings, and where each video's frames are.

    Accepted by train/evaluate/compare wherever a cache path is, so one run reads the index once.
    """

    path: Path
    index: CacheIndex
    format_version: int
    # Format 2 only: per video, the shard file and the first frame in it.
    shard_paths: list[Path] = field(default_factory=list)
    shard_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    state: IndexState | None = None

    @property
    def settings(self) -> dict:
        return self.index.settings

    def reader(self) -> CacheReader:
        return CacheReader(self)


def open_cache(cache: CachePath | Cache) -> Cache:
    """Open a cache of format 1 or 2 (a Cache is returned as is); raises CacheFormatError naming what is wrong."""
    if isinstance(cache, Cache):
        return cache
    path = Path(cache)
    version = _format_version(path)
    if version == 1:
        return Cache(path=path, index=format1.read_cache_index(path), format_version=1)
    if _is_self_contained(path):
        return _open_self_contained(path)
    state = read_index_state(path)
    if missing_shards(path, state):
        # A `compact` (or embed) may have replaced the index and deleted its old shards between our reading the
        # index and looking for its shards: the index read again lists the new ones. Only a shard still missing
        # then is really gone.
        state = read_index_state(path)
    return cache_from_index_state(path, state)


def _is_self_contained(path: Path) -> bool:
    with h5py.File(path, "r") as handle:
        return bool(handle.attrs.get("self_contained", False))


def _open_self_contained(path: Path) -> Cache:
    """A `featcache export` file: the documented layout with real datasets,
    read as a cache whose one "shard" is itself."""
    with h5py.File(path, "r") as handle:
        settings = json.loads(handle.attrs["settings"])
        offsets = handle["offsets"][()]
        lengths = handle["lengths"][()].astype(np.int32)
        failures = handle["failures"][()]
        index = CacheIndex(
            path=path,
            class_names=json.loads(handle.attrs["class_names"]),
            labels=handle["labels"][()].astype(np.int32),
            lengths=lengths,
            paths=decode_strings(handle["paths"][()]),
            groups=decode_strings(handle["groups"][()]),
            num_frames=default_num_frames(settings["sampling"], lengths),
            feature_dim=int(handle.attrs["feature_dim"]),
            dtype=settings["dtype"],
            extractor=settings["extractor"],
            sampling=settings["sampling"],
            failures=sorted(zip(decode_strings(failures["path"]), decode_strings(failures["reason"]))),
            fingerprints=decode_strings(handle["fingerprints"][()]),
            format_version=FORMAT_VERSION,
        )
    return Cache(
        path=path,
        index=index,
        format_version=FORMAT_VERSION,
        shard_paths=[path] * index.num_videos,
        shard_starts=offsets[:-1].astype(np.int64),
    )


def _format_version(path: Path) -> int:
    if not path.exists():
        raise CacheFormatError(f"{path}: no such cache file; write one with `featcache embed`")
    if path.is_dir():
        raise CacheFormatError(f"{path} is a folder; pass the cache file written by `featcache embed --out CACHE.h5`")
    try:
        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("format_version")
            refuse_newer_writer(handle.attrs, path)
    except OSError as err:
        # h5py's message is a page of HDF5 internals (errno, buffer addresses); --verbose shows it as the cause.
        raise CacheFormatError(f"{path}: not an HDF5 file; expected a cache written by `featcache embed`") from err
    if version not in (1, FORMAT_VERSION):
        raise CacheFormatError(
            f"{path}: not a featcache cache (format_version {version!r}); write one with `featcache embed`"
        )
    return int(version)


def missing_shards(cache_path: Path, state: IndexState) -> list[str]:
    """The live shards of `state` whose file is not in the shard folder."""
    folder = shard_folder_for(cache_path)
    return [name for name in state.shards if not (folder / name).exists()]


def check_shards_present(cache_path: Path, state: IndexState) -> None:
    """Every live shard exists with the size the index recorded: a missing source must never read as zeros."""
    folder = shard_folder_for(cache_path)
    for info in state.shards.values():
        shard_path = folder / info.name
        if not shard_path.exists():
            raise CacheFormatError(
                f"{cache_path}: shard {shard_path} is missing; "
                f"a cache is {cache_path.name} plus the folder {folder.name}/ (copy or move them together), "
                "or re-embed with `featcache embed --overwrite`"
            )
        size = shard_path.stat().st_size
        if size != info.size:
            raise CacheFormatError(
                f"{cache_path}: shard {shard_path} has {size} bytes, "
                f"the index recorded {info.size} (truncated or replaced); "
                "run `featcache verify` and re-embed with `featcache embed --overwrite`"
            )


def cache_from_index_state(path: Path, state: IndexState) -> Cache:
    """The Cache of a format-2 index already read (by a writer holding the lock), its shards checked present."""
    check_shards_present(path, state)
    records = state.sorted_records()
    class_names = sorted({record.label for record in records})
    lengths = np.array([record.length for record in records], dtype=np.int32)
    sampling = state.settings["sampling"]
    index = CacheIndex(
        path=path,
        class_names=class_names,
        labels=np.array([class_names.index(record.label) for record in records], dtype=np.int32),
        lengths=lengths,
        paths=[record.path for record in records],
        groups=[record.group for record in records],
        num_frames=default_num_frames(sampling, lengths),
        feature_dim=state.feature_dim,
        dtype=state.settings["dtype"],
        extractor=state.settings["extractor"],
        sampling=sampling,
        failures=sorted(state.failures.items()),
        fingerprints=[record.fingerprint for record in records],
        format_version=FORMAT_VERSION,
    )
    folder = shard_folder_for(path)
    return Cache(
        path=path,
        index=index,
        format_version=FORMAT_VERSION,
        shard_paths=[folder / record.shard for record in records],
        shard_starts=np.array([record.shard_start for record in records], dtype=np.int64),
        state=state,
    )


def read_cache_index(cache: CachePath | Cache) -> CacheIndex:
    """Everything but the features, for either format."""
    return open_cache(cache).index


class CacheReader:
    """Reads features of one cache (either format); use it as a context manager.

    Every read is verified: a shard is checked against the index when first opened (`integrity.identity_problem`;
    an unchecksummed shard_format-1 shard also hashed whole once per process), and its chunks' fletcher32
    checksums as they are read; a failure is a ShardDamagedError naming the shard and the video, never a number.
    A shard gone since the index was read (a `compact` beside this reader) sends the reader to the index once more.
    """

    def __init__(self, cache: CachePath | Cache) -> None:
        self.cache = open_cache(cache)
        self._handles: dict[Path, h5py.File] = {}
        # Where each row's frames are, per this reader (moved when a compact replaced the shards).
        self._shard_paths = list(self.cache.shard_paths)
        self._shard_starts = np.array(self.cache.shard_starts, dtype=np.int64)
        self._shard_infos = dict(self.cache.state.shards) if self.cache.state is not None else None

    def __enter__(self) -> CacheReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _file(self, file_path: Path, row: int | None = None) -> h5py.File:
        if file_path not in self._handles:
            try:
                handle = h5py.File(file_path, "r")
            except HDF5_READ_ERRORS as err:
                raise CacheFormatError(
                    f"{self.cache.path}: cannot read shard {file_path} ({err}); "
                    f"run `featcache verify {self.cache.path}`"
                ) from err
            try:
                self._check_shard(handle, file_path, row)
            except BaseException:
                handle.close()
                raise
            self._handles[file_path] = handle
        return self._handles[file_path]

    def _check_shard(self, handle: h5py.File, file_path: Path, row: int | None) -> None:
        """ShardDamagedError unless the shard just opened is the index's, with its recorded bytes."""
        if self._shard_infos is None:
            return  # format 1, or a self-contained export: no shard table to compare with
        info = self._shard_infos[file_path.name]
        try:
            problem = identity_problem(handle, info, self.cache.settings, self.cache.state.feature_dim)
            if problem is None and needs_whole_verification(handle):
                problem = whole_checksum_problem(file_path, info)
        except HDF5_READ_ERRORS as err:  # HDF5's own bookkeeping in the file is damaged
            raise ShardDamagedError(self._damage_message(file_path, row, f"is unreadable ({err})")) from err
        if problem is not None:
            raise ShardDamagedError(self._damage_message(file_path, row, problem))

    def _damage_message(self, file_path: Path, row: int | None, problem: str) -> str:
        video = f" (video {self.cache.index.paths[row]})" if row is not None else ""
        return (
            f"{self.cache.path}: shard {file_path} {problem}{video}; run `featcache verify {self.cache.path}`, "
            f"then `featcache compact --drop-damaged {self.cache.path}` and `featcache embed` to re-embed it"
        )

    def _shard_of(self, row: int) -> tuple[h5py.File, int]:
        """Format 2: the open shard holding video `row`, and the row's first frame in it."""
        file_path = self._shard_paths[row]
        if file_path not in self._handles and self._shard_infos is not None and not file_path.exists():
            self._follow_the_index_again()
        try:
            handle = self._file(self._shard_paths[row], row)
        except CacheFormatError:
            if self._shard_infos is None or self._shard_paths[row].exists():
                raise
            self._follow_the_index_again()  # deleted between the check above and the open
            handle = self._file(self._shard_paths[row], row)
        return handle, int(self._shard_starts[row])

    def _follow_the_index_again(self) -> None:
        """Read the index again and find every row's video in its shards (by path, same contents and length).

        Why: `compact` replaces the index and then deletes the old shards; a reader that opened the cache before
        finds the same videos, with the same frames, in the new shards.
        """
        state = read_index_state(self.cache.path)
        folder = shard_folder_for(self.cache.path)
        index = self.cache.index
        for row, path in enumerate(index.paths):
            record = state.videos.get(path)
            fingerprint = index.fingerprints[row] if index.fingerprints else ""
            if record is None or record.length != int(index.lengths[row]) or record.fingerprint != fingerprint:
                raise CacheFormatError(
                    f"{self.cache.path}: video {path} changed or left the cache while it was being read "
                    "(another featcache process rewrote it); run the command again"
                )
            self._shard_paths[row] = folder / record.shard
            self._shard_starts[row] = record.shard_start
        self._shard_infos = dict(state.shards)

    def _read_rows(self, row: int, dataset: str, first: int, stop: int) -> np.ndarray:
        """Frames first:stop of video `row` from `dataset` (format 2, or the export's own file), checksums checked."""
        handle, start = self._shard_of(row)
        try:
            return handle[dataset][start + first : start + stop]
        except HDF5_READ_ERRORS as err:  # HDF5's fletcher32 check (or another read failure) on a chunk of this video
            raise ShardDamagedError(
                self._damage_message(self._shard_paths[row], row, f"fails its checksum reading {dataset}")
            ) from err

    def _features_of(self, file_path: Path) -> h5py.Dataset:
        return self._file(file_path)["features"]

    def read_sequence(self, row: int) -> np.ndarray:
        """float32 (length, D): every stored frame of video `row`."""
        length = int(self.cache.index.lengths[row])
        if self.cache.format_version == 1:
            return self._features_of(self.cache.path)[row, :length].astype(np.float32)
        return self._read_rows(row, "features", 0, length).astype(np.float32)

    def read_frame_arrays(self, row: int) -> dict[str, np.ndarray]:
        """Where video `row`'s stored frames come from:
        frame_indices int32 (length,) and timestamps_ms float32 (length,)."""
        length = int(self.cache.index.lengths[row])
        if self.cache.format_version == 1:
            handle = self._file(self.cache.path)
            return {name: handle[name][row, :length] for name in FRAME_DATASETS}
        return {name: self._read_rows(row, name, 0, length) for name in FRAME_DATASETS}

    def read_sequences(self, rows: Sequence[int]) -> list[np.ndarray]:
        """float32 (length_i, D) per row, in the order asked."""
        return [self.read_sequence(int(row)) for row in rows]

    def read_frames(
        self, rows: Sequence[int], positions: Sequence[np.ndarray], num_frames: int | None = None
    ) -> np.ndarray:
        """float32 (n, T, D): for each row the stored frames at `positions[i]` (ints < its length), zeros after.

        T = num_frames, or the longest positions list. This is the hook for clip sampling: choose the
        positions (random windows, strides), read them here.
        """
        num_frames = num_frames if num_frames is not None else max((len(chosen) for chosen in positions), default=0)
        batch = np.zeros((len(rows), num_frames, self.cache.index.feature_dim), dtype=np.float32)
        for destination, (row, chosen) in enumerate(zip(rows, positions)):
            chosen = np.asarray(chosen, dtype=np.int64)
            if len(chosen) > num_frames or (
                len(chosen) and (chosen.min() < 0 or chosen.max() >= self.cache.index.lengths[row])
            ):
                raise ValueError(
                    f"positions for row {row} out of range (length {self.cache.index.lengths[row]}, T {num_frames})"
                )
            if len(chosen):
                batch[destination, : len(chosen)] = self._read_span(int(row), int(chosen.min()), int(chosen.max()) + 1)[
                    chosen - chosen.min()
                ]
        return batch

    def _read_span(self, row: int, first: int, stop: int) -> np.ndarray:
        # One contiguous read per video: far faster than an HDF5 point selection on 25088-d rows.
        if self.cache.format_version == 1:
            return self._features_of(self.cache.path)[row, first:stop].astype(np.float32)
        return self._read_rows(row, "features", first, stop).astype(np.float32)

    def read(self, rows: Sequence[int], num_frames: int | None = None) -> np.ndarray:
        """float32 (n, T, D), T = num_frames or the cache's; uniform over longer videos, zeros after shorter ones.

        The frames a head sees per video are `CacheIndex.lengths_for(T)`.
        """
        num_frames = num_frames or self.cache.index.num_frames
        lengths = self.cache.index.lengths
        return self.read_frames(rows, [uniform_positions(int(lengths[row]), num_frames) for row in rows], num_frames)


def FeatureReader(cache: CachePath | Cache) -> CacheReader:
    """`with FeatureReader(path) as reader: reader.read(rows)` -> float32 (n, T, D); kept for callers of format 1."""
    return CacheReader(cache)


def read_all_features(cache: CachePath | Cache, num_frames: int | None = None) -> np.ndarray:
    """All features at once, float32 (N, T, D); for caches that fit in memory."""
    opened = open_cache(cache)
    with opened.reader() as reader:
        return reader.read(np.arange(opened.index.num_videos), num_frames)


def read_attributes(cache_path: Path) -> dict:
    """The index file's attributes (JSON ones decoded)."""
    with h5py.File(cache_path, "r") as handle:
        attributes = {name: (value.item() if hasattr(value, "item") else value) for name, value in handle.attrs.items()}
    for name in ("extractor", "sampling", "settings", "class_names"):
        if name in attributes:
            attributes[name] = json.loads(attributes[name])
    return attributes


__all__ = [
    "Cache",
    "CacheReader",
    "FeatureReader",
    "open_cache",
    "read_all_features",
    "read_cache_index",
    "uniform_positions",
    "decode_strings",
]
