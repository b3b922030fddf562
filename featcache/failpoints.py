"""Named crash points for fault-injection tests: `FEATCACHE_FAILPOINT=name` makes the process die there.

With `FEATCACHE_FAILPOINT_ERRNO=ENOSPC` (or EDQUOT, EIO, EROFS) as well, the point raises that OSError instead, as
the operating system would on a full disk: tests check that every writer turns it into one line and cleans up.

The process ends with `os._exit` (no cleanup, no `finally`, no flush), the closest a test gets to a
power cut or `kill -9` at an exact step. Each name is one step of a write that must be crash-safe;
tests/test_failpoints.py runs an embed that dies at each and checks that the rerun repairs everything.
"""

from __future__ import annotations

import errno
import os

ENVIRONMENT_VARIABLE = "FEATCACHE_FAILPOINT"
ERRNO_ENVIRONMENT_VARIABLE = "FEATCACHE_FAILPOINT_ERRNO"
# With this set to a file path, a failpoint fires only in the first process to reach it (which creates the
# file): a process restarted to redo the work (a Ray worker) then passes, as after a real one-off crash.
ONCE_ENVIRONMENT_VARIABLE = "FEATCACHE_FAILPOINT_ONCE"
EXIT_CODE = 77  # distinct from any code featcache returns on purpose, so a test knows the failpoint fired
FAILPOINTS = {
    "shard-temp-written": "a shard is complete under its temporary name, not yet renamed",
    "shard-renamed": "a shard has its final name but the index does not list it yet",
    "index-temp-written": "the new index is complete under its temporary name, not yet replacing the old one",
    "index-replaced": "the new index replaced the old one, unreferenced shards not yet deleted",
}


def available_failpoints() -> list[str]:
    return list(FAILPOINTS)


def failpoint(name: str) -> None:
    """Die here, at once, when FEATCACHE_FAILPOINT names this point (or raise FEATCACHE_FAILPOINT_ERRNO's OSError)."""
    assert name in FAILPOINTS, name  # internal invariant: every call site is listed above
    if os.environ.get(ENVIRONMENT_VARIABLE) == name and _first_time_here():
        error_name = os.environ.get(ERRNO_ENVIRONMENT_VARIABLE)
        if error_name:
            number = getattr(errno, error_name)
            raise OSError(number, f"{os.strerror(number)} (failpoint {name})")
        os._exit(EXIT_CODE)


def _first_time_here() -> bool:
    marker = os.environ.get(ONCE_ENVIRONMENT_VARIABLE)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # atomic: one process wins
    except FileExistsError:
        return False
    return True
