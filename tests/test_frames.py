"""Decoding sampled frames: order, colour, size, lying headers, and each bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import frame_number_from_level, numbered_frames, write_video

from featcache.config import SamplingConfig
from featcache.errors import FeatcacheError, VideoDecodeError
from featcache.video import capture as capture_module
from featcache.video import decode as frames_module
from featcache.video.decode import read_sampled_frames


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Which numbered frame each returned frame is, from its mean grey level."""
    return [frame_number_from_level(frame.mean()) for frame in frames]


REAL_VIDEO_CAPTURE = cv2.VideoCapture


class CaptureWithHeader:
    """Wraps a cv2.VideoCapture whose header claims another frame count and/or frame rate; counts opens.

    A wrapper, not a subclass: Python subclasses of cv2.VideoCapture crash the interpreter when freed.
    """

    frame_count = None
    fps = None
    num_opened = 0

    def __init__(self, *args):
        self._capture = REAL_VIDEO_CAPTURE(*args)
        type(self).num_opened += 1

    def get(self, property_id):
        if property_id == cv2.CAP_PROP_FRAME_COUNT and self.frame_count is not None:
            return self.frame_count
        if property_id == cv2.CAP_PROP_FPS and self.fps is not None:
            return self.fps
        return self._capture.get(property_id)

    def __getattr__(self, name):
        return getattr(self._capture, name)


@pytest.fixture
def capture_with_header(monkeypatch):
    """Make featcache open videos through a fresh CaptureWithHeader class; set its attributes to lie."""
    header = type("LyingCapture", (CaptureWithHeader,), {})
    monkeypatch.setattr(frames_module.cv2, "VideoCapture", header)
    return header


@pytest.fixture
def red_then_blue_video(tmp_path: Path) -> Path:
    """Two 32x32 frames: pure red, then pure blue (RGB)."""
    frames = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    frames[0, ..., 0] = 255
    frames[1, ..., 2] = 255
    return write_video(tmp_path / "red_then_blue.avi", frames)


@pytest.fixture
def short_video(tmp_path: Path) -> Path:
    """A 3-frame numbered video, shorter than the 10 frames asked for."""
    return write_video(tmp_path / "short.avi", numbered_frames(3))


@pytest.fixture
def wide_video(tmp_path: Path) -> Path:
    """A 48x24 (width x height) numbered video with 4 frames."""
    frames = np.broadcast_to(numbered_frames(4, size=48)[:, :24], (4, 24, 48, 3)).copy()
    return write_video(tmp_path / "wide.avi", frames)


@pytest.fixture
def not_a_video(tmp_path: Path) -> Path:
    path = tmp_path / "notes.avi"
    path.write_text("this is a text file with a video extension\n")
    return path


@pytest.fixture
def empty_video(tmp_path: Path) -> Path:
    path = tmp_path / "empty.avi"
    path.touch()
    return path


@pytest.fixture
def truncated_video(tmp_path: Path) -> Path:
    """The first half of a 20-frame noisy video: its header says 20 frames, about 7 decode."""
    rng = np.random.default_rng(0)
    whole = write_video(tmp_path / "whole.avi", rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8))
    data = whole.read_bytes()
    path = tmp_path / "truncated.avi"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def truncated_header_video(numbered_video: Path) -> Path:
    """Half of the tiny numbered video: the cut falls inside the header, before any frame."""
    data = numbered_video.read_bytes()
    path = numbered_video.with_name("truncated_header.avi")
    path.write_bytes(data[: len(data) // 2])
    return path


def test_uniform_frames_keep_their_order(numbered_video):
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=4), image_size=32)
    np.testing.assert_array_equal(sampled.frame_indices, [0, 4, 7, 11])
    assert frame_numbers(sampled.frames) == [0, 4, 7, 11]
    assert sampled.frames.dtype == np.uint8 and sampled.frames.shape == (4, 32, 32, 3)
    assert sampled.frame_indices.dtype == np.int32
    np.testing.assert_allclose(sampled.timestamps_ms, [0, 400, 700, 1100])
    assert sampled.timestamps_ms.dtype == np.float32
    assert (sampled.video_fps, sampled.video_num_frames) == (10.0, 12)
    assert (sampled.video_width, sampled.video_height) == (32, 32)


def test_fps_sampling_takes_frames_at_the_rate_with_timestamps(numbered_video):
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=4, mode="fps", fps=5.0), image_size=32)
    np.testing.assert_array_equal(sampled.frame_indices, [0, 2, 4, 6])
    assert frame_numbers(sampled.frames) == [0, 2, 4, 6]
    np.testing.assert_allclose(sampled.timestamps_ms, [0, 200, 400, 600])


