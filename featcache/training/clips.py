"""Which stored frames make up a T-frame clip of a cached video: segment-based sampling, as in TSN.

A video with `length` stored frames is cut into T equal segments (whole frames: segment k starts at
floor(k * length / T)); a clip takes one frame from each, in order.
"uniform" takes each segment's frame at the same relative `offset` (0.5: its centre); "random" takes a random
frame of each segment (a new view of every video every epoch, with no decoding: Wang et al., "Temporal Segment
Networks", ECCV 2016). A video with fewer than T stored frames gives all of them, in order, and is padded
(its clip length is its stored length), the same as a short video in the cache itself.
Nothing here reads the cache: positions are indices into each video's stored frames.
"""

from __future__ import annotations

import numpy as np

from featcache.config import CLIP_SAMPLINGS
from featcache.errors import InputError


def clip_positions(
    lengths: np.ndarray,
    num_frames: int,
    mode: str = "uniform",
    rng: np.random.Generator | None = None,
    offset: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Stored-frame positions of one T-frame clip per video, and the clips' lengths.

    lengths: int (N,), each video's stored frames (at least 1). num_frames: T.
    mode: "uniform" (each segment's frame at `offset` in [0, 1)) or "random" (drawn from `rng`).
    Returns positions int64 (N, T), sorted along each row, 0 where padded; clip lengths int32 (N,) = min(length, T).
    """
    if mode not in CLIP_SAMPLINGS:
        raise InputError(f"unknown clip sampling {mode!r}; choose one of {', '.join(CLIP_SAMPLINGS)}")
    if num_frames < 1:
        raise InputError(f"--frames / frames must be at least 1 to sample clips, got {num_frames}")
    if not 0.0 <= offset < 1.0:
        raise InputError(f"a clip offset must be in [0, 1), got {offset}")
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    # Segment k is the stored frames [floor(k L / T), floor((k + 1) L / T)): at least one frame each when L >= T,
    # so a clip never takes a frame twice and its positions strictly increase.
    bounds = (np.arange(num_frames + 1, dtype=np.int64)[None, :] * lengths[:, None]) // num_frames
    starts, widths = bounds[:, :-1], np.maximum(bounds[:, 1:] - bounds[:, :-1], 1)
    if mode == "random":
        if rng is None:
            raise InputError("random clip sampling needs a seeded random generator")
        within = rng.random((len(lengths), num_frames))
    else:
        within = np.full((len(lengths), num_frames), offset)
    positions = np.minimum(starts + np.floor(within * widths).astype(np.int64), lengths[:, None] - 1)
    is_short = lengths < num_frames
    if is_short.any():
        every_frame = np.broadcast_to(np.arange(num_frames, dtype=np.int64), positions.shape)
        positions[is_short] = np.where(every_frame[is_short] < lengths[is_short, None], every_frame[is_short], 0)
    return positions, np.minimum(lengths, num_frames).astype(np.int32)


def evenly_spaced_offsets(num_clips: int) -> list[float]:
    """The `offset`s of K evenly offset uniform clips: (k + 0.5) / K, so K = 1 is the centred clip."""
    if num_clips < 1:
        raise InputError(f"--test-clips / test_clips must be at least 1, got {num_clips}")
    return [(clip + 0.5) / num_clips for clip in range(num_clips)]


def gather_clips(features: np.ndarray, positions: np.ndarray, clip_lengths: np.ndarray) -> np.ndarray:
    """features (N, T_stored, D) -> (N, T, D) at `positions`, zero beyond each clip length (as the cache pads)."""
    clips = np.take_along_axis(features, positions[:, :, None], axis=1)
    clips[np.arange(positions.shape[1])[None, :] >= clip_lengths[:, None]] = 0.0
    return clips


def predict_over_clips(
    predict, features: np.ndarray, lengths: np.ndarray, frames: int, num_clips: int = 1
) -> np.ndarray:
    """Class probabilities of videos, averaged over `num_clips` evenly offset uniform T-frame clips of each.

    predict: (features float32 (n, T, D), lengths int32 (n,)) -> probabilities (n, num_classes).
    features: float32 (n, T_stored, D), real up to `lengths`. frames: T; 0 runs `predict` on the stored frames as
    they are (a model trained without clips). Returns float32 (n, num_classes).
    """
    lengths = np.asarray(lengths, dtype=np.int32)
    if not frames:
        return np.asarray(predict(features, lengths), dtype=np.float32)
    total = None
    for offset in evenly_spaced_offsets(num_clips):
        positions, clip_lengths = clip_positions(lengths, frames, "uniform", offset=offset)
        probabilities = np.asarray(
            predict(gather_clips(features, positions, clip_lengths), clip_lengths), dtype=np.float32
        )
        total = probabilities if total is None else total + probabilities
    return total / num_clips


def read_clips(
    reader,
    rows: np.ndarray,
    lengths: np.ndarray,
    num_frames: int,
    mode: str = "uniform",
    rng: np.random.Generator | None = None,
    offset: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """T-frame clips of cache `rows`, reading only the chosen frames (a featcache.cache reader's `read_frames`).

    lengths: the rows' stored lengths. Returns features float32 (n, T, D), zero beyond each clip length, and the
    clip lengths int32 (n,).
    """
    positions, clip_lengths = clip_positions(lengths, num_frames, mode, rng, offset)
    chosen = [row_positions[:length] for row_positions, length in zip(positions, clip_lengths)]
    return reader.read_frames(rows, chosen, num_frames=num_frames), clip_lengths
