"""MobileNetV2 weights trained on synthetic images, for the benchmarks that need features a head can learn from.

ImageNet's weights cannot be downloaded here, and `calibrated_weights.py`'s random ones give features with no class
information for the demo task (heads at chance), so they cannot show what int8 costs in head accuracy. These
weights come from training the same backbone, briefly, to say where a disc is and how large: a textured
background, a disc of a random colour at a random place and size, the targets its centre and radius. The demo
classes differ by how the disc moves, so features that locate it are features a sequence head can classify by.
The training images are drawn here, not taken from the demo videos, so no benchmark video is trained on. It trains
at 128 px (a third of the cost; MobileNetV2's weights do not depend on the input size), then sets the BatchNorm
statistics at the extractor's size on training images (`calibrated_weights.set_batchnorm_statistics`: Keras's
MobileNetV2 updates them with momentum 0.999, so a few hundred steps leave them near their initial values). Keras 3
public API only; made once per image size and seed, then reused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.calibrated_weights import (
    WEIGHTS_FOLDER,
    mobilenet_v2_backbone,
    save_weights_atomically,
    set_batchnorm_statistics,
)

BATCH_SIZE = 32
TRAINING_STEPS = 300
TRAINING_SIZE = 128
STATISTICS_IMAGES = 32


def synthetic_disc_batch(rng: np.random.Generator, batch_size: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 in [-1, 1] as after MobileNetV2's preprocess_input, (batch, size, size, 3); targets
    float32 (batch, 3): the disc's centre x, y and radius, as fractions of the image size)."""
    coarse = rng.uniform(0.0, 1.0, size=(batch_size, 8, 8, 3))
    background = np.repeat(np.repeat(coarse, image_size // 8 + 1, axis=1), image_size // 8 + 1, axis=2)
    background = background[:, :image_size, :image_size] * 0.6 + rng.uniform(
        0, 0.4, (batch_size, image_size, image_size, 3)
    )
    targets = np.stack(
        [rng.uniform(0.1, 0.9, batch_size), rng.uniform(0.1, 0.9, batch_size), rng.uniform(0.05, 0.2, batch_size)],
        axis=1,
    )
    coordinates = (np.arange(image_size) + 0.5) / image_size
    distance = np.hypot(
        coordinates[None, None, :] - targets[:, 0, None, None], coordinates[None, :, None] - targets[:, 1, None, None]
    )
    coverage = np.clip((targets[:, 2, None, None] - distance) * image_size + 0.5, 0.0, 1.0)[..., None]
    colours = rng.uniform(0.0, 1.0, size=(batch_size, 1, 1, 3))
    images = background * (1 - coverage) + colours * coverage
    return (images * 2.0 - 1.0).astype(np.float32), targets.astype(np.float32)


def trained_mobilenet_v2_weights(image_size: int, seed: int = 0, steps: int = TRAINING_STEPS) -> Path:
    """A weights file for `featcache embed --extractor mobilenet_v2 --weights FILE` (trained once, then reused)."""
    path = WEIGHTS_FOLDER / f"mobilenet_v2_{image_size}px_seed{seed}_discs{steps}.weights.h5"
    if path.exists():
        return path
    import keras

    keras.utils.set_random_seed(seed)
    training_backbone = mobilenet_v2_backbone(TRAINING_SIZE)
    model = keras.Sequential([training_backbone, keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(seed)
    for step in range(steps):
        loss = model.train_on_batch(*synthetic_disc_batch(rng, BATCH_SIZE, TRAINING_SIZE))
        if step % 25 == 0 or step == steps - 1:
            print(f"[trained_weights] step {step + 1}/{steps}: mse {float(loss):.4f}", file=sys.stderr, flush=True)
    backbone = mobilenet_v2_backbone(image_size)
    backbone.set_weights(training_backbone.get_weights())
    set_batchnorm_statistics(backbone, synthetic_disc_batch(rng, STATISTICS_IMAGES, image_size)[0])
    return save_weights_atomically(backbone, path)
