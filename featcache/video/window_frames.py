"""The frames `predict --window` needs from one long video, decoded by seeking or in one pass (in a decode worker).

Window k covers the frames [start_k, start_k + window_frames) with start_k = frame shown at k * S seconds
and window_frames = frames in W seconds; inside it the model's own sampling picks the frames (`offsets`).
`read_window_frames` hands over, in chunks and in frame order, every frame some window samples, each converted
once however many windows share it; `featcache.inference.windows` embeds and classifies them. It runs in a
decode worker process (`decode_workers.py`), so a decoder crash costs that video, not `predict`.
The decoder is chosen as for `embed` (`featcache.video.decode.plan_seeking`): "sequential" decodes every frame
with OpenCV; "seek" plans all windows' frames in one seek plan over the stream index (which also gives the true
frame count the windows end at) and decodes only those, the same frames pixel for pixel; "auto" seeks when the
index is trustworthy and the plan decodes at most SEEK_WORTH_IT_SHARE of the frames (sparse windows of a
long-GOP video), else stays sequential (dense windows: each GOP holds frames some window samples). When seeking
fails after chunks were sent, a `starts_over` chunk says to drop them, and the sequential decode starts again.
The window layout always uses OpenCV's frame rate, as both decoders do.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from featcache.config import DECODERS, SamplingConfig, WindowConfig
from featcache.errors import VideoDecodeError
from featcache.video.capture import (
    check_readable_file,
    open_capture,
    read_container_properties,
    resize_for_model,
    to_model_frame,
)
from featcache.video.decode import describe_decoder, plan_seeking, seeking_fell_back
from featcache.video.sampling import sample_frame_indices

# As featcache.video.sampling: the frame shown at time t is floor(t * fps), nudged so exact products stay exact.
_FLOOR_TOLERANCE = 1e-6
_NO_INDICES = np.zeros(0, dtype=np.int64)


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
    decoder: on the `done` chunk, how the frames were decoded ('seek', 'sequential' or 'sequential: <why>').
    starts_over: no frames; drop every chunk of this video before it (seeking failed after sending them) and take
    the sequential decode's chunks that follow instead.
    """

    video_fps: float
    frame_indices: np.ndarray
    frames: np.ndarray
    frames_seen: int
    done: bool = False
    decoder: str = ""
    starts_over: bool = False


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


def window_frame_indices(layout: WindowLayout, num_frames: int) -> np.ndarray:
    """Every frame of a `num_frames`-frame video that some window samples: what the sequential pass retrieves.

    Windows the video ends inside count with their frames before the end. Returns int64, strictly increasing.
    """
    # Window ceil(n / stride) starts at or past the end: enough windows, and those past the end are dropped next.
    num_windows = int(np.ceil(num_frames / layout.stride_frames)) + 1
    starts = np.array([layout.start_frame(window_index) for window_index in range(num_windows)], dtype=np.int64)
    starts = starts[starts < num_frames]
    frame_indices = np.unique((starts[:, None] + layout.offsets[None, :]).ravel())
    return frame_indices[frame_indices < num_frames]


def read_window_frames(
    path: Path,
    window: WindowConfig,
    sampling: SamplingConfig,
    image_size: int,
    chunk_frames: int,
    decoder: str = "auto",
) -> Iterator[WindowFrameChunk]:
    """Yield the frames the windows of `path` sample, `chunk_frames` at a time in frame order, then a `done` chunk
    (which says the decoder used); with seeking, possibly a `starts_over` chunk first (module docstring).

    decoder: "auto", "seek" or "sequential" (featcache.video.decode); the chunks are the same whichever decodes.
    Raises VideoDecodeError when the file cannot be read, states no frame rate (windows are in seconds), or the
    window or stride is under one frame.
    """
    assert decoder in DECODERS, f"predict_windows validates the decoder, got {decoder!r}"
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
        layout = window_layout(video_fps, window, sampling)
        decoder_note = ""
        if decoder != "sequential":
            decoder_note = yield from _seek_window_frames(path, capture, layout, image_size, chunk_frames, decoder)
            if not decoder_note:
                return
        yield from _sequential_window_frames(capture, layout, image_size, chunk_frames, decoder_note)
    finally:
        capture.release()


def _seek_window_frames(
    path: Path, capture: cv2.VideoCapture, layout: WindowLayout, image_size: int, chunk_frames: int, decoder: str
) -> Generator[WindowFrameChunk, None, str]:
    """Yield every chunk by seeking and return "", or return why the sequential pass must take them (after a
    `starts_over` chunk when some were sent already)."""
    planned = plan_seeking(path, capture, lambda num_frames: window_frame_indices(layout, num_frames), decoder)
    if isinstance(planned, str):
        return planned
    from featcache.video.seek_decode import SeekMismatch  # PyAV is imported by now (plan_seeking opened the file)

    video_fps = layout.video_fps
    indices: list[int] = []
    frames: list[np.ndarray] = []
    sent_any = False
    with planned:
        try:
            for frame_index, frame_rgb in planned.decode_frames(pixel_format="rgb24"):
                indices.append(frame_index)
                frames.append(resize_for_model(frame_rgb, image_size))
                if len(frames) == chunk_frames:
                    yield _chunk(video_fps, indices, frames, frame_index, image_size)
                    sent_any = True
                    indices, frames = [], []
        except SeekMismatch as err:
            if sent_any:
                # The frames sent passed every check, but the video's frames come from one decoder or the other.
                yield WindowFrameChunk(video_fps, _NO_INDICES, _no_frames(image_size), 0, starts_over=True)
            return seeking_fell_back(err)
    if frames:
        yield _chunk(video_fps, indices, frames, planned.num_frames, image_size)
    yield _done_chunk(video_fps, planned.num_frames, image_size, describe_decoder("seek", ""))
    return ""


def _sequential_window_frames(
    capture: cv2.VideoCapture, layout: WindowLayout, image_size: int, chunk_frames: int, decoder_note: str
) -> Iterator[WindowFrameChunk]:
    """Grab every frame of `capture` (freshly opened, at frame 0) and yield the chunks; the caller releases it."""
    video_fps = layout.video_fps
    needed = WindowFramesNeeded(layout)
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
    if frames:
        yield _chunk(video_fps, indices, frames, frame_index, image_size)
    yield _done_chunk(video_fps, frame_index, image_size, describe_decoder("sequential", decoder_note))


def _done_chunk(video_fps: float, num_frames: int, image_size: int, decoder: str) -> WindowFrameChunk:
    return WindowFrameChunk(video_fps, _NO_INDICES, _no_frames(image_size), num_frames, done=True, decoder=decoder)


def _chunk(
    video_fps: float, indices: list[int], frames: list[np.ndarray], frames_seen: int, image_size: int
) -> WindowFrameChunk:
    stacked = np.stack(frames) if frames else _no_frames(image_size)
    return WindowFrameChunk(video_fps, np.array(indices, dtype=np.int64), stacked, frames_seen)


def _no_frames(image_size: int) -> np.ndarray:
    return np.zeros((0, image_size, image_size, 3), np.uint8)
