"""Shards: immutable HDF5 files holding finished videos, each written whole or not at all.

Any process may write a shard into a cache's shard folder (`write_shard`); only the one writer holding
the cache's lock adopts shards into the index (`index.CacheWriter.adopt_shard`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache.format import (
    FRAME_DATASETS,
    SHARD_FORMAT,
    SHARD_LIBVER,
    SHARD_STRING_DATASETS,
    SHARD_SUFFIX,
    SHARD_VIDEO_DATASETS,
    STRING_DTYPE,
    decode_strings,
    write_hdf5_file,
)
from featcache.errors import CacheFormatError
from featcache.failpoints import failpoint
from featcache.files import blake2b_file, write_atomically


@dataclass(frozen=True)
class ShardVideo:
    """One embedded video, ready for a shard. features: (length, D) in any float dtype (cast on write)."""

    path: str
    label: str
    group: str
    fingerprint: str
    features: np.ndarray
    frame_indices: np.ndarray  # int32 (length,)
    timestamps_ms: np.ndarray  # float32 (length,)
    video_fps: float
    video_num_frames: int
    video_width: int
    video_height: int
    file_mtime_ns: int = 0  # when the fingerprint was taken (lets the next run skip rehashing the file)
    # How its frames were decoded: "seek", "sequential" or "sequential: <why>" (SampledFrames.describe_decoder);
    # "" where unknown (rows compacted from shards written before featcache recorded it).
    decoder: str = ""


@dataclass(frozen=True)
class ShardInfo:
    """What the index records about a shard: its file name (in the shard folder), size and BLAKE2b."""

    name: str
    size: int
    checksum: str
    num_videos: int
    num_frames: int


def write_shard(
    shard_folder: Path,
    videos: list[ShardVideo],
    dtype: str,
    settings: dict[str, Any],
    compression: str = "none",
    *,
    runtime: str | None = None,
) -> ShardInfo:
    """Write these videos as one new shard file: temporary name, fsync, rename. Safe from any process.

    settings: the cache's settings record (stored in the shard so an orphan can be checked before adoption).
    compression: HDF5 filter of the features ("none", "gzip", "lzf"), as `embed --compression`.
    runtime: what ran the extractor ("keras", "openvino"), stored as the shard's `runtime` attribute
      (provenance only: both give the same features); None writes none (read back as DEFAULT_SHARD_RUNTIME).
    Returns the ShardInfo to hand to the cache's writer (`CacheWriter.adopt_shard`).
    """
    if not videos:
        raise ValueError("a shard needs at least one video")
    shard_folder = Path(shard_folder)
    shard_folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex + SHARD_SUFFIX  # unique across processes and machines: no coordination needed
    written: dict[str, Any] = {}

    def checksum_before_rename(temporary: Path) -> None:
        failpoint("shard-temp-written")
        written["checksum"], written["size"] = blake2b_file(temporary), temporary.stat().st_size

    write_atomically(
        shard_folder / name,
        lambda temporary: _write_shard_file(
            temporary, shard_id_of(name), videos, dtype, settings, compression, runtime
        ),
        checksum_before_rename,
    )
    failpoint("shard-renamed")
    return ShardInfo(
        name, written["size"], written["checksum"], len(videos), int(sum(len(video.features) for video in videos))
    )


# A feature chunk holds at most this many bytes (25088-d float16: 20 frames), so a read never checksums much more
# than it asked for.
MAX_CHUNK_BYTES = 1 << 20


def feature_chunk_rows(lengths: np.ndarray, bytes_per_frame: int) -> int:
    """Rows per chunk of a shard's per-frame datasets: about one video (its median length), so reading a video
    touches at most two chunks; within MAX_CHUNK_BYTES."""
    typical_length = int(np.median(lengths)) if len(lengths) else 1
    return int(max(1, min(typical_length, MAX_CHUNK_BYTES // max(1, bytes_per_frame), int(lengths.sum()) or 1)))


def _write_shard_file(
    path: Path,
    shard_id: str,
    videos: list[ShardVideo],
    dtype: str,
    settings: dict[str, Any],
    compression: str,
    runtime: str | None,
) -> None:
    write_hdf5_file(
        path, lambda handle: _fill_shard(handle, shard_id, videos, dtype, settings, compression, runtime), SHARD_LIBVER
    )


def _fill_shard(
    handle: h5py.File,
    shard_id: str,
    videos: list[ShardVideo],
    dtype: str,
    settings: dict[str, Any],
    compression: str,
    runtime: str | None,
) -> None:
    lengths = np.array([len(video.features) for video in videos], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    feature_dim = videos[0].features.shape[1]
    num_rows = int(offsets[-1])
    chunk_rows = feature_chunk_rows(lengths, feature_dim * np.dtype(dtype).itemsize)
    # fletcher32 on every numeric dataset: HDF5 checks each chunk as it reads it (shard_format 2).
    checked = {"fletcher32": True, **({} if compression == "none" else {"compression": compression})}
    features = handle.create_dataset(
        "features", shape=(num_rows, feature_dim), dtype=dtype, chunks=(chunk_rows, feature_dim), **checked
    )
    for video, start in zip(videos, offsets[:-1]):
        features[start : start + len(video.features)] = video.features.astype(dtype, copy=False)
    for name, frame_dtype in FRAME_DATASETS.items():
        values = np.concatenate([getattr(video, name) for video in videos]).astype(frame_dtype)
        handle.create_dataset(name, data=values, chunks=(chunk_rows,), fletcher32=True)
    per_video = {
        "offsets": offsets,
        "lengths": lengths.astype(np.int32),
        **{
            name: np.array([getattr(video, name) for video in videos], dtype=video_dtype)
            for name, video_dtype in SHARD_VIDEO_DATASETS.items()
            if name != "lengths"
        },
    }
    for name, values in per_video.items():
        handle.create_dataset(name, data=values, chunks=True, fletcher32=True)
    for name in SHARD_STRING_DATASETS:
        values = np.array([getattr(video, name[:-1]) for video in videos], dtype=object)
        handle.create_dataset(name, data=values, dtype=STRING_DTYPE)
    handle.attrs["settings"] = json.dumps(settings, sort_keys=True)
    handle.attrs["shard_id"] = shard_id
    handle.attrs["shard_format"] = SHARD_FORMAT
    if runtime is not None:
        handle.attrs["runtime"] = runtime


def shard_id_of(name: str) -> str:
    """A shard's id, recorded in it (attribute `shard_id`): its file name's stem, a uuid."""
    return Path(name).name.removesuffix(SHARD_SUFFIX)


# What ran the extractor for a shard written before shards recorded it (featcache 0.2 ran Keras only).
DEFAULT_SHARD_RUNTIME = "keras"


def shard_runtime(shard_path: Path) -> str:
    """The runtime that embedded a shard's features (its `runtime` attribute; DEFAULT_SHARD_RUNTIME when absent)."""
    try:
        with h5py.File(shard_path, "r") as handle:
            return str(handle.attrs.get("runtime", DEFAULT_SHARD_RUNTIME))
    except OSError as err:
        raise CacheFormatError(f"{shard_path}: not a readable featcache shard ({err})") from err


