"""Converting a built Keras extractor to OpenVINO: its compile key, the conversion, the checked compiled model.

The frozen Keras model (uint8 frames -> float32 features, scaling inside) is converted with
`openvino.convert_model` on a traced tf.function and kept in the compile cache (openvino_runtime.py) under
`compile_key`: the extractor record, a hash of the weight arrays and the Keras/TensorFlow/OpenVINO versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from featcache.errors import ExtractorError
from featcache.extractors.openvino_runtime import (
    OUTPUT_NAME,
    OpenVINOExtractor,
    cached_ir,
    check_same_features,
    compile_ir,
    keras_probe_features,
    openvino_version,
)
from featcache.extractors.weights import error_summary, sha256_model_weights


def compile_key(provenance: dict[str, Any], keras_model: keras.Model, precision: str, extra: str = "") -> str:
    """The compile cache's key: what the converted model is a function of.

    The extractor record (name, image size, preprocessing, weights), the weight arrays themselves (so random
    weights and files are told apart exactly), the precision and the versions of every converter involved.
    extra: anything else the model depends on (int8: the calibration frames' hash).
    """
    import openvino
    import tensorflow as tf

    record = {
        "extractor": provenance,
        "weights_arrays_sha256": sha256_model_weights(keras_model),
        "precision": precision,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "openvino": openvino.__version__,
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:32]


def convert_keras_model(keras_model: keras.Model, image_size: int) -> Any:
    """The Keras model as an openvino.Model: uint8 (batch, image_size, image_size, 3) -> float32 "features".

    Traced as a tf.function returning a dict, so the converted model has that one output (traced from the bare
    tensor, OpenVINO also lists intermediate activations as outputs). ExtractorError when it cannot convert.
    """
    import openvino
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ExtractorError(
            f"--runtime openvino converts through TensorFlow: it needs KERAS_BACKEND=tensorflow "
            f"(the Keras backend is {keras.backend.backend()!r}); use --runtime keras"
        )
    signature = [tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="frames")]
    traced = tf.function(
        lambda frames: {OUTPUT_NAME: keras_model(frames, training=False)}, input_signature=signature, autograph=False
    )
    try:
        return openvino.convert_model(traced.get_concrete_function())
    # The converter raises its own OpConversionFailure, RuntimeError or others, depending on the frontend.
    except Exception as err:
        raise ExtractorError(
            f"OpenVINO cannot convert {keras_model.name}: {error_summary(err)}; use --runtime keras"
        ) from err


def openvino_extractor(
    name: str,
    provenance: dict[str, Any],
    keras_model: keras.Model,
    keras_embed: Callable[[np.ndarray], np.ndarray],
) -> OpenVINOExtractor:
    """The extractor's Keras model on OpenVINO f32: converted (or taken from the compile cache), compiled, checked.

    Raises ExtractorError (one line) when OpenVINO is missing, cannot convert it, or gives other features.
    """
    if openvino_version() is None:
        raise ExtractorError("--runtime openvino needs OpenVINO: pip install 'featcache[openvino]'")
    image_size, feature_dim = int(provenance["image_size"]), int(provenance["feature_dim"])
    key = compile_key(provenance, keras_model, "f32")
    ir_path = cached_ir(key, lambda: convert_keras_model(keras_model, image_size))
    candidate = compile_ir(ir_path, image_size, feature_dim)
    check_same_features(name, keras_probe_features(ir_path, keras_embed, image_size), candidate)
    return candidate
