"""Which frame indices to take from a video (pure functions, no decoding).

STUB: interface fixed, body to be written.
"""

from __future__ import annotations

import numpy as np

from featcache.config import SamplingConfig


def uniform_frame_indices(num_video_frames: int, num_frames: int) -> np.ndarray:
    """`num_frames` indices spread evenly over [0, num_video_frames - 1], first and last included.

    A video with fewer frames than `num_frames` gives all of its frames (0..num_video_frames-1).
    Returns int64, shape (min(num_frames, num_video_frames),), strictly increasing.
    """
    raise NotImplementedError


def fps_frame_indices(num_video_frames: int, video_fps: float, target_fps: float, num_frames: int) -> np.ndarray:
    """One index every 1/target_fps seconds from t=0, at most `num_frames`, within the video.

    Index k is the frame shown at time k / target_fps, i.e. floor(k * video_fps / target_fps + 1e-6).
    Returns int64, strictly increasing (a target rate above the video's frame rate does not repeat frames).
    """
    raise NotImplementedError


def sample_frame_indices(num_video_frames: int, video_fps: float, sampling: SamplingConfig) -> np.ndarray:
    """Dispatch on `sampling.mode` to the two functions above."""
    raise NotImplementedError
