"""Decoding the sampled frames of one video, as RGB: by exact seeking (PyAV) or with OpenCV, sequentially, in order.

`read_sampled_frames` is the one entry point. Its `decoder`: "sequential" decodes every frame to the end with
OpenCV; "seek" indexes the stream by demuxing (`stream_index.py`) and decodes from the keyframe before each
sampled frame (`seek_decode.py`), giving the same frames, pixel for pixel, or falls back to the sequential
decode with the reason; "auto" seeks when the index is trustworthy and decodes fewer frames that way
(SEEK_WORTH_IT_SHARE). The container's frame rate always comes from OpenCV, so both paths sample alike.
`plan_seeking` makes that choice and plans the seek for every caller that may seek (`predict --window` too,
`window_frames.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from featcache.config import DECODERS, SamplingConfig
from featcache.errors import VideoDecodeError
from featcache.video.capture import (
    check_readable_file,
    is_utf8,
    open_capture,
    read_container_properties,
    resize_for_model,
)
from featcache.video.sampling import sample_frame_indices

if TYPE_CHECKING:  # PyAV is imported only where a video seeks
    import av.container
    import av.video.stream

    from featcache.video.seek_decode import DecodeTally, RunDecoder, SeekPlan
    from featcache.video.stream_index import StreamIndex

# Seeking pays for a second open of the file, a demux pass over all of it and a seek per run, so "auto" seeks
# only when it decodes at most this share of the frames a sequential decode would (BENCHMARKS.md, "Seeking").
SEEK_WORTH_IT_SHARE = 0.5
# PyAV opens a file by probing it, which decodes its first frames to fill in stream parameters the header may
# lack. Seeking needs none of them: the index comes from demuxing, and the decoder reads the codec's parameters
# from the bitstream, checked frame by frame against the index. Probing as little as FFmpeg allows halves the
# open (about 1.4 ms on a 10-s H.264 clip), which a video auto then decodes sequentially pays for nothing.
PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0"}


@dataclass(frozen=True)
class SampledFrames:
    """The frames taken from one video.

    frames: uint8, shape (length, image_size, image_size, 3), RGB, in temporal order.
    frame_indices: int32, shape (length,), index of each frame in decode order.
    timestamps_ms: float32, shape (length,), frame_index / video_fps * 1000 (0 where fps is unknown).
    video_fps: the container's frame rate (0.0 when it does not say).
    video_num_frames: frames actually decoded (not CAP_PROP_FRAME_COUNT, which can lie).
    video_width, video_height: the decoded frame size before resizing.
    decoder: "seek" or "sequential", the path that decoded them.
    decoder_note: why "sequential" where seeking was allowed (a fallback or auto's choice), else "".
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_ms: np.ndarray
    video_fps: float
    video_num_frames: int
    video_width: int
    video_height: int
    decoder: str = "sequential"
    decoder_note: str = ""

    def describe_decoder(self) -> str:
        """'seek', 'sequential', or 'sequential: <why>': what the cache records per video."""
        return describe_decoder(self.decoder, self.decoder_note)


@dataclass(frozen=True)
class _DecodePass:
    """What one sequential pass over a video found.

    frames: uint8 BGR frames at full size, one per retrieved index, in decode order.
    num_decoded: frames decoded before the stream ended (or stopped decoding).
    """

    frames: list[np.ndarray]
    num_decoded: int


def read_sampled_frames(
    path: Path, sampling: SamplingConfig, image_size: int, decoder: str = "auto", seek_threads: int | None = None
) -> SampledFrames:
    """Decode the sampled frames of `path` and return them resized to a square.

    decoder: "auto", "seek" or "sequential" (module docstring); the frames are the same whichever runs.
    seek_threads: a seek's runs decoded at once (`run_threads.py`; None: one per core this process may use).
    Raises VideoDecodeError (with the path and the reason) when the file cannot be opened or yields no frame.
    """
    assert decoder in DECODERS, f"EmbedConfig validates the decoder, got {decoder!r}"
    path = Path(path)
    check_readable_file(path)
    # CAP_PROP_FRAME_COUNT comes from the container header and can be wrong (truncated or re-muxed
    # files) or 0, so it is only a hint: it lets us choose the indices before the first pass, which is
    # then usually the only pass. That pass decodes to the end, so afterwards we know the true count.
    # When the true count gives other indices than the hint did, a second sequential pass takes the
    # right ones. A missing hint (<= 0) makes the first pass a pure counting pass.
    capture = open_capture(path)
    try:
        video_fps, frame_count_hint = read_container_properties(capture)
        if sampling.mode == "fps" and video_fps <= 0:
            raise VideoDecodeError(
                f"{path}: the video does not state its frame rate, which --sampling fps needs; use --sampling uniform"
            )
        decoder_note = ""
        if decoder != "sequential":
            seeked = _try_seeking(path, capture, video_fps, sampling, decoder, seek_threads, image_size)
            if isinstance(seeked, _SeekedFrames):
                return _sampled_frames(
                    np.stack(seeked.model_frames),  # the index counts a frame at least, so one is sampled
                    seeked.frame_indices,
                    video_fps,
                    seeked.num_frames,
                    seeked.video_size,
                    "seek",
                    "",
                )
            decoder_note = seeked
        hinted_indices = (
            sample_frame_indices(frame_count_hint, video_fps, sampling) if frame_count_hint > 0 else _NO_INDICES
        )
        decode_pass = _decode_sequentially(capture, hinted_indices)
    finally:
        capture.release()
    num_decoded = decode_pass.num_decoded
    if num_decoded == 0:
        raise VideoDecodeError(f"{path}: no decodable frame (the file opens as a video but no frame decodes)")
    frame_indices = sample_frame_indices(num_decoded, video_fps, sampling)
    if np.isin(frame_indices, hinted_indices).all():
        # Same indices, or (fps sampling of a video shorter than its header says) a subset of them.
        frames_bgr = [decode_pass.frames[position] for position in np.searchsorted(hinted_indices, frame_indices)]
    else:
        capture = open_capture(path)
        try:
            # Stop where the first pass stopped: when a frame there failed to retrieve, the stream goes on, but
            # the usable part of the video ended and the new indices were chosen from that count.
            decode_pass = _decode_sequentially(capture, frame_indices, stop_after=num_decoded)
        finally:
            capture.release()
        if decode_pass.num_decoded != num_decoded:
            # The file changed between the passes, or decodes differently the second time.
            raise VideoDecodeError(
                f"{path}: decoding stopped at frame {decode_pass.num_decoded} on the second pass, "
                f"at frame {num_decoded} on the first"
            )
        frames_bgr = decode_pass.frames

    video_height, video_width = frames_bgr[0].shape[:2]
    return _sampled_frames(
        _bgr_frames_for_model(frames_bgr, image_size),
        frame_indices,
        video_fps,
        num_decoded,
        (video_width, video_height),
        "sequential",
        decoder_note,
    )


def _bgr_frames_for_model(frames_bgr: list[np.ndarray], image_size: int) -> np.ndarray:
    """Full-size BGR frames -> uint8 RGB (len, image_size, image_size, 3), each written straight into the array."""
    model_frames = np.empty((len(frames_bgr), image_size, image_size, 3), dtype=np.uint8)
    for frame, model_frame in zip(frames_bgr, model_frames):
        # Resize first, then swap: the swap then touches image_size² pixels, not the full frame's.
        cv2.cvtColor(resize_for_model(frame, image_size), cv2.COLOR_BGR2RGB, dst=model_frame)
    return model_frames


def _sampled_frames(
    model_frames: np.ndarray,
    frame_indices: np.ndarray,
    video_fps: float,
    num_frames: int,
    video_size: tuple[int, int],
    decoder: str,
    decoder_note: str,
) -> SampledFrames:
    """The frames resized for the model, uint8 RGB (len, image_size, image_size, 3), with what is known of them.

    video_size: (width, height) of the first sampled frame at full size."""
    timestamps_ms = frame_indices / video_fps * 1000.0 if video_fps > 0 else np.zeros(len(frame_indices))
    return SampledFrames(
        frames=model_frames,
        frame_indices=frame_indices.astype(np.int32),
        timestamps_ms=timestamps_ms.astype(np.float32),
        video_fps=video_fps,
        video_num_frames=num_frames,
        video_width=int(video_size[0]),
        video_height=int(video_size[1]),
        decoder=decoder,
        decoder_note=decoder_note,
    )


@dataclass(frozen=True)
class _SeekedFrames:
    """What the seek path decoded: the frames at `frame_indices` of a `num_frames`-frame video, resized for the
    model (uint8 RGB), and the first one's (width, height) at full size."""

    model_frames: list[np.ndarray]
    frame_indices: np.ndarray
    num_frames: int
    video_size: tuple[int, int]


def _try_seeking(
    path: Path,
    capture: cv2.VideoCapture,
    video_fps: float,
    sampling: SamplingConfig,
    decoder: str,
    seek_threads: int | None,
    image_size: int,
) -> _SeekedFrames | str:
    """The sampled frames decoded by seeking, or why the sequential decode must take them."""
    planned = plan_seeking(
        path, capture, lambda num_frames: sample_frame_indices(num_frames, video_fps, sampling), decoder
    )
    if isinstance(planned, str):
        return planned
    from featcache.video.seek_decode import SeekMismatch  # PyAV is imported by now (plan_seeking opened the file)

    def for_model(frame_rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        # On the thread that decoded the frame, so the resize overlaps the other runs' decoding (INTER_AREA from
        # 320x240 to 224 costs ~0.65 ms a frame on the 2-core AMD EPYC, a third of a 7-s XVID clip's seek), and
        # only model-size frames are held.
        return resize_for_model(frame_rgb, image_size), (frame_rgb.shape[1], frame_rgb.shape[0])

    with planned:
        try:
            decoded = planned.decode_all_frames("rgb24", threads=seek_threads, finish=for_model)
        except SeekMismatch as err:
            return seeking_fell_back(err)
    model_frames = [model_frame for _, (model_frame, _) in decoded]
    return _SeekedFrames(model_frames, planned.frame_indices, planned.num_frames, decoded[0][1][1])


@dataclass(frozen=True)
class PlannedSeek:
    """A video opened with PyAV, its stream indexed, and the plan that decodes `frame_indices` by seeking.

    frame_indices: int64, shape (length,), strictly increasing, chosen from the index's true frame count.
    Use as a context manager: leaving it closes the container.
    """

    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    index: StreamIndex
    plan: SeekPlan
    frame_indices: np.ndarray

    @property
    def num_frames(self) -> int:
        """The true frame count: the index counts it, and the run that decodes the last frame proves it."""
        return self.index.num_frames

    def decode_frames(
        self, pixel_format: str = "bgr24", tally: DecodeTally | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, uint8 full-size frame, "bgr24" or "rgb24") for each of `frame_indices`, in order, decoded
        as they come; raises SeekMismatch (seek_decode) when decoding disagrees with the index, at the latest
        after the last. tally: counts the frames the decoder decoded (the benchmarks report it)."""
        from featcache.video.seek_decode import iterate_planned_frames

        return iterate_planned_frames(
            self.container, self.stream, self.index, self.plan, self.frame_indices, pixel_format, tally
        )

    def decode_all_frames(
        self,
        pixel_format: str = "bgr24",
        tally: DecodeTally | None = None,
        threads: int | None = None,
        finish: Callable[[np.ndarray], Any] | None = None,
    ) -> list[tuple[int, Any]]:
        """What `decode_frames` yields, as one list, the runs decoded on up to `threads` threads at once
        (`run_threads.py`; None: one per core this process may use; one thread for a container outside
        FORMATS_SEEKING_BY_INDEX). finish: applied to each frame as it is decoded, on the thread that decoded
        it; the list holds what it returns (None: the frames)."""
        from featcache.video.run_threads import (
            FORMATS_SEEKING_BY_INDEX,
            decode_runs_on_threads,
            unchanged,
            usable_cores,
        )
        from featcache.video.seek_decode import DecodeTally, RunDecoder

        threads = min(usable_cores() if threads is None else threads, len(self.plan.runs))
        finish = finish if finish is not None else unchanged
        if threads <= 1 or self.container.format.name not in FORMATS_SEEKING_BY_INDEX:
            return [(frame_index, finish(frame)) for frame_index, frame in self.decode_frames(pixel_format, tally)]
        return decode_runs_on_threads(
            RunDecoder.on(self.container, self.stream),
            self._open_another_decoder,
            self.index,
            self.plan,
            self.frame_indices,
            pixel_format,
            tally if tally is not None else DecodeTally(),
            threads,
            finish,
        )

    def _open_another_decoder(self) -> RunDecoder:
        """The same file opened again, for a second decoding thread; SeekMismatch when it no longer opens alike
        (the runs then share the decoders already open)."""
        import av

        from featcache.video.seek_decode import RunDecoder, SeekMismatch
        from featcache.video.stream_index import IndexUntrustworthy, the_video_stream

        try:
            container = av.open(str(self.path), options=PROBE_OPTIONS)
        except av.error.FFmpegError as err:
            raise SeekMismatch(f"reopening the file for a second decoding thread failed ({err})") from err
        try:
            return RunDecoder.on(container, the_video_stream(container))
        except IndexUntrustworthy as err:
            container.close()
            raise SeekMismatch(f"the file reopened differently ({err})") from err
        except BaseException:
            container.close()
            raise

    def __enter__(self) -> PlannedSeek:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.container.close()


def plan_seeking(
    path: Path, capture: cv2.VideoCapture, frame_indices_of: Callable[[int], np.ndarray], decoder: str
) -> PlannedSeek | str:
    """Open `path` with PyAV, index its stream and plan the decode of `frame_indices_of(true frame count)`; or why
    the sequential decode must take the frames (index untrustworthy, or for "auto": seeking would not pay).

    capture: `path` opened with OpenCV (its rotation metadata decides too); decoder: "auto" or "seek".
    frame_indices_of: frame count -> int64 (length,) strictly increasing frame indices. Every video that seeks,
    `embed`'s and `predict --window`'s, is chosen and planned here.
    """
    assert decoder in ("auto", "seek"), f"only a caller allowed to seek plans a seek, got {decoder!r}"
    # PyAV is imported here: the sequential path, and processes that never decode, do without it.
    import av

    from featcache.video.seek_decode import estimate_frames_to_decode, plan_seek_decode
    from featcache.video.stream_index import (
        IndexUntrustworthy,
        index_the_stream,
        read_container_index,
        the_video_stream,
    )

    if capture.get(cv2.CAP_PROP_ORIENTATION_META) not in (0.0, -1.0):
        return "the stream has rotation metadata (OpenCV turns its frames)"
    if not is_utf8(str(path)):
        return "the file name is not UTF-8 (PyAV opens files by name)"
    try:
        container = av.open(str(path), options=PROBE_OPTIONS)
    except av.error.FFmpegError as err:
        return f"PyAV cannot open it ({err})"
    planned: PlannedSeek | str | None = None
    try:
        stream = the_video_stream(container)
        container_index = read_container_index(stream)
        if container_index is not None and decoder == "auto":
            # Decide before demuxing: where seeking is not worth it, the demux pass would be wasted.
            worth_it = int(SEEK_WORTH_IT_SHARE * container_index.num_frames)
            estimate_indices = np.asarray(frame_indices_of(container_index.num_frames), dtype=np.int64)
            if estimate_frames_to_decode(container_index, estimate_indices, give_up_after=worth_it) > worth_it:
                planned = (
                    f"auto: seeking would decode more than {worth_it} of {container_index.num_frames} frames "
                    "(by the container's index)"
                )
                return planned
        index = index_the_stream(container, stream, container_index, path)
        frame_indices = np.asarray(frame_indices_of(index.num_frames), dtype=np.int64)
        plan = plan_seek_decode(index, frame_indices)
        if decoder == "auto" and plan.frames_to_decode > SEEK_WORTH_IT_SHARE * index.num_frames:
            planned = f"auto: seeking would decode {plan.frames_to_decode} of {index.num_frames} frames"
        else:
            planned = PlannedSeek(path, container, stream, index, plan, frame_indices)
    except IndexUntrustworthy as err:
        planned = seeking_fell_back(err)
    finally:
        if not isinstance(planned, PlannedSeek):
            container.close()  # only a plan that will decode keeps the file open
    return planned


def seeking_fell_back(err: Exception) -> str:
    """The note recorded with a video whose seek was abandoned (IndexUntrustworthy or SeekMismatch)."""
    return f"seeking fell back: {err}"


def describe_decoder(decoder: str, decoder_note: str) -> str:
    """'seek', 'sequential', or 'sequential: <why>': what a cache records per video, and `predict --window` prints."""
    return f"{decoder}: {decoder_note}" if decoder_note else decoder


_NO_INDICES = np.zeros(0, dtype=np.int64)


def _decode_sequentially(
    capture: cv2.VideoCapture, frame_indices: np.ndarray, stop_after: int | None = None
) -> _DecodePass:
    """Grab every frame to the end of the stream and retrieve (convert) only those at `frame_indices`.

    capture: freshly opened, positioned at the first frame; the caller releases it.
    frame_indices: int64, shape (length,), strictly increasing. Retrieved frames are uint8 BGR.
    stop_after: grab at most this many frames (None: to the end of the stream).
    """
    wanted = set(frame_indices.tolist())
    frames: list[np.ndarray] = []
    frame_index = 0
    while (stop_after is None or frame_index < stop_after) and capture.grab():
        if frame_index in wanted:
            retrieved, frame = capture.retrieve()
            if not retrieved:
                # A frame that demuxes but does not decode ends the usable part of the video;
                # counting it would make the indices point past what we can return.
                break
            frames.append(frame)
        frame_index += 1
    return _DecodePass(frames=frames, num_decoded=frame_index)
