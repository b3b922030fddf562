"""Writing files so that a crash leaves the old version or the new one, never half of either; hashing files.

The hashes live here, free of Keras, so that the settings check (weights files by sha256) runs without it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from featcache.errors import DiskWriteError

CHECKSUM_CHUNK_BYTES = 1 << 20
# The write failures that are the machine's, not featcache's: the user frees space or fixes the disk and re-runs.
# errno -> (what happened, what the user does about it).
DISK_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "free space (or raise the quota)"),
    errno.EIO: ("input/output error (a failing disk?)", "check the disk"),
    errno.EROFS: ("read-only file system", "make it writable (or write elsewhere)"),
}


def disk_write_error(err: OSError, path: Path) -> DiskWriteError | None:
    """DiskWriteError "no space left on device writing PATH" for the OSErrors of DISK_ERRORS, else None."""
    if (err.errno or 0) not in DISK_ERRORS:
        return None
    reason, remedy = DISK_ERRORS[err.errno or 0]
    return DiskWriteError(f"{reason} writing {path}", remedy)


def temporary_path_for(path: Path, suffix: str = "") -> Path:
    """The name a file is written under before its rename: hidden, marked with the writer's pid, ending in `suffix`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def write_atomically(
    path: Path,
    write: Callable[[Path], None],
    before_replace: Callable[[Path], None] | None = None,
    *,
    temporary_suffix: str = "",
) -> None:
    """Write a file by `write(temporary_path)`, fsync it, then `os.replace` it onto `path` and fsync the folder.

    `path` is either untouched or the complete new file, whatever happens in between (crash, power loss). The one
    way featcache replaces a file: the index, shards, featcache.json, exports, fetched weights.
    before_replace(temporary_path): called between fsync and rename (checksums of the finished file, failpoints).
    temporary_suffix: how the temporary name ends, for writers that insist on one (Keras: ".weights.h5").
    """
    path = Path(path)
    temporary = temporary_path_for(path, temporary_suffix)
    try:
        write(temporary)
        fsync_file(temporary)
        if before_replace is not None:
            before_replace(temporary)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as err:
        problem = disk_write_error(err, path)
        if problem is None:
            raise
        raise problem from err
    finally:
        temporary.unlink(missing_ok=True)


def write_folder_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write a folder by `write(temporary_folder)`, fsync every file in it, then rename it to `path`.

    A folder cannot replace another in one rename: an existing `path` is removed only once the new folder is
    complete, so a crash leaves the old folder or the new one (and at worst a hidden `.NAME.PID.tmp` folder).
    """
    path = Path(path)
    temporary = temporary_path_for(path)
    try:
        write(temporary)
        for file_path in sorted(p for p in temporary.rglob("*") if p.is_file()):
            fsync_file(file_path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as err:
        problem = disk_write_error(err, path)
        if problem is None:
            raise
        raise problem from err
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


def fsync_directory(folder: Path) -> None:
    # A rename is durable only once the directory entry is on disk (power loss, not just a crash).
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def blake2b_file(path: Path) -> str:
    """Hex BLAKE2b (32-byte digest) of a whole file: shard checksums, video fingerprints."""
    return _hex_digest_of_file(path, hashlib.blake2b(digest_size=32))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a whole file: weights files in settings records."""
    return _hex_digest_of_file(path, hashlib.sha256())


def sha256_folder(folder: Path) -> str:
    """sha256 over every file of a SavedModel folder (saved_model.pb, variables/, assets/), by sorted relative path."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _hex_digest_of_file(path: Path, digest: hashlib._Hash) -> str:
    """`digest` over a file's bytes, read in 1 MiB chunks."""
    with open(path, "rb") as stream:
        while chunk := stream.read(CHECKSUM_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
