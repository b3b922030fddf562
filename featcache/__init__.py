"""featcache: embed video frames once with a frozen CNN, then train sequence heads on the cache.

The public surface (the CLI is a thin layer over these):

    featcache.embed(video_root, "cache.h5", EmbedConfig(...))          # stage one
    featcache.train("cache.h5", "model_dir", HeadConfig(), TrainConfig())  # stage two
    featcache.evaluate("model_dir", "cache.h5")
    featcache.compare_heads("cache.h5", ["lstm", "meanpool"], {}, TrainConfig())
    featcache.predict_videos("model_dir", ["new.avi"])
    featcache.dataset("cache.h5", subset="train", format="tf")             # your own training loop
    featcache.predict_windows("model_dir", ["long.mp4"], WindowConfig(window_seconds=4, stride_seconds=2))
    featcache.run_pipeline(featcache.load_pipeline("demo"))
    featcache.find_neighbors("cache.h5", video="Class/v_Class_g01_c01.avi", k=10)   # nearest videos
    featcache.audit_cache("cache.h5", split="ucf101-1")                           # near-duplicate leakage
    featcache.write_model_report("model_dir", "cache.h5", video_root="videos")  # the HTML page (featcache.report)

Names are loaded on first use (PEP 562), so `import featcache` and the commands that run no model do
not import TensorFlow. A new public name goes into _PUBLIC_NAMES; one that needs Keras into
_NEEDS_KERAS too, so Keras is imported quietly before it (featcache.extractors.keras_loader).
"""

from __future__ import annotations

import importlib
from typing import Any

from featcache.version import __version__

# Public name -> the module that defines it.
_PUBLIC_NAMES = {
    "Cache": "featcache.cache",
    "CacheIndex": "featcache.cache",
    "open_cache": "featcache.cache",
    "FeatureReader": "featcache.cache",
    "read_cache_index": "featcache.cache",
    "compare_heads": "featcache.training.compare",
    "EmbedConfig": "featcache.config",
    "ExtractorConfig": "featcache.config",
    "HeadConfig": "featcache.config",
    "SamplingConfig": "featcache.config",
    "TrainConfig": "featcache.config",
    "WindowConfig": "featcache.config",
    "available_extractors": "featcache.extractors.catalog",
    "dataset": "featcache.training.datasets",
    "make_demo_data": "featcache.video.demo_data",
    "embed": "featcache.embedding.embed",
    "FeatcacheError": "featcache.errors",
    "evaluate": "featcache.inference.evaluate",
    "describe_cache": "featcache.cache.describe",
    "load_pipeline": "featcache.pipelines",
    "run_pipeline": "featcache.pipelines",
    "predict_videos": "featcache.inference.predict",
    "train": "featcache.training.train",
    "predict_windows": "featcache.inference.windows",
    "write_window_reports": "featcache.inference.windows",
    "find_neighbors": "featcache.search.neighbors",
    "pooled_features": "featcache.search.pooled",
    "audit_cache": "featcache.training.leakage",
    "write_model_report": "featcache.report.model_page",
    "write_cache_report": "featcache.report.cache_page",
}
# Not featcache.embed: it imports Keras itself, and only when it builds a model (the Ray engine's driver never does).
_NEEDS_KERAS = {
    "featcache.training.compare",
    "featcache.inference.evaluate",
    "featcache.pipelines",
    "featcache.inference.predict",
    "featcache.training.train",
    "featcache.inference.windows",
    "featcache.report.model_page",
}

__all__ = ["__version__", *sorted(_PUBLIC_NAMES)]


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'featcache' has no attribute {name!r}")
    if module_name in _NEEDS_KERAS:
        from featcache.extractors.keras_loader import import_keras_quietly

        import_keras_quietly()
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC_NAMES))
