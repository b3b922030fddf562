"""`tfhub`: a TF-Hub image feature-vector model, a TensorFlow SavedModel rather than a Keras model.

It needs KERAS_BACKEND=tensorflow; the other extractors are Keras 3 models and run under any backend.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.built_model import BuiltModel
from featcache.extractors.frame_batches import check_frames
from featcache.extractors.weights import error_summary
from featcache.files import sha256_folder

TFHUB_PREPROCESSING = "x / 255 (float32 in [0, 1]), RGB"


def build_tfhub_model(config: ExtractorConfig) -> BuiltModel:
    """The SavedModel at --handle, loaded with tensorflow_hub.load and wrapped in one traced tf.function.

    Its BuiltModel has no keras_model. weights_sha256 is over the SavedModel folder's files.
    """
    if not config.handle:
        raise ExtractorError(
            "--extractor tfhub needs --handle / handle URL_OR_FOLDER (a TF-Hub image feature-vector model)"
        )
    if config.weights != ExtractorConfig.weights:
        raise ExtractorError(
            f"tfhub takes its weights from --handle / handle; leave --weights / weights unset (got {config.weights!r})"
        )
    if keras.backend.backend() != "tensorflow":
        raise ExtractorError(
            f"tfhub needs KERAS_BACKEND=tensorflow (the Keras backend is {keras.backend.backend()!r}); "
            "set it or choose another extractor"
        )
    # Imported here so the other extractors work under JAX or PyTorch without TensorFlow.
    import tensorflow as tf
    import tensorflow_hub as hub

    try:
        model_folder = Path(hub.resolve(config.handle))
        module = hub.load(str(model_folder))
    except (OSError, ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ExtractorError(
            f"could not load TF-Hub model {config.handle}: {error_summary(err)}; "
            "pass --handle / handle a reachable TF-Hub URL or a local SavedModel folder"
        ) from err
    if not callable(module):
        raise ExtractorError(
            f"TF-Hub model {config.handle} is not callable; featcache needs a TF2 SavedModel (image feature vector)"
        )

    size = config.image_size

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    def run_module(frames):
        # TF-Hub image models take float32 RGB in [0, 1].
        outputs = module(tf.cast(frames, tf.float32) / 255.0)
        if isinstance(outputs, dict):
            outputs = outputs["default"] if "default" in outputs else next(iter(outputs.values()))
        return tf.cast(outputs, tf.float32)

    probe = run_module(tf.zeros((1, size, size, 3), tf.uint8))
    if probe.shape.rank != 2:
        raise ExtractorError(
            f"TF-Hub model {config.handle} returns shape {tuple(probe.shape)}, not (batch, feature_dim); "
            "use an image feature-vector model"
        )
    feature_dim = int(probe.shape[-1])

    def embed_frames(frames: np.ndarray) -> np.ndarray:
        check_frames(frames, size)
        if len(frames) == 0:
            return np.zeros((0, feature_dim), dtype=np.float32)
        return run_module(tf.constant(frames)).numpy()

    return BuiltModel(embed_frames, feature_dim, sha256_folder(model_folder), TFHUB_PREPROCESSING)
