"""Cache format 2: shards + index, the plain-h5py layout, never silent zeros, verify/compact/export/upgrade,
the lock."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from format1_writer import write_cache as write_format1_cache
from typer.testing import CliRunner

from featcache.cache import (
    CacheLock,
    CacheWriter,
    ShardVideo,
    VideoRows,
    compact_cache,
    open_cache,
    read_all_features,
    read_cache_index,
    shard_folder_for,
    uniform_positions,
    verify_cache,
    write_shard,
)
from featcache.cache.describe import describe_cache, format_cache_description
from featcache.cache.shards import read_video_runtimes
from featcache.cli import app
from featcache.errors import CacheFormatError, CacheLockedError, CacheMismatchError

FEATURE_DIM = 4
SETTINGS = {
    "extractor": {"name": "x", "feature_dim": FEATURE_DIM},
    "sampling": {"num_frames": 0, "mode": "fps", "fps": 1.0},
    "dtype": "float32",
}


def shard_video(path: str, length: int, seed: int, label: str = "a") -> ShardVideo:
    rng = np.random.default_rng(seed)
    return ShardVideo(
        path=path,
        label=label,
        group="",
        fingerprint=f"{length}:{seed:064x}",
        features=rng.random((length, FEATURE_DIM)).astype(np.float32),
        frame_indices=np.arange(length, dtype=np.int32) * 25,
        timestamps_ms=np.arange(length, dtype=np.float32) * 1000,
        video_fps=25.0,
        video_num_frames=25 * length,
        video_width=32,
        video_height=24,
    )


@pytest.fixture
def videos() -> list[ShardVideo]:
    """Five videos of 1..5 frames (variable length), two classes."""
    return [
        shard_video(f"{'ab'[number % 2]}/v{number}.avi", number + 1, number, label="ab"[number % 2])
        for number in range(5)
    ]


@pytest.fixture
def two_shard_cache(tmp_path: Path, videos: list[ShardVideo]) -> Path:
    cache_path = tmp_path / "cache.h5"
    with CacheWriter.open(cache_path, SETTINGS, FEATURE_DIM) as writer:
        writer.adopt_shard(write_shard(writer.shard_folder, videos[:3], "float32", SETTINGS))
        writer.adopt_shard(write_shard(writer.shard_folder, videos[3:], "float32", SETTINGS))
        writer.commit()
    return cache_path


@pytest.fixture
def mixed_runtime_cache(tmp_path: Path, videos: list[ShardVideo]) -> Path:
    """Three shards: two videos embedded by OpenVINO, two by Keras, one in a shard without a `runtime` attribute
    (written before shards recorded it: Keras); then a video removed, so `compact` has a dead row to drop."""
    cache_path = tmp_path / "mixed.h5"
    with CacheWriter.open(cache_path, SETTINGS, FEATURE_DIM) as writer:
        writer.adopt_shard(write_shard(writer.shard_folder, videos[:2], "float32", SETTINGS, runtime="openvino"))
        writer.adopt_shard(write_shard(writer.shard_folder, videos[2:4], "float32", SETTINGS, runtime="keras"))
        writer.adopt_shard(
            write_shard(writer.shard_folder, [videos[4], shard_video("c/gone.avi", 2, 9)], "float32", SETTINGS)
        )
        writer.commit()
        writer.remove_videos(["c/gone.avi"])
        writer.commit()
    return cache_path


def video_runtimes(cache_path: Path) -> dict[str, str]:
    return read_video_runtimes(shard_folder_for(cache_path), open_cache(cache_path).state.videos.values())


def by_path(videos: list[ShardVideo]) -> dict[str, ShardVideo]:
    return {video.path: video for video in videos}


def test_plain_h5py_reads_every_video_with_the_two_line_recipe(
    two_shard_cache: Path, videos: list[ShardVideo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path.parent)  # shards are found next to the index, not in the working directory
    with h5py.File(two_shard_cache, "r") as handle:
        features, offsets = handle["features"], handle["offsets"][()]
        paths = [value.decode() for value in handle["paths"][()]]
        for row, path in enumerate(paths):
            np.testing.assert_array_equal(features[offsets[row] : offsets[row + 1]], by_path(videos)[path].features)
            np.testing.assert_array_equal(
                handle["frame_indices"][offsets[row] : offsets[row + 1]], by_path(videos)[path].frame_indices
            )
        assert features.shape == (1 + 2 + 3 + 4 + 5, FEATURE_DIM)
        assert handle.attrs["format_version"] == 2
        assert [value.decode() for value in handle["fingerprints"][()]] == [
            by_path(videos)[path].fingerprint for path in paths
        ]


def test_reader_gives_sequences_uniform_frames_and_chosen_positions(
    two_shard_cache: Path, videos: list[ShardVideo]
) -> None:
    cache = open_cache(two_shard_cache)
    index = cache.index
    assert (
        index.paths == [video.path for video in videos] and index.num_frames == 5
    )  # order added; --frames 0: T is the longest
    longest = index.paths.index("a/v4.avi")
    with cache.reader() as reader:
        np.testing.assert_array_equal(reader.read_sequence(longest), by_path(videos)["a/v4.avi"].features)
        batch = reader.read([longest, 0], num_frames=3)
        np.testing.assert_array_equal(
            batch[0], by_path(videos)["a/v4.avi"].features[[0, 2, 4]]
        )  # uniform over 5 stored
        np.testing.assert_array_equal(batch[1, :1], by_path(videos)[index.paths[0]].features)
        assert np.all(batch[1, 1:] == 0) and list(index.lengths_for(3)[[longest, 0]]) == [3, 1]
        chosen = reader.read_frames([longest], [np.array([4, 1])])
        np.testing.assert_array_equal(chosen[0], by_path(videos)["a/v4.avi"].features[[4, 1]])
    assert list(uniform_positions(10, 4)) == [0, 3, 6, 9] and list(uniform_positions(2, 4)) == [0, 1]


@pytest.mark.parametrize("damage", ["missing", "truncated", "modified"])
def test_a_damaged_shard_is_an_error_naming_it_never_zeros(two_shard_cache: Path, damage: str) -> None:
    shard = sorted(shard_folder_for(two_shard_cache).iterdir())[0]
    if damage == "missing":
        shard.unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-100])
    else:
        data = bytearray(shard.read_bytes())
        data[-1] ^= 0xFF
        shard.write_bytes(bytes(data))
    if damage != "modified":  # size is checked on every open; contents by verify (a full read)
        with pytest.raises(CacheFormatError, match=f"shard .*{shard.name}.*(missing|truncated)"):
            read_all_features(two_shard_cache)
    report = verify_cache(two_shard_cache)
    assert not report.ok and shard.name in report.problems[0]
    result = CliRunner().invoke(app, ["verify", str(two_shard_cache)])
    assert result.exit_code == 1 and shard.name in result.output


def test_verify_passes_a_sound_cache(two_shard_cache: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(two_shard_cache)])
    assert result.exit_code == 0 and "ok (5 videos, 2 shards" in result.output


def test_removing_videos_marks_rows_dead_and_compact_reclaims_them(
    two_shard_cache: Path, videos: list[ShardVideo]
) -> None:
    shards_before = {path.name: path.stat().st_mtime_ns for path in shard_folder_for(two_shard_cache).iterdir()}
    with CacheWriter.open(two_shard_cache, SETTINGS, FEATURE_DIM) as writer:
        writer.remove_videos(["a/v0.avi", "b/v3.avi"])
        writer.commit()
    assert {
        path.name: path.stat().st_mtime_ns for path in shard_folder_for(two_shard_cache).iterdir()
    } == shards_before  # never rewritten
    cache = open_cache(two_shard_cache)
    assert cache.index.num_videos == 3 and cache.state.num_dead_rows == 2
    expected = read_all_features(two_shard_cache)
    num_dead, num_shards = compact_cache(two_shard_cache)
    assert (num_dead, num_shards) == (2, 1) and len(list(shard_folder_for(two_shard_cache).iterdir())) == 1
    np.testing.assert_array_equal(read_all_features(two_shard_cache), expected)
    assert open_cache(two_shard_cache).state.num_dead_rows == 0 and verify_cache(two_shard_cache).ok


def test_compact_keeps_the_runtime_that_embedded_each_video(mixed_runtime_cache: Path) -> None:
    expected = {"a/v0.avi": "openvino", "b/v1.avi": "openvino", "a/v2.avi": "keras", "b/v3.avi": "keras"}
    expected["a/v4.avi"] = "keras"  # its shard has no `runtime` attribute
    assert video_runtimes(mixed_runtime_cache) == expected
    features = read_all_features(mixed_runtime_cache)
    num_dead, num_shards = compact_cache(mixed_runtime_cache)
    # In row order, one shard per run of one runtime: the OpenVINO videos, then the Keras ones (with and without
    # the attribute).
    assert (num_dead, num_shards) == (1, 2)
    assert video_runtimes(mixed_runtime_cache) == expected
    shard_files = sorted(shard_folder_for(mixed_runtime_cache).iterdir())
    assert len(shard_files) == 2
    for shard in shard_files:
        with h5py.File(shard, "r") as handle:
            assert handle.attrs["runtime"] in ("keras", "openvino")  # recorded, not left to the default
    np.testing.assert_array_equal(read_all_features(mixed_runtime_cache), features)
    assert verify_cache(mixed_runtime_cache).ok


def test_info_lists_the_runtimes_and_the_precision(mixed_runtime_cache: Path) -> None:
    description = describe_cache(mixed_runtime_cache)
    assert description["runtimes"] == {"keras": 3, "openvino": 2} and description["precision"] == "f32"
    assert "embedded by: 3 keras, 2 openvino; precision f32" in format_cache_description(description)
    result = CliRunner().invoke(app, ["info", str(mixed_runtime_cache), "--json"])
    assert result.exit_code == 0
    described = json.loads(result.output)
    assert described["runtimes"] == {"keras": 3, "openvino": 2} and described["precision"] == "f32"


def test_info_describes_an_int8_cache_s_calibration(tmp_path: Path, videos: list[ShardVideo]) -> None:
    calibration = {
        "videos": ["a/v0.avi", "b/v1.avi"],
        "num_calibration_frames": 3,
        "num_held_out_frames": 3,
        "held_out_mean_cosine": 0.99512,
    }
    extractor = {**SETTINGS["extractor"], "precision": "int8", "int8_calibration": calibration}
    settings = {**SETTINGS, "extractor": extractor}
    cache_path = tmp_path / "int8.h5"
    with CacheWriter.open(cache_path, settings, FEATURE_DIM) as writer:
        writer.adopt_shard(write_shard(writer.shard_folder, videos, "float32", settings, runtime="openvino"))
        writer.commit()
    result = CliRunner().invoke(app, ["info", str(cache_path)])
    assert result.exit_code == 0
    assert (
        "embedded by: 5 openvino; precision int8 (calibrated on 3 frames of 2 videos, mean cosine 0.9951 to f32 "
        "on 3 held out)" in result.output
    )
    assert describe_cache(cache_path)["precision"] == "int8"


def test_export_writes_one_self_contained_file_with_the_same_layout(
    two_shard_cache: Path, tmp_path: Path, videos: list[ShardVideo]
) -> None:
    out = tmp_path / "shared" / "export.h5"
    out.parent.mkdir()
    assert CliRunner().invoke(app, ["export", str(two_shard_cache), str(out)]).exit_code == 0
    for shard in shard_folder_for(two_shard_cache).iterdir():
        shard.unlink()  # the export needs none of them
    with h5py.File(out, "r") as handle:
        assert not handle["features"].is_virtual and handle.attrs["self_contained"]
        offsets, paths = handle["offsets"][()], [value.decode() for value in handle["paths"][()]]
        for row, path in enumerate(paths):
            np.testing.assert_array_equal(
                handle["features"][offsets[row] : offsets[row + 1]], by_path(videos)[path].features
            )
            np.testing.assert_array_equal(
                handle["timestamps_ms"][offsets[row] : offsets[row + 1]], by_path(videos)[path].timestamps_ms
            )


def format1_rows(count: int, num_frames: int = 3) -> VideoRows:
    rng = np.random.default_rng(7)
    lengths = np.array([num_frames, 2, 1][:count] + [num_frames] * max(0, count - 3), dtype=np.int32)
    features = rng.random((count, num_frames, FEATURE_DIM)).astype(np.float16)
    for row, length in enumerate(lengths):
        features[row, length:] = 0
    return VideoRows(
        features=features,
        frame_indices=np.where(np.arange(num_frames) < lengths[:, None], np.arange(num_frames), -1).astype(np.int32),
        timestamps_ms=np.zeros((count, num_frames), np.float32),
        lengths=lengths,
        video_fps=np.full(count, 25.0, np.float32),
        video_num_frames=np.full(count, 30, np.int32),
        video_width=np.full(count, 32, np.int32),
        video_height=np.full(count, 24, np.int32),
        labels=["a", "b"] * (count // 2) + ["a"] * (count % 2),
        paths=[f"v{row}.avi" for row in range(count)],
        groups=[""] * count,
    )


@pytest.fixture
def format1_cache(tmp_path: Path) -> Path:
    """A cache written by the format-1 writer featcache shipped before format 2 (tests/format1_writer.py)."""
    path = tmp_path / "old.h5"
    rows = format1_rows(5)
    write_format1_cache(
        path,
        [rows],
        rows.paths,
        ["a", "b"],
        [("bad.avi", "empty file")],
        {
            "extractor": {"name": "x", "feature_dim": FEATURE_DIM},
            "sampling": {"num_frames": 3, "mode": "uniform", "fps": None},
        },
        3,
        FEATURE_DIM,
        "float16",
    )
    return path


def test_format1_is_read_and_upgrade_converts_it_in_place(format1_cache: Path) -> None:
    before_index, before_features = read_cache_index(format1_cache), read_all_features(format1_cache)
    assert before_index.format_version == 1 and before_features.shape == (5, 3, FEATURE_DIM)
    result = CliRunner().invoke(app, ["upgrade", str(format1_cache)])
    assert result.exit_code == 0, result.output
    after = read_cache_index(format1_cache)
    assert after.format_version == 2 and after.paths == before_index.paths and after.failures == before_index.failures
    np.testing.assert_array_equal(after.lengths, before_index.lengths)
    np.testing.assert_array_equal(read_all_features(format1_cache), before_features)
    with h5py.File(format1_cache, "r") as handle:
        assert handle["features"].shape == (int(before_index.lengths.sum()), FEATURE_DIM)  # the padding is gone


def test_a_format1_cache_must_be_upgraded_before_adding_to_it(format1_cache: Path) -> None:
    with pytest.raises(CacheFormatError, match="featcache upgrade"):
        CacheWriter.open(format1_cache, SETTINGS, FEATURE_DIM)


def test_a_shard_with_other_settings_cannot_join(two_shard_cache: Path, videos: list[ShardVideo]) -> None:
    other = {**SETTINGS, "dtype": "float16"}
    with CacheWriter.open(two_shard_cache, SETTINGS, FEATURE_DIM) as writer:
        info = write_shard(writer.shard_folder, videos[:1], "float16", other)
        with pytest.raises(CacheMismatchError, match="other settings"):
            writer.adopt_shard(info)


LOCK_HOLDER = """
import sys, time
from featcache.cache import CacheLock
with CacheLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_second_writer_is_refused_at_once_and_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.h5"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(cache_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CacheLockedError, match="another featcache process is writing"):
            CacheWriter.open(cache_path, SETTINGS, FEATURE_DIM)
    finally:
        holder.kill()  # kill -9: no clean-up runs, the kernel drops the lock
        holder.wait()
    with CacheLock(cache_path):
        pass


@pytest.mark.parametrize("written_by", ["0.4.0", "1.0.0"])
def test_a_cache_written_by_a_newer_featcache_is_refused_in_one_line(two_shard_cache: Path, written_by: str) -> None:
    with h5py.File(two_shard_cache, "a") as handle:
        handle.attrs["featcache_version"] = written_by
    message = rf"written by featcache {re.escape(written_by)}, newer than this featcache .*upgrade featcache"
    with pytest.raises(CacheFormatError, match=message):
        open_cache(two_shard_cache)
    with pytest.raises(CacheFormatError, match=message):
        CacheWriter.open(two_shard_cache, SETTINGS, FEATURE_DIM)
    result = CliRunner().invoke(app, ["info", str(two_shard_cache)])
    assert result.exit_code == 2 and f"featcache {written_by}" in result.output and "Traceback" not in result.output


def test_a_cache_of_an_older_or_same_release_is_read(two_shard_cache: Path, videos: list[ShardVideo]) -> None:
    for written_by in ("0.1.0", "0.3.9"):  # a patch release writes the formats of its minor release
        with h5py.File(two_shard_cache, "a") as handle:
            handle.attrs["featcache_version"] = written_by
        assert open_cache(two_shard_cache).index.num_videos == len(videos)
