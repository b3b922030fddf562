"""Sequence heads trained on cached features: a registry of small Keras models.

Every head takes [features float32 (batch, num_frames, feature_dim), lengths int32 (batch,)] and returns
softmax probabilities float32 (batch, num_classes). Frames at or beyond a video's length are padding: the
mask comes from `lengths`, never from zero-valued features, so padding values cannot change a prediction.

Keras 3 public API only (keras.layers, keras.ops), so the heads run under any KERAS_BACKEND.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import layers, ops

from featcache.config import SEQUENCE_HEAD_NAMES, HeadConfig
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


@keras.saving.register_keras_serializable(package="featcache")
class MaskFrames(layers.Layer):
    """[features (batch, T, C), mask bool (batch, T)] -> features with padded frames set to 0.

    Before each convolution: a kernel straddling a video's end then reads zeros, exactly as at the end of an
    unpadded sequence, whatever the padding held.
    """

    def call(self, inputs):
        features, mask = inputs
        return features * ops.cast(mask, features.dtype)[:, :, None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="featcache")
class PositionEmbedding(layers.Layer):
    """features (batch, T, C) -> features + a vector per frame position: learned, or the fixed sinusoids of
    "Attention Is All You Need" (sin on even channels, cos on odd ones, wavelengths up to 10000)."""

    def __init__(self, num_frames: int, kind: str = "learned", **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_frames = int(num_frames)
        self.kind = kind

    def build(self, input_shape) -> None:
        if self.kind == "learned":
            self.positions = self.add_weight(
                shape=(self.num_frames, input_shape[-1]),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="positions",
            )

    def call(self, features):
        if self.kind == "learned":
            return features + ops.cast(self.positions, features.dtype)[None]
        width = features.shape[-1]
        positions = ops.cast(ops.arange(self.num_frames), "float32")[:, None]
        channels = ops.arange(width)
        frequencies = ops.power(10000.0, -ops.cast(2 * (channels // 2), "float32") / width)[None, :]
        angles = positions * frequencies
        table = ops.where(ops.equal(channels % 2, 0)[None, :], ops.sin(angles), ops.cos(angles))
        return features + ops.cast(table, features.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "num_frames": self.num_frames, "kind": self.kind}


@keras.saving.register_keras_serializable(package="featcache")
class ClassToken(layers.Layer):
    """[features (batch, T, C), mask (batch, T)] -> (batch, 1 + T, C) with a learned token first, and its mask
    (the token is always real)."""

    def build(self, input_shape) -> None:
        self.token = self.add_weight(shape=(1, 1, input_shape[0][-1]), initializer="zeros", name="token")

    def call(self, inputs):
        features, mask = inputs
        batch_size = ops.shape(features)[0]
        token = ops.broadcast_to(ops.cast(self.token, features.dtype), (batch_size, 1, features.shape[-1]))
        token_mask = ops.ones((batch_size, 1), dtype="bool")
        return ops.concatenate([token, features], axis=1), ops.concatenate([token_mask, ops.cast(mask, "bool")], axis=1)

    def compute_output_shape(self, input_shape):
        features_shape, mask_shape = input_shape
        frames = None if features_shape[1] is None else features_shape[1] + 1
        return (features_shape[0], frames, features_shape[2]), (mask_shape[0], frames)


@keras.saving.register_keras_serializable(package="featcache")
class AttentionMask(layers.Layer):
    """mask bool (batch, T) -> bool (batch, T, T): every frame attends to the real frames only (the keys)."""

    def call(self, frame_mask):  # not `mask`: Keras reserves that argument name for its own masking
        frame_mask = ops.cast(frame_mask, "bool")
        return ops.logical_and(ops.expand_dims(ops.ones_like(frame_mask), 2), ops.expand_dims(frame_mask, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[1])


@keras.saving.register_keras_serializable(package="featcache")
class FirstFrame(layers.Layer):
    """(batch, T, C) -> (batch, C): the output at position 0 (the class token's)."""

    def call(self, features):
        return features[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="featcache")
class NormalizedMaskedMean(layers.Layer):
    """[features (batch, T, D), mask bool (batch, T)] -> (batch, D), unit rows: the mean over the real frames of the
    L2-normalized frames, normalized again (a zero-shot video embedding, featcache.text.zeroshot)."""

    def call(self, inputs):
        features, mask = inputs
        frames = features / ops.maximum(ops.norm(features, axis=-1, keepdims=True), 1e-12)
        weights = ops.cast(mask, features.dtype)[:, :, None]
        mean = ops.sum(frames * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return mean / ops.maximum(ops.norm(mean, axis=-1, keepdims=True), 1e-12)

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


def _transformer_head(features, mask, head_config: HeadConfig, num_classes: int):
    """Pre-norm Transformer encoder: project to `units`, add positions, `num_layers` x (self-attention over the
    real frames + a GELU feed-forward of 2 x units), then mean over the real frames or the class token."""
    width = head_config.units
    hidden = layers.Dropout(head_config.dropout, name="input_dropout")(features)
    hidden = layers.Dense(width, name="projection")(hidden)
    hidden = PositionEmbedding(features.shape[1], head_config.positions, name="positions")(hidden)
    if head_config.pooling == "cls":
        hidden, mask = ClassToken(name="class_token")([hidden, mask])
    attention_mask = AttentionMask(name="attention_mask")(mask)
    for block in range(head_config.num_layers):
        attended = layers.LayerNormalization(name=f"block{block}_attention_norm")(hidden)
        attended = layers.MultiHeadAttention(
            head_config.num_heads, key_dim=max(1, width // head_config.num_heads), name=f"block{block}_attention"
        )(attended, attended, attention_mask=attention_mask)
        hidden = layers.Add(name=f"block{block}_attention_residual")([hidden, attended])
        fed = layers.LayerNormalization(name=f"block{block}_feed_forward_norm")(hidden)
        fed = layers.Dense(2 * width, activation="gelu", name=f"block{block}_feed_forward_in")(fed)
        fed = layers.Dense(width, name=f"block{block}_feed_forward_out")(fed)
        hidden = layers.Add(name=f"block{block}_feed_forward_residual")([hidden, fed])
    hidden = layers.LayerNormalization(name="final_norm")(hidden)
    if head_config.pooling == "cls":
        summary = FirstFrame(name="class_token_output")(hidden)
    else:
        summary = MaskedMean(name="masked_mean")([hidden, mask])
    return _classifier_top(summary, head_config, num_classes)


def _tcn_head(features, mask, head_config: HeadConfig, num_classes: int):
    """Temporal convolutional network: project to `units` channels, then residual ReLU convolutions with dilations
    1, 2, 4, ... over the real frames (padding zeroed before each), then the mean over real frames.
    Levels: `num_layers`, or more where needed for the receptive field, 1 + (kernel_size - 1) x (2^levels - 1)
    frames, centred ("same" padding), to span the head's num_frames (tcn_levels_to_cover)."""
    hidden = layers.Dropout(head_config.dropout, name="input_dropout")(features)
    hidden = layers.Dense(head_config.units, name="projection")(hidden)
    # Enough levels for the (centred) receptive field to span the clip: with 2 levels (7 frames at kernel 3) a
    # 90-frame video's order shows only in the few windows at segment boundaries, which the mean over frames drowns
    # (BENCHMARKS.md section 6, long order-only set: test 0.20 -> 1.00 with the receptive field spanning T).
    num_levels = max(head_config.num_layers, tcn_levels_to_cover(features.shape[1], head_config.kernel_size))
    for level in range(num_levels):
        convolved = MaskFrames(name=f"level{level}_mask")([hidden, mask])
        convolved = layers.Conv1D(
            head_config.units,
            head_config.kernel_size,
            dilation_rate=2**level,
            padding="same",
            activation="relu",
            name=f"level{level}_convolution",
        )(convolved)
        hidden = layers.Add(name=f"level{level}_residual")([hidden, convolved])
    return _classifier_top(MaskedMean(name="masked_mean")([hidden, mask]), head_config, num_classes)


def tcn_levels_to_cover(num_frames: int, kernel_size: int) -> int:
    """The fewest dilation levels (1, 2, 4, ...) whose receptive field 1 + (k - 1)(2^L - 1) spans num_frames."""
    if kernel_size < 2:  # a 1-frame kernel sees one frame at any dilation
        return 1
    levels = 1
    while 1 + (kernel_size - 1) * (2**levels - 1) < num_frames:
        levels += 1
    return levels


# name -> (builder, one-line description). The names are also config.SEQUENCE_HEAD_NAMES (checked at import).
HEADS: dict[str, tuple[Callable, str]] = {
    "lstm": (_recurrent_head(layers.LSTM), "masked LSTM -> Dense(relu) -> Dropout -> softmax (the notebook's head)"),
    "gru": (_recurrent_head(layers.GRU), "masked GRU -> Dense(relu) -> Dropout -> softmax"),
    "meanpool": (_meanpool_head, "mean over real frames -> Dense(relu) -> Dropout -> softmax (order-blind baseline)"),
    "transformer": (
        _transformer_head,
        "Transformer encoder over the real frames (positions, masked attention) "
        "-> mean or class token -> Dense -> softmax",
    ),
    "tcn": (_tcn_head, "dilated residual 1-D convolutions over the real frames -> masked mean -> Dense -> softmax"),
}
assert tuple(HEADS) == SEQUENCE_HEAD_NAMES, "featcache.config.SEQUENCE_HEAD_NAMES must list the heads registry"


def available_heads() -> dict[str, str]:
    """Registry names -> one-line description."""
    return {name: description for name, (_, description) in HEADS.items()}


def build_head(head_config: HeadConfig, num_frames: int, feature_dim: int, num_classes: int) -> keras.Model:
    """An uncompiled head for features of shape (num_frames, feature_dim) and `num_classes` outputs.

    Inputs: features float32 (batch, num_frames, feature_dim), lengths int32 (batch,).
    Output: softmax float32 (batch, num_classes).
    """
    if head_config.head not in HEADS:
        raise InputError(
            f"{head_config.head!r} is not a sequence head (Keras); choose one of {', '.join(HEADS)} "
            "(linear and knn are fitted by featcache.training.baselines)"
        )
    if num_classes < 2:
        raise InputError(f"a classifier needs at least 2 classes, got {num_classes}")
    builder, _ = HEADS[head_config.head]
    features = keras.Input(shape=(num_frames, feature_dim), dtype="float32", name="features")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    mask = LengthMask(num_frames, name="length_mask")(lengths)
    probabilities = builder(features, mask, head_config, num_classes)
    return keras.Model(inputs=[features, lengths], outputs=probabilities, name=f"featcache_{head_config.head}")


def with_text_initialised_output(model: keras.Model, text_embeddings, logit_scale: float) -> keras.Model:
    """The head with its final layer starting from class text embeddings (train --init-from-text).

    The softmax layer reads [the head's last hidden layer, the zero-shot video embedding of its input frames
    (NormalizedMaskedMean)]; its kernel starts at 0 for the hidden units and at logit_scale x the (unit) text
    embeddings for the video embedding, its bias at 0. So the untrained head outputs exactly the zero-shot
    softmax (logit_scale x cosine with each class text), and training moves both parts from there.
    text_embeddings: float32 (num_classes, feature_dim), unit rows, in the model's class order.
    """
    text_embeddings = ops.convert_to_numpy(text_embeddings).astype("float32")
    features, lengths = model.inputs
    mask = model.get_layer("length_mask").output
    hidden = model.get_layer("final_dropout").output
    num_classes, feature_dim = text_embeddings.shape
    if feature_dim != features.shape[-1]:
        raise InputError(
            f"the class text embeddings are {feature_dim}-d but the features {features.shape[-1]}-d; "
            "--init-from-text needs a cache of the same preset's image embeddings"
        )
    video_embedding = NormalizedMaskedMean(name="zero_shot_video_embedding")([features, mask])
    joined = layers.Concatenate(name="hidden_and_video_embedding")([hidden, video_embedding])
    output_layer = layers.Dense(num_classes, activation="softmax", name="text_initialised_probabilities")
    probabilities = output_layer(joined)
    hidden_width = hidden.shape[-1]
    kernel = np.zeros((hidden_width + feature_dim, num_classes), dtype="float32")
    kernel[hidden_width:] = logit_scale * text_embeddings.T
    output_layer.set_weights([kernel, np.zeros(num_classes, dtype="float32")])
    return keras.Model(inputs=[features, lengths], outputs=probabilities, name=f"{model.name}_text_initialised")


def compile_head(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam + sparse categorical cross-entropy + accuracy, as in the notebook."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model
