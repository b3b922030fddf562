"""Frame index selection: uniform spread, fixed rate, short videos."""

from __future__ import annotations

import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.errors import FeatcacheError
from featcache.video.sampling import fps_frame_indices, sample_frame_indices, uniform_frame_indices


def test_uniform_spreads_over_whole_video_with_first_and_last():
    np.testing.assert_array_equal(uniform_frame_indices(100, 5), [0, 25, 50, 74, 99])
    np.testing.assert_array_equal(uniform_frame_indices(12, 4), [0, 4, 7, 11])


def test_uniform_rounds_half_up_and_stays_strictly_increasing():
    # linspace(0, 5, 3) = [0, 2.5, 5]: half-to-even would give 2, half-up gives 3.
    np.testing.assert_array_equal(uniform_frame_indices(6, 3), [0, 3, 5])
    for num_video_frames in range(1, 60):
        for num_frames in range(1, 20):
            indices = uniform_frame_indices(num_video_frames, num_frames)
            assert len(indices) == min(num_video_frames, num_frames)
            assert np.all(np.diff(indices) > 0)
            assert indices[0] == 0 and indices[-1] < num_video_frames
            if num_frames > 1:
                assert indices[-1] == num_video_frames - 1


def test_uniform_short_video_gives_all_frames():
    indices = uniform_frame_indices(3, 10)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, [0, 1, 2])


def test_uniform_video_as_long_as_requested_gives_every_frame():
    np.testing.assert_array_equal(uniform_frame_indices(10, 10), np.arange(10))


def test_uniform_single_frame_is_the_first():
    np.testing.assert_array_equal(uniform_frame_indices(50, 1), [0])


def test_uniform_empty_video_gives_nothing():
    assert uniform_frame_indices(0, 5).shape == (0,)


def test_fps_takes_one_frame_per_period():
    # 30 fps video sampled at 10 fps: every third frame.
    np.testing.assert_array_equal(fps_frame_indices(100, 30.0, 10.0, 5), [0, 3, 6, 9, 12])
    # 25 fps at 2 fps: frame shown at 0, 0.5, 1.0, 1.5 s.
    np.testing.assert_array_equal(fps_frame_indices(100, 25.0, 2.0, 4), [0, 12, 25, 37])


def test_fps_tolerates_float_error_in_the_product():
    # 29.97 / 9.99 = 3 exactly in decimals but not in binary floating point.
    np.testing.assert_array_equal(fps_frame_indices(100, 29.97, 9.99, 4), [0, 3, 6, 9])


def test_fps_stops_at_the_end_of_the_video():
    np.testing.assert_array_equal(fps_frame_indices(7, 30.0, 10.0, 10), [0, 3, 6])


def test_fps_above_the_video_rate_does_not_repeat_frames():
    np.testing.assert_array_equal(fps_frame_indices(100, 10.0, 20.0, 6), [0, 1, 2])


def test_fps_without_a_video_rate_is_an_error():
    with pytest.raises(FeatcacheError, match="does not state its frame rate.*--sampling uniform"):
        fps_frame_indices(100, 0.0, 10.0, 5)


def test_sample_frame_indices_dispatches_on_mode():
    np.testing.assert_array_equal(sample_frame_indices(12, 10.0, SamplingConfig(num_frames=4)), [0, 4, 7, 11])
    fps_sampling = SamplingConfig(num_frames=3, mode="fps", fps=5.0)
    np.testing.assert_array_equal(sample_frame_indices(12, 10.0, fps_sampling), [0, 2, 4])
