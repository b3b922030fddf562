"""Decoding the sampled frames of one video with OpenCV, sequentially, in order, as RGB.

STUB: interface fixed, body to be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.config import SamplingConfig


@dataclass(frozen=True)
class SampledFrames:
    """The frames taken from one video.

    frames: uint8, shape (length, image_size, image_size, 3), RGB, in temporal order.
    frame_indices: int32, shape (length,), index of each frame in decode order.
    timestamps_ms: float32, shape (length,), frame_index / video_fps * 1000 (0 where fps is unknown).
    video_fps: the container's frame rate (0.0 when it does not say).
    video_num_frames: frames actually decoded (not CAP_PROP_FRAME_COUNT, which can lie).
    video_width, video_height: the decoded frame size before resizing.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_ms: np.ndarray
    video_fps: float
    video_num_frames: int
    video_width: int
    video_height: int


def read_sampled_frames(path: Path, sampling: SamplingConfig, image_size: int) -> SampledFrames:
    """Decode `path` sequentially (no seeking) and return the sampled frames resized to a square.

    Raises VideoDecodeError (with the path and the reason) when the file cannot be opened or yields no frame.
    """
    raise NotImplementedError
