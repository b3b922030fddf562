"""Demo data: UCF101 layout, determinism, reuse, refusal, and classes that differ only in frame order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.errors import FeatcacheError
from featcache.video.decode import read_sampled_frames
from featcache.video.demo_data import MARKER_FILE_NAME, available_demo_classes, make_demo_data
from featcache.video.find import find_videos

# Small enough to write in well under a second.
SMALL = dict(videos_per_class=4, num_groups=2, num_frames=8, image_size=32)


@pytest.fixture
def small_demo(tmp_path: Path) -> Path:
    return make_demo_data(tmp_path / "demo", **SMALL)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_layout_is_ucf101(small_demo):
    root, entries = find_videos(small_demo)
    assert [entry.relative_path for entry in entries[:4]] == [
        "Bouncing/v_Bouncing_g01_c01.avi",
        "Bouncing/v_Bouncing_g01_c02.avi",
        "Bouncing/v_Bouncing_g02_c01.avi",
        "Bouncing/v_Bouncing_g02_c02.avi",
    ]
    assert len(entries) == 12
    assert sorted({entry.label for entry in entries}) == ["Bouncing", "MovingLeft", "MovingRight"]
    assert sorted({entry.group for entry in entries}) == ["1", "2"]


def test_videos_decode_with_the_asked_size_and_length(small_demo):
    sampled = read_sampled_frames(
        small_demo / "MovingRight" / "v_MovingRight_g01_c01.avi", SamplingConfig(num_frames=8), image_size=32
    )
    assert sampled.video_num_frames == 8
    assert (sampled.video_width, sampled.video_height) == (32, 32)
    assert sampled.video_fps > 0


def test_same_seed_same_bytes_other_seed_other_videos(tmp_path):
    first = make_demo_data(tmp_path / "first", **SMALL)
    second = make_demo_data(tmp_path / "second", **SMALL)
    other = make_demo_data(tmp_path / "other", seed=1, **SMALL)
    assert file_bytes(first) == file_bytes(second)
    video = "MovingRight/v_MovingRight_g01_c01.avi"
    assert file_bytes(first)[video] != file_bytes(other)[video]


def disc_column_and_colour(frame: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean column and mean RGB colour of the pixels far from the frame's median (the disc)."""
    distance = np.abs(frame.astype(float) - np.median(frame.reshape(-1, 3), axis=0)).sum(axis=-1)
    rows, columns = np.nonzero(distance > 120)
    return columns.mean(), frame[rows, columns].astype(float).mean(axis=0)


def test_moving_left_is_moving_right_played_backwards(tmp_path):
    root = make_demo_data(tmp_path / "demo", videos_per_class=1, num_groups=1, num_frames=6, image_size=32)
    sampling = SamplingConfig(num_frames=6)
    right = read_sampled_frames(root / "MovingRight" / "v_MovingRight_g01_c01.avi", sampling, 32).frames
    left = read_sampled_frames(root / "MovingLeft" / "v_MovingLeft_g01_c01.avi", sampling, 32).frames
    right_start_column, right_start_colour = disc_column_and_colour(right[0])
    right_end_column, right_end_colour = disc_column_and_colour(right[-1])
    left_start_column, left_start_colour = disc_column_and_colour(left[0])
    left_end_column, left_end_colour = disc_column_and_colour(left[-1])
    # Right: starts on the left, warm (red > blue); ends on the right, cool. Left: the same, backwards.
    assert right_start_column < 12 < 20 < right_end_column
    assert left_end_column < 12 < 20 < left_start_column
    assert right_start_colour[0] > right_start_colour[2] and right_end_colour[2] > right_end_colour[0]
    assert left_end_colour[0] > left_end_colour[2] and left_start_colour[2] > left_start_colour[0]


def test_reuses_a_finished_dataset(small_demo):
    before = {path: path.stat().st_mtime_ns for path in small_demo.rglob("*.avi")}
    assert make_demo_data(small_demo, **SMALL) == small_demo
    assert before == {path: path.stat().st_mtime_ns for path in small_demo.rglob("*.avi")}
    marker = json.loads((small_demo / MARKER_FILE_NAME).read_text())
    assert marker["parameters"]["seed"] == 0


def test_refuses_a_demo_dataset_with_other_settings(small_demo):
    with pytest.raises(FeatcacheError, match="other settings"):
        make_demo_data(small_demo, seed=5, **SMALL)


def test_refuses_a_non_empty_folder_that_is_not_demo_data(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FeatcacheError, match="not empty"):
        make_demo_data(tmp_path, **SMALL)


def test_writes_into_an_existing_empty_folder(tmp_path):
    make_demo_data(tmp_path, **SMALL)
    assert (tmp_path / MARKER_FILE_NAME).is_file()


def test_more_classes_come_in_a_fixed_order(tmp_path):
    root = make_demo_data(
        tmp_path / "demo", num_classes=5, videos_per_class=1, num_groups=1, num_frames=2, image_size=16
    )
    assert sorted(path.name for path in root.iterdir() if path.is_dir()) == sorted(available_demo_classes())
    assert available_demo_classes()[:3] == ["MovingRight", "MovingLeft", "Bouncing"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(num_classes=0), "1 to 5 classes"),
        (dict(num_classes=6), "1 to 5 classes"),
        (dict(videos_per_class=0), "at least 1 video"),
        (dict(num_frames=1), "at least 2 frames"),
        (dict(image_size=8), "at least 16 pixels"),
    ],
)
def test_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(FeatcacheError, match=message):
        make_demo_data(tmp_path / "demo", **arguments)
