"""One writer per cache: an OS lock (`fcntl.flock`) on `CACHE.h5.lock`.

The kernel drops the lock when the holder exits in any way (crash, kill -9), so there is no stale lock to
clean up and no PID to check (PIDs are reused).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from featcache.errors import CacheLockedError


def lock_path_for(cache_path: Path) -> Path:
    return Path(f"{cache_path}.lock")


class CacheLock:
    """Exclusive, non-blocking: a second writer is refused at once with CacheLockedError."""

    def __init__(self, cache_path: Path) -> None:
        self.cache_path = Path(cache_path)
        self.path = lock_path_for(self.cache_path)
        self._descriptor: int | None = None

    def __enter__(self) -> CacheLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(descriptor)
            raise CacheLockedError(
                f"{self.cache_path}: another featcache process is writing this cache (it holds {self.path.name}); "
                "wait for it to finish, or choose another --out"
            ) from err
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None
