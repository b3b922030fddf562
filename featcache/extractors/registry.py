"""Frozen image models that turn frames into feature vectors: a registry of named extractors.

Every extractor takes uint8 RGB frames and does its own scaling inside the model graph, so only uint8
crosses to the device. `mobilenet_v2`, `scratch_cnn` and the extractors of featcache.extractors.backbones
(`keras:NAME`, `keras_file`, `keras_hub:PRESET`) are Keras 3 models and run under any Keras backend;
`tfhub` loads a TensorFlow SavedModel and needs KERAS_BACKEND=tensorflow. The names and dims are listed
by featcache.extractors.catalog, which imports no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from featcache.extractors.backbones import BuiltBackbone, build_keras_application, build_keras_file_model, build_keras_hub_model
from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX, KERAS_FILE, KERAS_HUB_PREFIX, available_extractors
from featcache.extractors.weights import (
    download_mobilenet_v2_imagenet,
    error_summary,
    existing_weights_file,
    load_weights_file,
)
from featcache.files import sha256_file, sha256_folder


@dataclass
class Extractor:
    """A loaded, frozen extractor.

    embed_frames: uint8 RGB frames, shape (batch, image_size, image_size, 3) -> float32 (batch, feature_dim).
      Preprocessing (scaling to the model's range) happens inside, on the device.
    provenance: JSON-able dict stored as the cache's `extractor` attribute: name, weights (source as given),
      weights_sha256 (None for random), handle, image_size, preprocessing (text), feature_dim, seed.
    """

    name: str
    image_size: int
    feature_dim: int
    embed_frames: Callable[[np.ndarray], np.ndarray]
    provenance: dict[str, Any] = field(default_factory=dict)


# The notebook CNN halves the image four times before Flatten, so its output is (size/16)^2 * 128.
SCRATCH_CNN_DOWNSAMPLING = 16


def _mobilenet_v2_backbone(config: ExtractorConfig) -> tuple[keras.Model, str | None]:
    """MobileNetV2 without its classifier, average-pooled; returns the model and the weights file used."""
    size = config.image_size
    if config.weights == "imagenet":
        weights_path = download_mobilenet_v2_imagenet(size)
    elif config.weights == "random":
        weights_path = None
    else:
        weights_path = existing_weights_file(config)
    if weights_path is None:
        keras.utils.set_random_seed(config.seed)
    try:
        backbone = keras.applications.MobileNetV2(
            include_top=False, pooling="avg", input_shape=(size, size, 3), weights=None
        )
    except ValueError as err:
        raise ExtractorError(f"mobilenet_v2 cannot be built at --image-size {size}: {error_summary(err)}") from err
    if weights_path is not None:
        load_weights_file(backbone, weights_path, config)
    return backbone, weights_path


def _scratch_cnn_backbone(config: ExtractorConfig) -> tuple[keras.Model, str | None]:
    """The notebook's CNN: four conv blocks ('same' padding, ReLU) each ending in a 2x2 max-pool, then Flatten."""
    if config.weights == "imagenet":
        raise ExtractorError("scratch_cnn has no ImageNet weights; pass --weights PATH (a .weights.h5 file) or --weights random")
    size = config.image_size
    if size < SCRATCH_CNN_DOWNSAMPLING:
        raise ExtractorError(f"scratch_cnn needs --image-size of at least {SCRATCH_CNN_DOWNSAMPLING}, got {size}")
    weights_path = None if config.weights == "random" else existing_weights_file(config)
    if weights_path is None:
        keras.utils.set_random_seed(config.seed)
    blocks = [[(32, 3), (32, 3)], [(64, 3), (64, 3)], [(128, 3), (128, 3)], [(128, 4), (128, 3)]]
    inputs = keras.Input((size, size, 3), name="scaled_frames")
    x = inputs
    for block_index, convolutions in enumerate(blocks, start=1):
        for conv_index, (filters, kernel_size) in enumerate(convolutions, start=1):
            x = keras.layers.Conv2D(
                filters, kernel_size, padding="same", activation="relu", name=f"block{block_index}_conv{conv_index}"
            )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block_index}_pool")(x)
    outputs = keras.layers.Flatten(name="flatten")(x)
    backbone = keras.Model(inputs, outputs, name="scratch_cnn")
    if weights_path is not None:
        load_weights_file(backbone, weights_path, config)
    return backbone, weights_path


@dataclass(frozen=True)
class _KerasExtractorSpec:
    """How to build one Keras extractor and how it scales uint8 pixels."""

    build_backbone: Callable[[ExtractorConfig], tuple[keras.Model, str | None]]
    scale: float
    offset: float
    preprocessing: str


_KERAS_EXTRACTORS = {
    "mobilenet_v2": _KerasExtractorSpec(
        build_backbone=_mobilenet_v2_backbone,
        scale=1 / 127.5,
        offset=-1.0,
        preprocessing="x / 127.5 - 1 (keras.applications.mobilenet_v2.preprocess_input), RGB",
    ),
    "scratch_cnn": _KerasExtractorSpec(
        build_backbone=_scratch_cnn_backbone,
        scale=1 / 255,
        offset=0.0,
        preprocessing="x / 255, RGB",
    ),
}

__all__ = ["Extractor", "available_extractors", "build_keras_model", "load_extractor"]


def _backbone_builder(name: str) -> Callable[[ExtractorConfig], BuiltBackbone] | None:
    """The featcache.extractors.backbones builder of a prefixed name (keras:NAME, keras_file, keras_hub:PRESET), else None."""
    if name.startswith(KERAS_APPLICATION_PREFIX):
        return build_keras_application
    if name == KERAS_FILE:
        return build_keras_file_model
    if name.startswith(KERAS_HUB_PREFIX) and len(name) > len(KERAS_HUB_PREFIX):
        return build_keras_hub_model
    return None


