"""The frames `predict --window` needs from one long video, decoded in one sequential pass (in a decode worker).

Window k covers the frames [start_k, start_k + window_frames) with start_k = frame shown at k * S seconds
and window_frames = frames in W seconds; inside it the model's own sampling picks the frames (`offsets`).
`read_window_frames` decodes the video once and hands over, in chunks, every frame some window samples, each
converted once however many windows share it; `featcache.inference.windows` embeds and classifies them.
It runs in a decode worker process (`decode_workers.py`), so a decoder crash costs that video, not `predict`.
Windows are dense (a window every few seconds samples T frames of it), so this pass stays sequential: seeking
pays only when a few frames are taken from many.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.config import SamplingConfig, WindowConfig
from featcache.errors import VideoDecodeError
from featcache.video.decode import check_readable_file, open_capture, read_container_properties, to_model_frame
from featcache.video.sampling import sample_frame_indices

# As featcache.video.sampling: the frame shown at time t is floor(t * fps), nudged so exact products stay exact.
_FLOOR_TOLERANCE = 1e-6


@dataclass(frozen=True)
class WindowLayout:
    """Where the windows of one video lie, in frames of that video.

    window_frames: frames per window; stride_frames: float, frames from one window start to the next;
    offsets: int64 (length <= T,), the sampled frames of a window relative to its start.
    """

    video_fps: float
    window_frames: int
    stride_frames: float
    offsets: np.ndarray

    def start_frame(self, window_index: int) -> int:
        return int(np.floor(window_index * self.stride_frames + _FLOOR_TOLERANCE))


def window_layout(video_fps: float, window: WindowConfig, sampling: SamplingConfig) -> WindowLayout:
    """The layout for a video at `video_fps`; VideoDecodeError when the window or stride is under one frame."""
    window_frames = int(np.floor(window.window_seconds * video_fps + _FLOOR_TOLERANCE))
    stride_frames = window.stride_seconds * video_fps
    if window_frames < 1 or stride_frames < 1 - _FLOOR_TOLERANCE:
        raise VideoDecodeError(
            f"at {video_fps:g} fps, --window / window_seconds {window.window_seconds:g} s "
            f"and --stride / stride_seconds {window.stride_seconds:g} s "
            "must each span at least one frame"
        )
    offsets = sample_frame_indices(window_frames, video_fps, sampling)
    return WindowLayout(video_fps, window_frames, stride_frames, offsets)


@dataclass(frozen=True)
class WindowFrameChunk:
    """Some of the frames windows need, in decode order, or (`done`) the end of the video.

    frame_indices: int64 (n,); frames: uint8 (n, image_size, image_size, 3) RGB.
    frames_seen: frames decoded when the chunk was sent (at the end: the video's frame count).
    """

    video_fps: float
    frame_indices: np.ndarray
    frames: np.ndarray
    frames_seen: int
    done: bool = False


class WindowFramesNeeded:
    """Which frames the windows opened so far sample, following a decode frame by frame (from frame 0 on)."""

    def __init__(self, layout: WindowLayout) -> None:
        self.layout = layout
        self.next_window = 0
        self._needed: set[int] = set()

    def needs(self, frame_index: int) -> bool:
        """Open every window starting at or before `frame_index` (a window samples from its start on), then
        say whether one samples this frame; call once per frame, in order."""
        while self.layout.start_frame(self.next_window) <= frame_index:
            self._needed.update((self.layout.start_frame(self.next_window) + self.layout.offsets).tolist())
            self.next_window += 1
        if frame_index in self._needed:
            self._needed.discard(frame_index)
            return True
        return False


def read_window_frames(
    path: Path, window: WindowConfig, sampling: SamplingConfig, image_size: int, chunk_frames: int
) -> Iterator[WindowFrameChunk]:
    """Decode `path` once, yielding the frames its windows sample, `chunk_frames` at a time, then a `done` chunk.

    Raises VideoDecodeError when the file cannot be read, states no frame rate (windows are in seconds), or the
    window or stride is under one frame.
    """
    path = Path(path)
    check_readable_file(path)
    capture = open_capture(path)
    try:
        video_fps, _ = read_container_properties(capture)
        if video_fps <= 0:
            raise VideoDecodeError(
                f"{path}: the video does not state its frame rate, which --window (window_seconds) needs: "
                "windows are in seconds"
            )
        needed = WindowFramesNeeded(window_layout(video_fps, window, sampling))
        indices: list[int] = []
        frames: list[np.ndarray] = []
        frame_index = 0
        while capture.grab():
            if needed.needs(frame_index):
                retrieved, frame = capture.retrieve()
                if not retrieved:
                    break  # as in featcache.video.decode: a frame that does not decode ends the usable video
                indices.append(frame_index)
                frames.append(to_model_frame(frame, image_size))
                if len(frames) == chunk_frames:
                    yield _chunk(video_fps, indices, frames, frame_index, image_size)
                    indices, frames = [], []
            frame_index += 1
    finally:
        capture.release()
    if frames:
        yield _chunk(video_fps, indices, frames, frame_index, image_size)
    yield WindowFrameChunk(video_fps, np.zeros(0, np.int64), _no_frames(image_size), frame_index, done=True)


def _chunk(
    video_fps: float, indices: list[int], frames: list[np.ndarray], frames_seen: int, image_size: int
) -> WindowFrameChunk:
    stacked = np.stack(frames) if frames else _no_frames(image_size)
    return WindowFrameChunk(video_fps, np.array(indices, dtype=np.int64), stacked, frames_seen)


def _no_frames(image_size: int) -> np.ndarray:
    return np.zeros((0, image_size, image_size, 3), np.uint8)
