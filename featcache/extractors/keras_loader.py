"""Importing Keras (and TensorFlow behind it) once, quietly, only when a command runs a model.

Commands that only read a cache or list things (`--help`, `info`, `extractors`, `demo-data`) never come
here: importing TensorFlow costs ~4 s and ~800 MB, which a listing must not pay.
"""

from __future__ import annotations

import os
import sys

# TensorFlow prints pages of C++ start-up logs on import; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_keras_quietly() -> None:
    """Import Keras with the process's native stderr muted meanwhile (a no-op once Keras is imported).

    TensorFlow's C++ code prints INFO lines while it loads, before any log level applies
    (TF_CPP_MIN_LOG_LEVEL does not reach them); they would bury featcache's one-line messages.
    Python errors raised by the import still show: stderr is restored before they propagate.
    """
    if "keras" in sys.modules:
        return
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":  # --verbose asked for TensorFlow's own logs
        import keras

        return
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(devnull)
        os.close(saved_stderr)
