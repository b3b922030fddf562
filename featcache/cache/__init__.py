"""The feature cache (format 2): an index file plus immutable shards; format 1 is still read.

Modules: format (layout, names), format1 (old caches, read-only), shards (write one shard, from any process),
index (the index file), lock (one writer per cache), writer (`WritableCache`, `CacheWriter`: the one writer),
reader (`open_cache`, `Cache`, `CacheReader`), maintenance (write_cache, upgrade, verify, compact), export (npy,
Parquet, one self-contained HDF5 file), describe (`featcache info`), settings (the settings record features
depend on, and the one check that two were made the same way). No TensorFlow/Keras here.
"""

from featcache.cache.export import export_cache
from featcache.cache.format import FORMAT_VERSION, CacheIndex, shard_folder_for
from featcache.cache.format1 import VideoRows
from featcache.cache.index import IndexState, read_index_state
from featcache.cache.lock import CacheLock
from featcache.cache.maintenance import VerifyReport, compact_cache, upgrade_cache, verify_cache, write_cache
from featcache.cache.reader import (
    Cache,
    CacheReader,
    FeatureReader,
    open_cache,
    read_all_features,
    read_cache_index,
    uniform_positions,
)
from featcache.cache.shards import ShardInfo, ShardVideo, read_shard_contents, write_shard
from featcache.cache.writer import CacheWriter, WritableCache

__all__ = [
    "FORMAT_VERSION",
    "Cache",
    "CacheIndex",
    "CacheLock",
    "CacheReader",
    "CacheWriter",
    "FeatureReader",
    "IndexState",
    "ShardInfo",
    "ShardVideo",
    "VerifyReport",
    "VideoRows",
    "WritableCache",
    "compact_cache",
    "export_cache",
    "open_cache",
    "read_all_features",
    "read_cache_index",
    "read_index_state",
    "read_shard_contents",
    "shard_folder_for",
    "uniform_positions",
    "upgrade_cache",
    "verify_cache",
    "write_cache",
    "write_shard",
]
