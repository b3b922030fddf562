"""Which frame indices to take from a video (pure functions, no decoding)."""

from __future__ import annotations

import numpy as np

from featcache.config import SamplingConfig
from featcache.errors import VideoDecodeError

# Tolerance added before flooring k * video_fps / target_fps, so that a product meant to be an integer
# (e.g. 3 * 30 / 10) but computed as 8.999999 still lands on the frame shown at that instant.
_FLOOR_TOLERANCE = 1e-6


def uniform_frame_indices(num_video_frames: int, num_frames: int) -> np.ndarray:
    """`num_frames` indices spread evenly over [0, num_video_frames - 1], first and last included.

    A video with fewer frames than `num_frames` gives all of its frames (0..num_video_frames-1).
    Returns int64, shape (min(num_frames, num_video_frames),), strictly increasing.
    """
    if num_video_frames <= num_frames:
        return np.arange(max(num_video_frames, 0), dtype=np.int64)
    positions = np.linspace(0, num_video_frames - 1, num_frames)
    # Round half up rather than numpy's half-to-even: with a step >= 1 (num_video_frames > num_frames)
    # floor(x + 0.5) is then strictly increasing, which half-to-even is not (1.5 -> 2, 2.5 -> 2).
    indices = np.floor(positions + 0.5).astype(np.int64)
    assert np.all(np.diff(indices) > 0), "uniform indices must be strictly increasing"
    return indices


def fps_frame_indices(num_video_frames: int, video_fps: float, target_fps: float, num_frames: int) -> np.ndarray:
    """One index every 1/target_fps seconds from t=0, at most `num_frames` (0: no limit), within the video.

    Index k is the frame shown at time k / target_fps, i.e. floor(k * video_fps / target_fps + 1e-6).
    Returns int64, strictly increasing (a target rate above the video's frame rate does not repeat frames).
    Raises VideoDecodeError when `video_fps` is not positive (the container does not state its rate).
    """
    if video_fps <= 0:
        raise VideoDecodeError(
            "the video does not state its frame rate, which --sampling fps needs; use --sampling uniform"
        )
    if num_frames == 0:  # every sampled frame of the whole video
        num_frames = int(np.ceil(max(num_video_frames, 0) * target_fps / video_fps)) + 1
    sample_numbers = np.arange(num_frames, dtype=np.float64)
    indices = np.floor(sample_numbers * video_fps / target_fps + _FLOOR_TOLERANCE).astype(np.int64)
    indices = indices[indices < num_video_frames]
    # np.unique sorts and drops the repeats a target rate above the video's rate produces.
    return np.unique(indices)


def sample_frame_indices(num_video_frames: int, video_fps: float, sampling: SamplingConfig) -> np.ndarray:
    """Dispatch on `sampling.mode` to the two functions above; int64, shape (length,), strictly increasing."""
    if sampling.mode == "uniform":
        return uniform_frame_indices(num_video_frames, sampling.num_frames)
    if sampling.mode == "fps":
        assert sampling.fps is not None, "SamplingConfig validates that fps mode has a rate"
        return fps_frame_indices(num_video_frames, video_fps, sampling.fps, sampling.num_frames)
    raise AssertionError(f"SamplingConfig let through an unknown mode {sampling.mode!r}")
