"""What every extractor builder returns (BuiltModel), and the pieces the Keras builders share.

A builder (featcache.extractors.registry lists them) turns an ExtractorConfig into a BuiltModel: a frozen
model that takes uint8 RGB frames and scales them itself, so only uint8 crosses to the device, plus what
the cache's provenance records about it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from featcache.extractors.frame_batches import check_frames


@dataclass(frozen=True)
class BuiltModel:
    """A built extractor model and what its provenance records.

    embed_frames: uint8 RGB frames, shape (batch, image_size, image_size, 3) -> float32 (batch, feature_dim).
    feature_dim: width of one frame's feature vector.
    weights_sha256: of the weights file / model file / preset or SavedModel folder, or of the loaded weight
      arrays where Keras downloaded them itself (imagenet, remote presets); None for random weights.
    preprocessing: how pixels are scaled inside the model, in words.
    keras_model: the frozen Keras model behind embed_frames, uint8 (batch, size, size, 3) -> float32
      (batch, feature_dim) with the scaling as its first layers; None for tfhub (a TF SavedModel, not Keras).
    weights_backbone: the part of keras_model whose weights a `--weights FILE` holds (its model.save_weights
      writes such a file); None where the weights come another way (keras_file, keras_hub, tfhub).
    """

    embed_frames: Callable[[np.ndarray], np.ndarray]
    feature_dim: int
    weights_sha256: str | None
    preprocessing: str
    keras_model: keras.Model | None = None
    weights_backbone: keras.Model | None = None

    @classmethod
    def from_keras_model(
        cls,
        model: keras.Model,
        weights_sha256: str | None,
        preprocessing: str,
        weights_backbone: keras.Model | None = None,
    ) -> BuiltModel:
        """Freeze `model` (uint8 frames -> float32 features) and embed through it in batches."""
        model.trainable = False
        feature_dim = int(model.output_shape[-1])
        return cls(
            _batched_predict(model, feature_dim), feature_dim, weights_sha256, preprocessing, model, weights_backbone
        )


def uint8_frames_model(
    backbone: keras.Model, preprocess: keras.layers.Layer, image_size: int, name: str
) -> keras.Model:
    """uint8 frames (batch, image_size, image_size, 3) -> `preprocess` -> `backbone` (inference mode), as one model."""
    frames = keras.Input((image_size, image_size, 3), dtype="uint8", name="frames")
    return keras.Model(frames, backbone(preprocess(frames), training=False), name=name)


def _batched_predict(model: keras.Model, feature_dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """embed_frames for a Keras model, through predict_on_batch (a compiled call, no per-call predict() setup).

    Under JAX every new batch shape is a new compilation, so a smaller batch is padded with black frames
    up to the largest batch seen and the padding rows are dropped: one shape, compiled once.
    """
    pad_to_largest_batch = keras.backend.backend() == "jax"
    largest_batch = 0

    def embed_frames(frames: np.ndarray) -> np.ndarray:
        nonlocal largest_batch
        check_frames(frames, model.input_shape[1])
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
