"""featcache: embed video frames once with a frozen CNN, then train sequence heads on the cache."""

import os

# TensorFlow prints pages of C++ start-up logs on import; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
