"""Sequence heads trained on cached features: a registry of small Keras models.

Every head takes [features float32 (batch, num_frames, feature_dim), lengths int32 (batch,)] and returns
softmax probabilities float32 (batch, num_classes). Frames at or beyond a video's length are padding: the
mask comes from `lengths`, never from zero-valued features, so padding values cannot change a prediction.

Keras 3 public API only (keras.layers, keras.ops), so the heads run under any KERAS_BACKEND.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers, ops

from featcache.config import HEAD_NAMES, HeadConfig
from featcache.errors import InputError


@keras.saving.register_keras_serializable(package="featcache")
class LengthMask(layers.Layer):
    """lengths int32 (batch,) -> bool (batch, num_frames): True for the real frames of each video."""

    def __init__(self, num_frames: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_frames = int(num_frames)

    def call(self, lengths):
        frame_positions = ops.arange(self.num_frames, dtype="int32")
        return ops.less(frame_positions[None, :], ops.cast(lengths, "int32")[:, None])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_frames)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_frames": self.num_frames}


@keras.saving.register_keras_serializable(package="featcache")
class MaskedMean(layers.Layer):
    """[features (batch, T, D), mask bool (batch, T)] -> (batch, D): the mean over real frames only."""

    def call(self, inputs):
        features, mask = inputs
        weights = ops.cast(mask, features.dtype)[:, :, None]
        total = ops.sum(features * weights, axis=1)
        # A video always has at least one frame; the floor only guards a malformed length of 0.
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0]
        return (features_shape[0], features_shape[2])


def _classifier_top(sequence_summary, head_config: HeadConfig, num_classes: int):
    """Dense(relu) -> Dropout -> softmax, shared by every head (the notebook's top)."""
    hidden = layers.Dense(head_config.dense, activation="relu", name="dense")(sequence_summary)
    hidden = layers.Dropout(head_config.final_dropout, name="final_dropout")(hidden)
    return layers.Dense(num_classes, activation="softmax", name="probabilities")(hidden)


def _recurrent_head(layer_class: type) -> Callable:
    def build(features, mask, head_config: HeadConfig, num_classes: int):
        recurrent = layer_class(
            head_config.units,
            dropout=head_config.dropout,
            recurrent_dropout=head_config.recurrent_dropout,
            name=layer_class.__name__.lower(),
        )
        return _classifier_top(recurrent(features, mask=mask), head_config, num_classes)

    return build


def _meanpool_head(features, mask, head_config: HeadConfig, num_classes: int):
    return _classifier_top(MaskedMean(name="masked_mean")([features, mask]), head_config, num_classes)


# name -> (builder, one-line description). The names are also config.HEAD_NAMES (checked at import).
HEADS: dict[str, tuple[Callable, str]] = {
    "lstm": (_recurrent_head(layers.LSTM), "masked LSTM -> Dense(relu) -> Dropout -> softmax (the notebook's head)"),
    "gru": (_recurrent_head(layers.GRU), "masked GRU -> Dense(relu) -> Dropout -> softmax"),
    "meanpool": (_meanpool_head, "mean over real frames -> Dense(relu) -> Dropout -> softmax (order-blind baseline)"),
}
assert tuple(HEADS) == HEAD_NAMES, "featcache.config.HEAD_NAMES must list the heads registry"


def available_heads() -> dict[str, str]:
    """Registry names -> one-line description."""
    return {name: description for name, (_, description) in HEADS.items()}


def build_head(head_config: HeadConfig, num_frames: int, feature_dim: int, num_classes: int) -> keras.Model:
    """An uncompiled head for features of shape (num_frames, feature_dim) and `num_classes` outputs.

    Inputs: features float32 (batch, num_frames, feature_dim), lengths int32 (batch,).
    Output: softmax float32 (batch, num_classes).
    """
    if head_config.head not in HEADS:
        raise InputError(f"unknown head {head_config.head!r}; choose one of {', '.join(HEADS)}")
    if num_classes < 2:
        raise InputError(f"a classifier needs at least 2 classes, got {num_classes}")
    builder, _ = HEADS[head_config.head]
    features = keras.Input(shape=(num_frames, feature_dim), dtype="float32", name="features")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    mask = LengthMask(num_frames, name="length_mask")(lengths)
    probabilities = builder(features, mask, head_config, num_classes)
    return keras.Model(inputs=[features, lengths], outputs=probabilities, name=f"featcache_{head_config.head}")


def compile_head(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam + sparse categorical cross-entropy + accuracy, as in the notebook."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model
