"""The frames every extractor takes: uint8 RGB batches of one square size (check_frames), without Keras."""

from __future__ import annotations

import numpy as np


def check_frames(frames: np.ndarray, image_size: int) -> None:
    """Reject frames the pipeline should never produce (a caller bug, not user input)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (image_size, image_size, 3):
        raise ValueError(
            f"embed_frames expects uint8 frames of shape (batch, {image_size}, {image_size}, 3), "
            f"got {frames.dtype} {frames.shape}"
        )