def test_frames_come_back_rgb(red_then_blue_video):
    sampled = read_sampled_frames(red_then_blue_video, SamplingConfig(num_frames=2), image_size=32)
    red, blue = sampled.frames.reshape(2, -1, 3).mean(axis=1)
    assert red[0] > 200 and red[2] < 50
    assert blue[2] > 200 and blue[0] < 50


def test_short_video_keeps_what_it_has(short_video):
    sampled = read_sampled_frames(short_video, SamplingConfig(num_frames=10), image_size=32)
    np.testing.assert_array_equal(sampled.frame_indices, [0, 1, 2])
    assert frame_numbers(sampled.frames) == [0, 1, 2]
    assert sampled.video_num_frames == 3


@pytest.mark.parametrize("image_size", [16, 48])
def test_whole_frame_resized_to_a_square(wide_video, image_size):
    sampled = read_sampled_frames(wide_video, SamplingConfig(num_frames=4), image_size=image_size)
    assert sampled.frames.shape == (4, image_size, image_size, 3)
    assert (sampled.video_width, sampled.video_height) == (48, 24)
    assert frame_numbers(sampled.frames) == [0, 1, 2, 3]


@pytest.mark.parametrize("claimed_frame_count", [0, -1, 5, 100])
def test_a_wrong_header_frame_count_is_not_trusted(numbered_video, capture_with_header, claimed_frame_count):
    capture_with_header.frame_count = claimed_frame_count
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=4), image_size=32, decoder="sequential")
    np.testing.assert_array_equal(sampled.frame_indices, [0, 4, 7, 11])
    assert frame_numbers(sampled.frames) == [0, 4, 7, 11]
    assert sampled.video_num_frames == 12
    # Two sequential passes: the first learns the true count.
    assert capture_with_header.num_opened == 2


def test_a_right_header_frame_count_needs_one_pass(numbered_video, capture_with_header):
    read_sampled_frames(numbered_video, SamplingConfig(num_frames=4), image_size=32)
    assert capture_with_header.num_opened == 1


def test_fps_sampling_of_a_video_shorter_than_its_header_reuses_the_first_pass(numbered_video, capture_with_header):
    capture_with_header.frame_count = 100
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=10, mode="fps", fps=2.5), image_size=32)
    np.testing.assert_array_equal(sampled.frame_indices, [0, 4, 8])
    assert frame_numbers(sampled.frames) == [0, 4, 8]
    assert capture_with_header.num_opened == 1


def test_fps_sampling_needs_the_video_frame_rate(numbered_video, capture_with_header):
    capture_with_header.fps = 0.0
    with pytest.raises(
        FeatcacheError, match="numbered.avi: the video does not state its frame rate.*--sampling uniform"
    ):
        read_sampled_frames(numbered_video, SamplingConfig(num_frames=4, mode="fps", fps=5.0), image_size=32)


def test_uniform_sampling_without_frame_rate_has_zero_timestamps(numbered_video, capture_with_header):
    capture_with_header.fps = 0.0
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=3), image_size=32)
    assert sampled.video_fps == 0.0
    np.testing.assert_array_equal(sampled.timestamps_ms, [0, 0, 0])


def test_truncated_video_keeps_the_frames_that_decode(truncated_video):
    sampled = read_sampled_frames(truncated_video, SamplingConfig(num_frames=4), image_size=32)
    assert 1 <= sampled.video_num_frames < 20
    assert sampled.frame_indices[-1] == sampled.video_num_frames - 1
    assert len(sampled.frames) == min(4, sampled.video_num_frames)


def test_truncated_header_is_an_error(truncated_header_video):
    with pytest.raises(FeatcacheError, match="truncated_header.avi: cannot be opened as a video"):
        read_sampled_frames(truncated_header_video, SamplingConfig(), image_size=32)


def test_not_a_video_is_an_error(not_a_video):
    with pytest.raises(FeatcacheError, match="notes.avi: cannot be opened as a video"):
        read_sampled_frames(not_a_video, SamplingConfig(), image_size=32)


def test_empty_file_is_an_error(empty_video):
    with pytest.raises(FeatcacheError, match="empty.avi: empty file"):
        read_sampled_frames(empty_video, SamplingConfig(), image_size=32)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FeatcacheError, match="gone.avi: file not found"):
        read_sampled_frames(tmp_path / "gone.avi", SamplingConfig(), image_size=32)


def test_unreadable_file_is_an_error(numbered_video, monkeypatch):
    numbered_video.chmod(0)
    # Tests often run as root, which reads any file whatever its mode; make os.access answer as a user would.
    real_access = os.access
    monkeypatch.setattr(
        capture_module.os,
        "access",
        lambda path, mode: False if Path(path) == numbered_video else real_access(path, mode),
    )
    with pytest.raises(FeatcacheError, match="numbered.avi: permission denied"):
        read_sampled_frames(numbered_video, SamplingConfig(), image_size=32)


