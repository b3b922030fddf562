"""The frames `predict --window` needs: seeking gives the sequential pass's chunks, auto picks the cheaper decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import featcache.video.stream_index as stream_index_module
from featcache.config import SamplingConfig, WindowConfig
from featcache.video.window_frames import WindowFrameChunk, read_window_frames, window_frame_indices, window_layout
from tests.decode_corpus import LONG_GOP_H264, write_with_pyav

IMAGE_SIZE = 32
SAMPLING = SamplingConfig(num_frames=3)
# 0.4 s windows (10 frames at 25 fps) every 4 s: windows at frames 0, 100 and 200 sample 0, 5, 9, 100, 105, ...
SPARSE_WINDOWS = WindowConfig(0.4, 4.0)
DENSE_WINDOWS = WindowConfig(0.4)  # back to back: every GOP holds sampled frames


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 frames of 64x48 H.264 at 25 fps, keyframes at 0, 96 and 192 only, B-frames."""
    folder = tmp_path_factory.mktemp("window_frames")
    return write_with_pyav(folder / "long_gop.mp4", "libx264", 240, LONG_GOP_H264)


@pytest.fixture(scope="module")
def transport_stream_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MPEG-TS (no index: FFmpeg's seek lands past the asked keyframe, so seeking must fall back)."""
    folder = tmp_path_factory.mktemp("window_frames_ts")
    return write_with_pyav(folder / "clip.ts", "libx264", 90, {"g": "30", "bf": "2"})


def _chunks(path: Path, window: WindowConfig, decoder: str, chunk_frames: int = 4) -> list[WindowFrameChunk]:
    return list(read_window_frames(path, window, SAMPLING, IMAGE_SIZE, chunk_frames, decoder))


def _after_the_last_start_over(chunks: list[WindowFrameChunk]) -> list[WindowFrameChunk]:
    """The chunks a consumer keeps (featcache.inference.windows drops those before a `starts_over`)."""
    restarts = [number for number, chunk in enumerate(chunks) if chunk.starts_over]
    return chunks[restarts[-1] + 1 :] if restarts else chunks


def _assert_same_chunks(seeked: list[WindowFrameChunk], sequential: list[WindowFrameChunk]) -> None:
    """Same chunks in the same order: frame indices, pixels, frames_seen, the end; only `decoder` may differ."""
    assert len(seeked) == len(sequential)
    for seek_chunk, sequential_chunk in zip(seeked, sequential):
        np.testing.assert_array_equal(seek_chunk.frame_indices, sequential_chunk.frame_indices)
        np.testing.assert_array_equal(seek_chunk.frames, sequential_chunk.frames)
        assert seek_chunk.frames.dtype == np.uint8
        assert (seek_chunk.video_fps, seek_chunk.frames_seen, seek_chunk.done) == (
            sequential_chunk.video_fps,
            sequential_chunk.frames_seen,
            sequential_chunk.done,
        )


def test_window_frame_indices_are_what_the_windows_sample():
    layout = window_layout(25.0, SPARSE_WINDOWS, SAMPLING)
    assert (layout.window_frames, layout.stride_frames, layout.offsets.tolist()) == (10, 100.0, [0, 5, 9])
    np.testing.assert_array_equal(window_frame_indices(layout, 240), [0, 5, 9, 100, 105, 109, 200, 205, 209])
    # A window the video ends inside still asks for its frames before the end, as the sequential pass retrieves.
    np.testing.assert_array_equal(window_frame_indices(layout, 207), [0, 5, 9, 100, 105, 109, 200, 205])


@pytest.mark.parametrize("decoder", ["auto", "seek"])
def test_sparse_windows_of_a_long_gop_video_seek_to_the_sequential_frames(long_gop_video: Path, decoder: str):
    sequential = _chunks(long_gop_video, SPARSE_WINDOWS, "sequential")
    seeked = _chunks(long_gop_video, SPARSE_WINDOWS, decoder)
    assert seeked[-1].decoder == "seek" and sequential[-1].decoder == "sequential"
    assert not any(chunk.starts_over for chunk in seeked)
    _assert_same_chunks(seeked, sequential)
    indices = np.concatenate([chunk.frame_indices for chunk in seeked])
    np.testing.assert_array_equal(indices, [0, 5, 9, 100, 105, 109, 200, 205, 209])
    assert seeked[-1].frames_seen == 240  # the true count, which the index proved


def test_auto_decodes_dense_windows_sequentially_and_says_why(long_gop_video: Path):
    auto = _chunks(long_gop_video, DENSE_WINDOWS, "auto")
    assert auto[-1].decoder.startswith("sequential: auto: seeking would decode")
    # Forced to seek, the dense windows still get the same frames: auto chose on cost alone.
    forced = _chunks(long_gop_video, DENSE_WINDOWS, "seek")
    assert forced[-1].decoder == "seek"
    _assert_same_chunks(forced, auto)


def test_a_seek_that_lands_wrong_falls_back_before_sending_a_frame(transport_stream_video: Path):
    windows = WindowConfig(0.2, 2.0)
    seeked = _chunks(transport_stream_video, windows, "seek")
    assert seeked[-1].decoder.startswith("sequential: seeking fell back:")
    assert "not at a keyframe at or before it" in seeked[-1].decoder
    assert not any(chunk.starts_over for chunk in seeked)
    _assert_same_chunks(seeked, _chunks(transport_stream_video, windows, "sequential"))


def test_a_mismatch_found_after_chunks_were_sent_starts_the_video_over_sequentially(long_gop_video: Path, monkeypatch):
    """An index counting one frame more than the stream has: the last run finds it out after every frame was sent."""
    original = stream_index_module.index_stream

    def index_with_one_frame_too_many(container, stream):
        index = original(container, stream)
        return stream_index_module.StreamIndex(
            np.append(index.pts, index.pts[-1] + 1), index.keyframe_positions, index.time_base
        )

    monkeypatch.setattr(stream_index_module, "index_stream", index_with_one_frame_too_many)
    seeked = _chunks(long_gop_video, SPARSE_WINDOWS, "seek", chunk_frames=2)
    (restart,) = [number for number, chunk in enumerate(seeked) if chunk.starts_over]
    assert restart > 0 and len(seeked[restart].frame_indices) == 0  # chunks had gone out before it
    assert (
        seeked[-1].decoder == "sequential: seeking fell back: the stream ended after 240 frames, the index counts 241"
    )
    _assert_same_chunks(
        _after_the_last_start_over(seeked), _chunks(long_gop_video, SPARSE_WINDOWS, "sequential", chunk_frames=2)
    )
