"""Is this shard the one the index lists, undamaged? Identity from its attributes; bytes from checksums.

Shards of shard_format 2 carry HDF5 fletcher32 checksums on every chunk: HDF5 checks each chunk as it is read, and
a mismatch surfaces as an OSError ("filter returned failure during read") that the reader turns into a
ShardDamagedError. Older shards (shard_format 1) have no checksum of their own: the first time a process opens
one, it is hashed whole and compared with the BLAKE2b the index recorded (`featcache upgrade` rewrites them
checksummed, so that cost goes away).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache.format import FIRST_CHECKSUMMED_SHARD_FORMAT, FRAME_DATASETS, SHARD_SUFFIX
from featcache.cache.shards import ShardInfo
from featcache.files import blake2b_file

# Old shards hashed whole in this process and found sound: (real path, size, mtime_ns) -> checksum.
_VERIFIED_WHOLE: dict[tuple[str, int, int], str] = {}


def shard_format_of(handle: h5py.File) -> int:
    return int(handle.attrs.get("shard_format", 1))


def identity_problem(handle: h5py.File, info: ShardInfo, settings: dict[str, Any], feature_dim: int) -> str | None:
    """Why the open shard `handle` is not the shard `info` of a cache with `settings` (None: it is).

    Attributes, shapes and dtypes only (no data read): the settings record, the shard's id (shard_format 2), the
    per-frame datasets' shapes and dtypes, so a same-size shard of another cache (another seed) is refused.
    feature_dim: the index's (a settings record written through the library API need not name it).
    """
    try:
        recorded = json.loads(handle.attrs["settings"])
    except (KeyError, TypeError, ValueError):
        return "has no readable settings record"
    if recorded != settings:
        return "was written with other settings than its index (a shard of another cache?)"
    shard_id = handle.attrs.get("shard_id")
    if shard_id is not None:
        shard_id = shard_id.decode() if isinstance(shard_id, bytes) else str(shard_id)
        if shard_id + SHARD_SUFFIX != info.name:
            return f"is shard {shard_id}{SHARD_SUFFIX}, not {info.name} (a shard of another cache?)"
    expected = {
        "features": ((info.num_frames, int(feature_dim)), np.dtype(settings["dtype"])),
        **{name: ((info.num_frames,), np.dtype(dtype)) for name, dtype in FRAME_DATASETS.items()},
    }
    for name, (shape, dtype) in expected.items():
        dataset = handle.get(name)
        if not isinstance(dataset, h5py.Dataset) or dataset.shape != shape or dataset.dtype != dtype:
            return f"does not hold the {name} {shape} {dtype} the index recorded"
    return None


def needs_whole_verification(handle: h5py.File) -> bool:
    """True for a shard without chunk checksums (shard_format 1)."""
    return shard_format_of(handle) < FIRST_CHECKSUMMED_SHARD_FORMAT


def whole_checksum_problem(shard_path: Path, info: ShardInfo) -> str | None:
    """Why an unchecksummed shard's bytes are not those the index recorded (None: they are); hashed once per process
    per file version (path, size, modification time)."""
    stat = os.stat(shard_path)
    key = (os.path.realpath(shard_path), stat.st_size, stat.st_mtime_ns)
    if _VERIFIED_WHOLE.get(key) == info.checksum:
        return None
    if blake2b_file(shard_path) != info.checksum:
        return "has other contents than its index recorded (BLAKE2b differs: damaged or replaced)"
    _VERIFIED_WHOLE[key] = info.checksum
    return None
