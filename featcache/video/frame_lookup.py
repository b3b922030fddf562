"""Decoding chosen frames of one video (by index), for thumbnails of the frames a cache recorded.

The cache stores each sampled frame's index in decode order; a report shows those frames again. They are found
the way `featcache.video.decode` found them (one sequential pass, no seeking: seeking lands on other frames in
many codecs) and resized the way it resized them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.errors import VideoDecodeError

# One place decides how a frame is opened, read and resized, so a thumbnail is the picture `embed` saw.
from featcache.video.capture import check_readable_file, open_capture, read_container_properties, to_model_frame


@dataclass(frozen=True)
class FrameRequest:
    """Ask a decode worker for these frames of this file (instead of a sampling of it).

    frame_indices: ints in decode order, strictly increasing; image_size: the square side of each returned frame.
    """

    path: Path
    frame_indices: tuple[int, ...]
    image_size: int


@dataclass(frozen=True)
class FramesAt:
    """The frames asked for that the video has.

    frames: uint8, shape (found, image_size, image_size, 3), RGB; frame_indices: int32 (found,), those found
    (a video shorter than the cache says yields fewer); video_fps: the container's rate (0.0 when unknown).
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    video_fps: float


def read_frames_at(request: FrameRequest) -> FramesAt:
    """Decode `request.path` sequentially up to its last wanted frame; VideoDecodeError when it cannot be opened."""
    path = Path(request.path)
    check_readable_file(path)
    wanted = sorted(set(int(index) for index in request.frame_indices))
    capture = open_capture(path)
    found: list[tuple[int, np.ndarray]] = []
    try:
        video_fps, _ = read_container_properties(capture)
        frame_index = 0
        last_wanted = wanted[-1] if wanted else -1
        while frame_index <= last_wanted and capture.grab():
            if frame_index in wanted:
                retrieved, frame = capture.retrieve()
                if not retrieved:
                    break  # as in featcache.video.decode: a frame that does not decode ends the usable video
                found.append((frame_index, to_model_frame(frame, request.image_size)))
            frame_index += 1
    finally:
        capture.release()
    if wanted and not found:
        raise VideoDecodeError(f"{path}: none of the frames {wanted[0]}..{wanted[-1]} decodes")
    size = request.image_size
    return FramesAt(
        frames=np.stack([frame for _, frame in found]) if found else np.zeros((0, size, size, 3), np.uint8),
        frame_indices=np.array([index for index, _ in found], dtype=np.int32),
        video_fps=video_fps,
    )
