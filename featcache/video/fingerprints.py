"""Content identity of a video file: "size:BLAKE2b" of all its bytes, so a video is known by what it is.

Hashing a whole dataset every run costs a full read of it, so, as git does for its index, a file whose
size and modification time (ns) are unchanged since it was fingerprinted keeps its fingerprint. A file
rewritten in place with the same size within the same nanosecond would be missed; a changed file at the
same path is otherwise found and re-embedded.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path

from featcache.files import blake2b_file


@dataclass(frozen=True)
class FileFingerprint:
    """A fingerprint and the stat facts it was taken at (mtime_ns: 0 when unknown)."""

    fingerprint: str
    mtime_ns: int


def fingerprint_file(path: Path) -> FileFingerprint:
    """Hash the whole file; the result names its contents ("<size>:<blake2b hex>")."""
    stat = os.stat(path)
    return FileFingerprint(f"{stat.st_size}:{blake2b_file(Path(path))}", stat.st_mtime_ns)


def fingerprint_size(fingerprint: str) -> int:
    return int(fingerprint.split(":", 1)[0]) if fingerprint else -1


# The fingerprint of what is not a readable regular file (a FIFO, a device, a broken link, a link loop):
# never read (a FIFO blocks, /dev/zero never ends); decoding lists the file in `failures` with the reason.
UNREADABLE_FINGERPRINT = FileFingerprint("", 0)


def current_fingerprint(path: Path, known: FileFingerprint | None) -> FileFingerprint:
    """`known` when size and mtime_ns still match it (no read), else a fresh hash of the file."""
    try:
        if not stat_module.S_ISREG(os.stat(path).st_mode):
            return UNREADABLE_FINGERPRINT
    except OSError:
        return UNREADABLE_FINGERPRINT
    if known is not None and known.fingerprint and known.mtime_ns:
        stat = os.stat(path)
        if stat.st_mtime_ns == known.mtime_ns and stat.st_size == fingerprint_size(known.fingerprint):
            return known
    try:
        return fingerprint_file(path)
    except PermissionError:
        return UNREADABLE_FINGERPRINT