def read_video_runtimes(shard_folder: Path, records: Iterable[Any]) -> dict[str, str]:
    """path -> the runtime that embedded each record's features (an index.VideoRecord: its shard's `runtime`
    attribute, `shard_runtime`), one open per shard."""
    runtime_of_shard: dict[str, str] = {}
    runtimes = {}
    for record in records:
        if record.shard not in runtime_of_shard:
            runtime_of_shard[record.shard] = shard_runtime(Path(shard_folder) / record.shard)
        runtimes[record.path] = runtime_of_shard[record.shard]
    return runtimes


def unlisted_shard_names(shard_folder: Path, listed: Collection[str]) -> list[str]:
    """The shard files in `shard_folder` that `listed` does not name, sorted (the one place that decides what a shard
    file is): a run killed before its index commit leaves such shards; temporary files are not shards."""
    shard_folder = Path(shard_folder)
    if not shard_folder.is_dir():
        return []
    return sorted(path.name for path in shard_folder.glob("*" + SHARD_SUFFIX) if path.name not in listed)


def read_shard_decoders(shard_path: Path) -> list[str]:
    """Each video's decoder ("seek", "sequential", "sequential: <why>"), "" for every video of a shard written
    before featcache recorded it (the `decoders` dataset is optional: older shards read as they are)."""
    try:
        with h5py.File(shard_path, "r") as handle:
            if "decoders" not in handle:
                return [""] * (len(handle["offsets"]) - 1)
            return decode_strings(handle["decoders"][()])
    except (OSError, KeyError) as err:
        raise CacheFormatError(f"{shard_path}: not a readable featcache shard ({err})") from err


def read_video_decoders(shard_folder: Path, records: Iterable[Any]) -> dict[str, str]:
    """path -> decoder of each record (an index.VideoRecord: path, shard, shard_row), one open per shard."""
    by_shard: dict[str, list[Any]] = {}
    for record in records:
        by_shard.setdefault(record.shard, []).append(record)
    decoders = {}
    for shard, shard_records in by_shard.items():
        shard_decoders = read_shard_decoders(Path(shard_folder) / shard)
        decoders.update((record.path, shard_decoders[record.shard_row]) for record in shard_records)
    return decoders


@dataclass(frozen=True)
class ShardContents:
    """A shard's per-video facts (not its features)."""

    info: ShardInfo
    settings: dict[str, Any]
    paths: list[str]
    labels: list[str]
    groups: list[str]
    fingerprints: list[str]
    offsets: np.ndarray
    video_arrays: dict[str, np.ndarray]  # VIDEO_DATASETS and file_mtime_ns, (n,) each


def read_shard_contents(shard_path: Path, checksum: str | None = None) -> ShardContents:
    """Read a shard's per-video facts; computes the checksum unless it is given (already known)."""
    shard_path = Path(shard_path)
    try:
        with h5py.File(shard_path, "r") as handle:
            offsets = handle["offsets"][()]
            contents = ShardContents(
                info=ShardInfo(
                    shard_path.name,
                    shard_path.stat().st_size,
                    checksum or blake2b_file(shard_path),
                    len(offsets) - 1,
                    int(offsets[-1]),
                ),
                settings=json.loads(handle.attrs["settings"]),
                paths=decode_strings(handle["paths"][()]),
                labels=decode_strings(handle["labels"][()]),
                groups=decode_strings(handle["groups"][()]),
                fingerprints=decode_strings(handle["fingerprints"][()]),
                offsets=offsets,
                video_arrays={name: handle[name][()] for name in SHARD_VIDEO_DATASETS if name in handle},
            )
    except (OSError, KeyError) as err:
        raise CacheFormatError(f"{shard_path}: not a readable featcache shard ({err})") from err
    return contents
