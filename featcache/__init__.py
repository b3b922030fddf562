"""featcache: embed video frames once with a frozen CNN, then train sequence heads on the cache.

The public surface (the CLI is a thin layer over these):

    featcache.embed(video_root, "cache.h5", EmbedConfig(...))          # stage one
    featcache.train("cache.h5", "model_dir", HeadConfig(), TrainConfig())  # stage two
    featcache.evaluate("model_dir", "cache.h5")
    featcache.compare_heads("cache.h5", ["lstm", "meanpool"], {}, TrainConfig())
    featcache.predict_videos("model_dir", ["new.avi"])
    featcache.predict_windows("model_dir", ["long.mp4"], WindowConfig(window_seconds=4, stride_seconds=2))
    featcache.dataset("cache.h5", subset="train", format="tf")             # your own training loop
    featcache.run_pipeline(featcache.load_pipeline("demo"))
"""

import os

# TensorFlow prints pages of C++ start-up logs on import; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"


def _import_keras_quietly() -> None:
    """Import Keras (and TensorFlow behind it) with the process's native stderr muted meanwhile.

    TensorFlow's C++ code prints INFO lines while it loads, before any log level applies
    (TF_CPP_MIN_LOG_LEVEL does not reach them); they would bury featcache's one-line messages.
    Python errors raised by the import still show: stderr is restored before they propagate.
    """
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(devnull)
        os.close(saved_stderr)


_import_keras_quietly()

# After the quiet import: these modules import Keras themselves.
from featcache.cache import CacheIndex, FeatureReader, read_cache_index  # noqa: E402
from featcache.compare import compare_heads  # noqa: E402
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig, WindowConfig  # noqa: E402
from featcache.dataset import dataset  # noqa: E402
from featcache.demo_data import make_demo_data  # noqa: E402
from featcache.embed import embed  # noqa: E402
from featcache.errors import FeatcacheError  # noqa: E402
from featcache.evaluate import evaluate  # noqa: E402
from featcache.extractor_catalog import available_extractors  # noqa: E402
from featcache.info import describe_cache  # noqa: E402
from featcache.pipelines import load_pipeline, run_pipeline  # noqa: E402
from featcache.predict import predict_videos  # noqa: E402
from featcache.train import train  # noqa: E402
from featcache.windows import predict_windows, write_window_reports  # noqa: E402

__all__ = [
    "CacheIndex",
    "EmbedConfig",
    "ExtractorConfig",
    "FeatcacheError",
    "FeatureReader",
    "HeadConfig",
    "SamplingConfig",
    "TrainConfig",
    "WindowConfig",
    "available_extractors",
    "compare_heads",
    "dataset",
    "describe_cache",
    "embed",
    "evaluate",
    "load_pipeline",
    "make_demo_data",
    "predict_videos",
    "predict_windows",
    "read_cache_index",
    "run_pipeline",
    "train",
    "write_window_reports",
]
