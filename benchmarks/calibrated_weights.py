"""Random MobileNetV2 weights whose features carry information, for benchmarks that cannot download ImageNet's.

Randomly initialised MobileNetV2 outputs ~1e-11 for every input (its BatchNorm layers hold untrained statistics,
and activations shrink through its ~50 layers), and featcache refuses such features after 8 videos
(`embedded_videos.FeatureInformationCheck`). Setting each BatchNorm layer's moving statistics to those of its
actual inputs, layer by layer, on a batch of seeded noise images keeps activations at unit scale: the same
architecture and compute, features that vary with the input. The benchmarks measure speed; no accuracy figure
comes from these weights. Keras 3 public API only, so `benchmarks/gpu.py` (JAX, no TensorFlow) uses it too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

WEIGHTS_FOLDER = Path(tempfile.gettempdir()) / "featcache-bench-weights"
CALIBRATION_IMAGES = 16


def calibrated_mobilenet_v2_weights(image_size: int, seed: int = 0) -> Path:
    """A weights file for `featcache embed --extractor mobilenet_v2 --weights FILE` (made once, then reused)."""
    path = WEIGHTS_FOLDER / f"mobilenet_v2_{image_size}px_seed{seed}_calibrated.weights.h5"
    if path.exists():
        return path
    import keras

    keras.utils.set_random_seed(seed)
    model = mobilenet_v2_backbone(image_size)
    images = (
        np.random.default_rng(seed)
        .uniform(-1.0, 1.0, size=(CALIBRATION_IMAGES, image_size, image_size, 3))
        .astype(np.float32)
    )  # as after preprocess_input
    set_batchnorm_statistics(model, images)
    return save_weights_atomically(model, path)


def mobilenet_v2_backbone(image_size: int):
    """MobileNetV2 without its top, average-pooled, random weights: the backbone `--weights FILE` loads."""
    import keras

    return keras.applications.MobileNetV2(
        include_top=False, pooling="avg", input_shape=(image_size, image_size, 3), weights=None
    )


def set_batchnorm_statistics(model, images: np.ndarray) -> None:
    """Set each BatchNormalization layer's moving mean and variance to those of its inputs on `images`, layer by
    layer from the input on (each layer sees the already-set layers before it)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            inputs = np.asarray(keras.Model(model.inputs, layer.input).predict(images, verbose=0))
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, inputs.mean(axis=(0, 1, 2)), inputs.var(axis=(0, 1, 2)) + 1e-3])


def save_weights_atomically(model, path: Path) -> Path:
    WEIGHTS_FOLDER.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.weights.h5")
    model.save_weights(temporary)
    temporary.replace(path)  # whole or absent: parallel benchmark runs may make it at once
    return path
