"""featcache: embed video frames once with a frozen CNN, then train sequence heads on the cache."""

__version__ = "0.1.0"
