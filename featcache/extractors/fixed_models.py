"""The two extractors featcache started with: MobileNetV2 (ImageNet, file or random weights) and the notebook's CNN.

Each is a backbone behind a fixed Rescaling of uint8 pixels. Their weights files are the backbone's
model.save_weights (the layer named like the extractor inside the built model).
"""

from __future__ import annotations

from pathlib import Path

import keras

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.built_model import BuiltModel, uint8_frames_model
from featcache.extractors.weights import (
    download_mobilenet_v2_imagenet,
    error_summary,
    existing_weights_file,
    load_weights_file,
)
from featcache.files import sha256_file

# The notebook CNN halves the image four times before Flatten, so its output is (size/16)^2 * 128.
SCRATCH_CNN_DOWNSAMPLING = 16
# How each scales uint8 pixels, in words, as the cache's provenance records it (the Rescaling layers below do it).
MOBILENET_V2_PREPROCESSING = "x / 127.5 - 1 (keras.applications.mobilenet_v2.preprocess_input), RGB"
SCRATCH_CNN_PREPROCESSING = "x / 255, RGB"


def build_mobilenet_v2(config: ExtractorConfig) -> BuiltModel:
    """`mobilenet_v2`: MobileNetV2 without its classifier, average-pooled (1280-d), fed x / 127.5 - 1."""
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
        raise ExtractorError(
            f"mobilenet_v2 cannot be built at --image-size / image_size {size}: {error_summary(err)}"
        ) from err
    if weights_path is not None:
        load_weights_file(backbone, weights_path, config)
    scale_pixels = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_pixels")
    model = uint8_frames_model(backbone, scale_pixels, size, name="mobilenet_v2_extractor")
    return BuiltModel.from_keras_model(
        model, _sha256_or_none(weights_path), MOBILENET_V2_PREPROCESSING, weights_backbone=backbone
    )


def build_scratch_cnn(config: ExtractorConfig) -> BuiltModel:
    """`scratch_cnn`: the notebook's CNN, four conv blocks ('same' padding, ReLU) each ending in a 2x2 max-pool,
    then Flatten."""
    if config.weights == "imagenet":
        raise ExtractorError(
            "scratch_cnn has no ImageNet weights; "
            "pass --weights / weights PATH (a .weights.h5 file) or --weights / weights random"
        )
    size = config.image_size
    if size < SCRATCH_CNN_DOWNSAMPLING:
        raise ExtractorError(
            f"scratch_cnn needs --image-size / image_size of at least {SCRATCH_CNN_DOWNSAMPLING}, got {size}"
        )
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
    backbone = keras.Model(inputs, keras.layers.Flatten(name="flatten")(x), name="scratch_cnn")
    if weights_path is not None:
        load_weights_file(backbone, weights_path, config)
    scale_pixels = keras.layers.Rescaling(1 / 255, offset=0.0, name="scale_pixels")
    model = uint8_frames_model(backbone, scale_pixels, size, name="scratch_cnn_extractor")
    return BuiltModel.from_keras_model(
        model, _sha256_or_none(weights_path), SCRATCH_CNN_PREPROCESSING, weights_backbone=backbone
    )


def _sha256_or_none(weights_path: str | None) -> str | None:
    """The weights file's sha256; None for random weights (no file)."""
    return None if weights_path is None else sha256_file(Path(weights_path))
