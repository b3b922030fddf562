"""featcache's version, and the rule for files written by another one; a leaf module (reading it imports nothing else).

Every cache and model folder records the version that wrote it. A file written by a newer featcache (a higher
major.minor: formats change only in minor releases, see CHANGELOG.md) is refused with a message saying so,
instead of being misread; older files are read (and caches of format 1 upgraded).
"""

from __future__ import annotations

import re

__version__ = "0.3.0"


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "0.3.0" or "0.4.0.dev1"; 0 for a part that is not a number."""
    numbers = [int(match.group()) if (match := re.match(r"\d+", part)) else 0 for part in version.split(".")[:2]]
    major, minor = (numbers + [0, 0])[:2]
    return major, minor


def newer_writer_problem(written_by: str, what: str) -> str:
    """'' when this featcache reads what `written_by` wrote;
    else a one-line reason (for the caller's own error type)."""
    if written_by and release(written_by) > release(__version__):
        return (
            f"{what} was written by featcache {written_by}, newer than this featcache {__version__}, "
            "and its format may have changed; upgrade featcache (`pip install -U featcache`) to read it"
        )
    return ""