def test_video_with_no_decodable_frame_is_an_error(numbered_video, monkeypatch):
    monkeypatch.setattr(
        frames_module,
        "_decode_sequentially",
        lambda capture, frame_indices: frames_module._DecodePass(frames=[], num_decoded=0),
    )
    with pytest.raises(FeatcacheError, match="numbered.avi: no decodable frame"):
        read_sampled_frames(numbered_video, SamplingConfig(), image_size=32)


class CaptureFailingToRetrieve:
    """Wraps a cv2.VideoCapture whose retrieve() fails at frame `failing_index` (grab() still succeeds); counts opens.

    A wrapper, not a subclass: Python subclasses of cv2.VideoCapture crash the interpreter when freed.
    """

    failing_index = None
    num_opened = 0

    def __init__(self, *args):
        self._capture = REAL_VIDEO_CAPTURE(*args)
        self._grabbed = 0
        type(self).num_opened += 1

    def grab(self):
        grabbed = self._capture.grab()
        self._grabbed += grabbed
        return grabbed

    def retrieve(self, *args):
        if self._grabbed - 1 == self.failing_index:
            return False, None
        return self._capture.retrieve(*args)

    def __getattr__(self, name):
        return getattr(self._capture, name)


@pytest.fixture
def capture_failing_to_retrieve(monkeypatch):
    """Make featcache open videos through a fresh CaptureFailingToRetrieve class; set failing_index."""
    failing = type("FailingCapture", (CaptureFailingToRetrieve,), {})
    monkeypatch.setattr(frames_module.cv2, "VideoCapture", failing)
    return failing


def test_a_frame_that_fails_to_retrieve_ends_the_video_on_both_passes(numbered_video, capture_failing_to_retrieve):
    # The header's 12 frames give indices [0, 4, 7, 11]; frame 7 fails, so 7 frames are usable, which give other
    # indices: the second pass must stop after those 7 frames too, not decode on to the end.
    capture_failing_to_retrieve.failing_index = 7
    sampled = read_sampled_frames(numbered_video, SamplingConfig(num_frames=4), image_size=32, decoder="sequential")
    assert sampled.video_num_frames == 7
    np.testing.assert_array_equal(sampled.frame_indices, [0, 2, 4, 6])
    assert frame_numbers(sampled.frames) == [0, 2, 4, 6]
    assert capture_failing_to_retrieve.num_opened == 2


def test_a_video_that_changes_between_passes_is_an_error(numbered_video, capture_failing_to_retrieve, monkeypatch):
    capture_failing_to_retrieve.failing_index = 7
    real_decode = frames_module._decode_sequentially

    def decode_then_truncate(capture, frame_indices, stop_after=None):
        decode_pass = real_decode(capture, frame_indices, stop_after=stop_after)
        if stop_after is None:
            return decode_pass
        # The second pass finds the file shorter than the first did.
        return frames_module._DecodePass(frames=decode_pass.frames[:-1], num_decoded=stop_after - 2)

    monkeypatch.setattr(frames_module, "_decode_sequentially", decode_then_truncate)
    with pytest.raises(
        FeatcacheError, match="numbered.avi: decoding stopped at frame 5 on the second pass, at frame 7 on the first"
    ):
        read_sampled_frames(numbered_video, SamplingConfig(num_frames=4), image_size=32, decoder="sequential")


@pytest.mark.parametrize(
    ("make_special_file", "reason"),
    [
        (lambda path: os.mkfifo(path), "not a regular file but a FIFO"),
        (lambda path: path.symlink_to("/dev/zero"), "not a regular file but a character device"),
        (lambda path: path.symlink_to(path), "cannot be examined (Too many levels of symbolic links)"),
        (lambda path: path.symlink_to(path.parent / "nowhere.avi"), "broken symbolic link"),
    ],
    ids=["fifo", "dev-zero", "link-loop", "dangling-link"],
)
def test_special_files_are_errors_without_opening_them(tmp_path, make_special_file, reason):
    """A FIFO would block the decoder forever and /dev/zero never ends: both are refused before opening."""
    path = tmp_path / "special.avi"
    make_special_file(path)
    with pytest.raises(VideoDecodeError, match=re.escape(reason)):
        read_sampled_frames(path, SamplingConfig(num_frames=4), 16)


def test_a_file_name_that_is_not_utf8_decodes(numbered_video):
    """OpenCV segfaults on such a name passed as text; it is opened through a link instead."""
    renamed = Path(os.fsdecode(os.fsencode(numbered_video.parent) + b"/bad\xff\xfe.avi"))
    numbered_video.rename(renamed)
    sampled = read_sampled_frames(renamed, SamplingConfig(num_frames=4), 16)
    assert frame_numbers(sampled.frames) == [0, 4, 7, 11]
