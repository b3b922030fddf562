"""Frozen image models that turn frames into feature vectors: the one registry of extractor builders.

Every name `featcache extractors` lists (featcache.extractors.catalog, which imports no Keras) is served by
one builder in EXTRACTOR_BUILDERS, either under its own name or under its family's prefix (keras:NAME,
keras_hub:PRESET). A builder turns an ExtractorConfig into a BuiltModel; load_extractor adds the provenance
record caches store, build_keras_model hands out the Keras model itself (for benchmarks, exports).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.backbones import build_keras_application, build_keras_file_model, build_keras_hub_model
from featcache.extractors.built_model import BuiltModel
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX, KERAS_FILE, KERAS_HUB_PREFIX, available_extractors
from featcache.extractors.extractor import Extractor
from featcache.extractors.fixed_models import build_mobilenet_v2, build_scratch_cnn
from featcache.extractors.runtimes import KERAS, choose_runtime
from featcache.extractors.tfhub import build_tfhub_model

__all__ = [
    "EXTRACTOR_BUILDERS",
    "Extractor",
    "available_extractors",
    "build_imagenet_backbone",
    "build_keras_model",
    "build_model",
    "extractor_builder",
    "load_extractor",
]

TFHUB = "tfhub"

# Extractor name, or the prefix (ending in ":") of a family of names, -> the builder of its model.
EXTRACTOR_BUILDERS: dict[str, Callable[[ExtractorConfig], BuiltModel]] = {
    "mobilenet_v2": build_mobilenet_v2,
    "scratch_cnn": build_scratch_cnn,
    TFHUB: build_tfhub_model,
    KERAS_FILE: build_keras_file_model,
    KERAS_HUB_PREFIX: build_keras_hub_model,
    KERAS_APPLICATION_PREFIX: build_keras_application,
}


def extractor_builder(name: str) -> Callable[[ExtractorConfig], BuiltModel]:
    """The builder of extractor `name`: its own entry, else its prefix's (keras:ResNet50 -> "keras:").

    Raises ExtractorError listing the valid names for an unknown one.
    """
    prefix, separator, rest = name.partition(":")
    if not separator and name in EXTRACTOR_BUILDERS:
        return EXTRACTOR_BUILDERS[name]
    if separator and rest and prefix + separator in EXTRACTOR_BUILDERS:
        return EXTRACTOR_BUILDERS[prefix + separator]
    choices = [described for described in available_extractors() if not described.startswith(KERAS_APPLICATION_PREFIX)]
    raise ExtractorError(
        f"unknown extractor {name!r}; choose one of {', '.join(choices)} or {KERAS_APPLICATION_PREFIX}NAME "
        "(`featcache extractors` or featcache.available_extractors() lists them)"
    )


def build_model(config: ExtractorConfig) -> BuiltModel:
    """Build the model of `config.name` by its registry builder;
    ExtractorError (one line, says what to do) when it cannot."""
    builder = extractor_builder(config.name)
    if config.handle is not None and config.name != TFHUB:
        raise ExtractorError(f"--handle / handle only applies to --extractor tfhub, not {config.name}")
    return builder(config)


def load_extractor(config: ExtractorConfig, runtime: str = KERAS) -> Extractor:
    """Build the extractor to run on `runtime` ("keras", "openvino" or "auto": featcache.extractors.runtimes).

    Raises ExtractorError (one line, says what to do) when it cannot.
    """
    built = build_model(config)
    provenance = _provenance(config, built.weights_sha256, built.preprocessing, built.feature_dim)
    choice = choose_runtime(runtime, config, built, provenance)
    return Extractor(
        config.name,
        config.image_size,
        built.feature_dim,
        choice.embed_frames,
        provenance,
        choice.runtime,
        choice.note,
        choice.openvino_model,
    )


def build_keras_model(config: ExtractorConfig) -> keras.Model:
    """The frozen Keras model behind an extractor: uint8 (batch, size, size, 3) -> float32 (batch, feature_dim).

    Scaling is the model's first layers, so callers (benchmarks, tests, exports) feed raw uint8 frames.
    Raises ExtractorError for tfhub, whose model is a TensorFlow SavedModel (it is loaded first to find out).
    """
    keras_model = build_model(config).keras_model
    if keras_model is None:
        raise ExtractorError(
            f"{config.name} is a TensorFlow SavedModel, not a Keras model; "
            "choose a Keras extractor (`featcache extractors`)"
        )
    return keras_model


def build_imagenet_backbone(extractor_name: str, image_size: int | None = None) -> keras.Model:
    """The backbone of `extractor_name` with its ImageNet weights,
    built exactly as `embed --weights imagenet` builds it.

    Its model.save_weights file is what `--weights FILE` loads for the same extractor and image size.
    image_size: None for the extractor's own. Raises ExtractorError for an extractor without such a backbone.
    """
    config = ExtractorConfig(name=extractor_name, weights="imagenet", image_size=image_size)
    backbone = build_model(config).weights_backbone
    if backbone is None:
        raise ExtractorError(
            f"{extractor_name} takes no --weights / weights file, so it has no ImageNet backbone to save"
        )
    return backbone


def _provenance(
    config: ExtractorConfig, weights_sha256: str | None, preprocessing: str, feature_dim: int
) -> dict[str, Any]:
    """Every ExtractorConfig field under its own name (so the config can be rebuilt), plus what was loaded."""
    return {
        "name": config.name,
        "weights": config.weights,
        "handle": config.handle,
        "image_size": config.image_size,
        "seed": config.seed,
        "weights_sha256": weights_sha256,
        "preprocessing": preprocessing,
        "feature_dim": feature_dim,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
    }
