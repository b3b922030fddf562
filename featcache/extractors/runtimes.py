"""Which runtime runs a built extractor on frames: Keras (its backend) or OpenVINO (`--runtime`).

Both give the same features (tests/test_openvino_runtime.py proves it per extractor family, and every
conversion is checked on a probe batch before use), so the runtime is provenance, not a setting: a cache
embedded partly by each is one cache, and `predict` may use either. `auto` takes OpenVINO when it is installed
and Keras sees no GPU, for an extractor family OpenVINO is proven on; otherwise Keras, saying why.
FEATCACHE_RUNTIME=keras|openvino pins what `auto` picks on a machine (a test suite, a cluster's workers).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.catalog import KERAS_HUB_PREFIX

if TYPE_CHECKING:  # built_model imports Keras; this module loads without it (an OpenVINO start needs no Keras)
    from featcache.extractors.built_model import BuiltModel

KERAS, OPENVINO, AUTO = "keras", "openvino", "auto"
AUTO_RUNTIME_VARIABLE = "FEATCACHE_RUNTIME"


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime that embeds, its embed_frames, and (for `auto` falling back to Keras) why not OpenVINO.

    openvino_model: the compiled openvino_runtime.OpenVINOExtractor when the runtime is OpenVINO (int8 quantizes it).
    """

    runtime: str
    embed_frames: Callable[[np.ndarray], np.ndarray]
    note: str = ""
    openvino_model: Any = None


def keras_sees_gpu() -> bool:
    """Whether the Keras backend would run the model on a GPU (then OpenVINO's CPU path is no gain)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def why_not_openvino(config: ExtractorConfig, built: BuiltModel) -> str:
    """'' when OpenVINO may run this extractor here, else the one-line reason it may not."""
    import keras

    from featcache.extractors.openvino_runtime import openvino_version

    if openvino_version() is None:
        return "OpenVINO is not installed (pip install 'featcache[openvino]')"
    if built.keras_model is None:
        return f"{config.name} is a TensorFlow SavedModel; its OpenVINO conversion is not proven equal to it"
    if config.name.startswith(KERAS_HUB_PREFIX):
        return "KerasHub encoders are not proven to convert exactly to OpenVINO"
    if keras.backend.backend() != "tensorflow":
        return f"OpenVINO converts through TensorFlow, and the Keras backend is {keras.backend.backend()!r}"
    return ""


def pinned_request(requested: str) -> str:
    """`requested`, with `auto` replaced by what FEATCACHE_RUNTIME pins it to on this machine (when it does)."""
    if requested == AUTO and os.environ.get(AUTO_RUNTIME_VARIABLE) in (KERAS, OPENVINO):
        return os.environ[AUTO_RUNTIME_VARIABLE]
    return requested


def choose_runtime(requested: str, config: ExtractorConfig, built: BuiltModel, provenance: dict) -> RuntimeChoice:
    """The runtime for `requested` ("auto", "keras", "openvino") and this built extractor.

    Raises ExtractorError (one line) when "openvino" is asked for an extractor it cannot run exactly.
    """
    requested = pinned_request(requested)
    if requested == KERAS:
        return RuntimeChoice(KERAS, built.embed_frames)
    reason = why_not_openvino(config, built)
    if requested == AUTO and not reason and keras_sees_gpu():
        return RuntimeChoice(KERAS, built.embed_frames, "Keras sees a GPU")
    if reason:
        if requested == OPENVINO:
            raise ExtractorError(f"--runtime openvino cannot run {config.name}: {reason}; use --runtime keras")
        return RuntimeChoice(KERAS, built.embed_frames, reason)
    from featcache.extractors.openvino_conversion import openvino_extractor

    try:
        compiled = openvino_extractor(config.name, provenance, built.keras_model, built.embed_frames)
    except ExtractorError as err:
        if requested == OPENVINO:
            raise
        return RuntimeChoice(KERAS, built.embed_frames, str(err).removesuffix("; use --runtime keras"))
    return RuntimeChoice(OPENVINO, compiled.embed_frames, openvino_model=compiled)
