"""One writer at a time: an OS lock (`fcntl.flock`) on a lock file; a cache's is `CACHE.h5.lock`.

The kernel drops the lock when the holder exits in any way (crash, kill -9), so there is no stale lock to
clean up and no PID to check (PIDs are reused). `ExclusiveLock` is the mechanism (also for model folders,
featcache.training.model_folder); `CacheLock` is a cache's.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from featcache.errors import CacheLockedError, FeatcacheError


def lock_path_for(cache_path: Path) -> Path:
    return Path(f"{cache_path}.lock")


class ExclusiveLock:
    """Exclusive, non-blocking: a second holder is refused at once with `refusal()`'s error."""

    def __init__(self, path: Path, refusal: Callable[[], FeatcacheError]) -> None:
        self.path = Path(path)
        self._refusal = refusal
        self._descriptor: int | None = None

    def __enter__(self) -> ExclusiveLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(descriptor)
            raise self._refusal() from err
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None


class CacheLock(ExclusiveLock):
    """A cache's writer lock: a second writer is refused at once with CacheLockedError."""

    def __init__(self, cache_path: Path) -> None:
        self.cache_path = Path(cache_path)
        super().__init__(lock_path_for(self.cache_path), self._refuse)

    def _refuse(self) -> CacheLockedError:
        return CacheLockedError(
            f"{self.cache_path}: another featcache process is writing this cache (it holds {self.path.name}); "
            "wait for it to finish, or choose another --out"
        )

    def __enter__(self) -> CacheLock:
        super().__enter__()
        return self