def load_extractor(config: ExtractorConfig) -> Extractor:
    """Build the extractor; raises ExtractorError (one line, says what to do) when it cannot."""
    if config.name == "tfhub":
        return _load_tfhub_extractor(config)
    builder = _backbone_builder(config.name)
    if builder is None and config.name not in _KERAS_EXTRACTORS:
        choices = [name for name in available_extractors() if not name.startswith(KERAS_APPLICATION_PREFIX)]
        raise ExtractorError(
            f"unknown extractor {config.name!r}; choose one of {', '.join(choices)} or keras:NAME (`featcache extractors` lists them)"
        )
    if config.handle is not None:
        raise ExtractorError(f"--handle only applies to --extractor tfhub, not {config.name}")
    if builder is not None:
        built = builder(config)
        feature_dim = int(built.model.output_shape[-1])
        provenance = _provenance(config, built.weights_sha256, built.preprocessing, feature_dim)
        return Extractor(config.name, config.image_size, feature_dim, _batched_predict(built.model, feature_dim), provenance)
    model, weights_path = _build_keras_model(config)
    feature_dim = int(model.output_shape[-1])
    provenance = _provenance(
        config,
        weights_sha256=None if weights_path is None else sha256_file(Path(weights_path)),
        preprocessing=_KERAS_EXTRACTORS[config.name].preprocessing,
        feature_dim=feature_dim,
    )
    return Extractor(config.name, config.image_size, feature_dim, _batched_predict(model, feature_dim), provenance)


def build_keras_model(config: ExtractorConfig) -> keras.Model:
    """The frozen Keras model behind a Keras extractor: uint8 (batch, size, size, 3) -> float32 (batch, feature_dim).

    Scaling is the model's first layer, so callers (benchmarks, tests) feed raw uint8 frames.
    """
    builder = _backbone_builder(config.name)
    if builder is not None:
        return builder(config).model
    if config.name not in _KERAS_EXTRACTORS:
        raise ExtractorError(f"{config.name!r} is not a Keras extractor; choose one of {', '.join(_KERAS_EXTRACTORS)} or a keras:NAME")
    return _build_keras_model(config)[0]


def _build_keras_model(config: ExtractorConfig) -> tuple[keras.Model, str | None]:
    spec = _KERAS_EXTRACTORS[config.name]
    backbone, weights_path = spec.build_backbone(config)
    size = config.image_size
    frames = keras.Input((size, size, 3), dtype="uint8", name="frames")
    scaled = keras.layers.Rescaling(spec.scale, offset=spec.offset, name="scale_pixels")(frames)
    model = keras.Model(frames, backbone(scaled, training=False), name=f"{config.name}_extractor")
    model.trainable = False
    return model, weights_path


def _batched_predict(model: keras.Model, feature_dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """embed_frames for a Keras model, through predict_on_batch (a compiled call, no per-call predict() setup).

    Under JAX every new batch shape is a new compilation, so a smaller batch is padded with black frames
    up to the largest batch seen and the padding rows are dropped: one shape, compiled once.
    """
    pad_to_largest_batch = keras.backend.backend() == "jax"
    largest_batch = 0

    def embed_frames(frames: np.ndarray) -> np.ndarray:
        nonlocal largest_batch
        _check_frames(frames, model.input_shape[1])
        num_frames = len(frames)
        if num_frames == 0:
            return np.zeros((0, feature_dim), dtype=np.float32)
        if pad_to_largest_batch:
            largest_batch = max(largest_batch, num_frames)
            padding = np.zeros((largest_batch - num_frames, *frames.shape[1:]), dtype=np.uint8)
            frames = np.concatenate([frames, padding]) if len(padding) else frames
        features = model.predict_on_batch(frames)
        return np.asarray(features[:num_frames], dtype=np.float32)

    return embed_frames


def _load_tfhub_extractor(config: ExtractorConfig) -> Extractor:
    """A TF-Hub image feature-vector model loaded with tensorflow_hub.load, wrapped in one traced tf.function."""
    if not config.handle:
        raise ExtractorError("--extractor tfhub needs --handle URL_OR_FOLDER (a TF-Hub image feature-vector model)")
    if config.weights != ExtractorConfig.weights:
        raise ExtractorError(f"tfhub takes its weights from --handle; leave --weights unset (got {config.weights!r})")
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
            "pass --handle a reachable TF-Hub URL or a local SavedModel folder"
        ) from err
    if not callable(module):
        raise ExtractorError(f"TF-Hub model {config.handle} is not callable; featcache needs a TF2 SavedModel (image feature vector)")

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
        _check_frames(frames, size)
        if len(frames) == 0:
            return np.zeros((0, feature_dim), dtype=np.float32)
        return run_module(tf.constant(frames)).numpy()

    provenance = _provenance(
        config,
        weights_sha256=sha256_folder(model_folder),
        preprocessing="x / 255 (float32 in [0, 1]), RGB",
        feature_dim=feature_dim,
    )
    return Extractor(config.name, size, feature_dim, embed_frames, provenance)


def _check_frames(frames: np.ndarray, image_size: int) -> None:
    """Reject frames the pipeline should never produce (a caller bug, not user input)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (image_size, image_size, 3):
        raise ValueError(
            f"embed_frames expects uint8 frames of shape (batch, {image_size}, {image_size}, 3), "
            f"got {frames.dtype} {frames.shape}"
        )


def _provenance(config: ExtractorConfig, weights_sha256: str | None, preprocessing: str, feature_dim: int) -> dict[str, Any]:
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
