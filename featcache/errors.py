"""The errors featcache raises. The CLI maps each to one line and an exit code."""


class FeatcacheError(Exception):
    """Base class of every error featcache raises on purpose."""


class InputError(FeatcacheError):
    """A bad option or input path: the user must change the command (CLI exit code 2)."""


class VideoDecodeError(FeatcacheError):
    """A video could not be opened or has no decodable frame."""


class DecodeWorkerStartError(FeatcacheError):
    """A decode worker process could not start (a broken installation, not a bad video)."""


class ExtractorError(InputError):
    """An extractor cannot be built: unknown name, unavailable or unfitting weights."""


class CacheMismatchError(InputError):
    """A cache was written with other settings than the ones asked for."""


class CacheFormatError(InputError):
    """A file is not a complete featcache cache (missing, foreign or interrupted)."""


class ShardDamagedError(CacheFormatError):
    """A shard's bytes fail their checksum, or the shard is not the one the index lists (another cache's)."""


class DiskWriteError(InputError):
    """The operating system refused a write (disk full, quota, I/O error, read-only file system)."""

    def __init__(self, message: str, remedy: str = "free space") -> None:
        super().__init__(message)
        self.remedy = remedy  # what the user does before re-running: "free space", "make it writable", ...


class ModelDirError(InputError):
    """A model folder is missing, incomplete or from another featcache."""


class CacheLockedError(InputError):
    """Another process is writing the same cache."""


class RayEngineError(InputError):
    """`--engine ray` cannot run: Ray missing, the cluster unreachable or too small,
    a node that cannot see the files."""
