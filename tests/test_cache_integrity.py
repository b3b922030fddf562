"""Never a wrong number from a cache: checksummed reads, shard identity, readers beside compact, symlinked caches,
unlisted shards, and caches written the old way (shard_format 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shard_format1_writer import old_style_shards
from test_cache_format2 import FEATURE_DIM, SETTINGS, shard_video
from typer.testing import CliRunner

from featcache.cache import (
    CacheWriter,
    ShardVideo,
    compact_cache,
    export_cache,
    open_cache,
    read_all_features,
    shard_folder_for,
    upgrade_cache,
    verify_cache,
    write_shard,
)
from featcache.cli import app
from featcache.errors import FeatcacheError, ShardDamagedError

RUNNER = CliRunner()


def six_videos(seed: int = 0) -> list[ShardVideo]:
    return [shard_video(f"{'ab'[n % 2]}/v{n}.avi", 3 + n % 3, seed * 100 + n, label="ab"[n % 2]) for n in range(6)]


def write_two_shard_cache(cache_path: Path, videos: list[ShardVideo], settings: dict = SETTINGS) -> Path:
    with CacheWriter.open(cache_path, settings, FEATURE_DIM) as writer:
        writer.adopt_shard(write_shard(writer.shard_folder, videos[:3], "float32", settings))
        writer.adopt_shard(write_shard(writer.shard_folder, videos[3:], "float32", settings))
        writer.commit()
    return cache_path


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return write_two_shard_cache(tmp_path / "cache.h5", six_videos())


@pytest.fixture
def old_style_cache(tmp_path: Path) -> Path:
    """A format-2 cache whose shards were written before chunk checksums (shard_format 1)."""
    with old_style_shards():
        return write_two_shard_cache(tmp_path / "old.h5", six_videos())


def shard_of(cache_path: Path, row: int) -> Path:
    cache = open_cache(cache_path)
    return cache.shard_paths[row]


def flip_a_feature_byte(shard_path: Path) -> None:
    """Flip one bit in the middle of the shard's first stored feature bytes (through the file, not HDF5)."""
    with h5py.File(shard_path, "r") as handle:
        dataset = handle["features"]
        start = dataset.id.get_offset() if dataset.chunks is None else dataset.id.get_chunk_info(0).byte_offset
    data = bytearray(shard_path.read_bytes())
    data[start + 5] ^= 0x40
    shard_path.write_bytes(bytes(data))


def test_new_shards_are_chunked_and_checksummed(cache_path: Path) -> None:
    with h5py.File(shard_of(cache_path, 0), "r") as handle:
        assert handle.attrs["shard_format"] == 2
        assert all(handle[name].fletcher32 for name in ("features", "frame_indices", "timestamps_ms", "offsets"))


@pytest.mark.parametrize("written", ["checksummed", "old style"])
def test_a_flipped_byte_is_an_error_naming_the_shard_the_video_and_verify(
    written: str, cache_path: Path, old_style_cache: Path
) -> None:
    path = cache_path if written == "checksummed" else old_style_cache
    damaged = shard_of(path, 0)
    flip_a_feature_byte(damaged)
    cache = open_cache(path)
    with cache.reader() as reader, pytest.raises(ShardDamagedError) as raised:
        reader.read_sequence(0)
    message = str(raised.value)
    assert damaged.name in message and cache.index.paths[0] in message and "featcache verify" in message
    assert "\n" not in message
    with cache.reader() as reader:  # the other shard is sound and still read
        np.testing.assert_array_equal(reader.read_sequence(5), six_videos()[5].features)


def test_compact_and_export_refuse_a_damaged_shard_and_drop_damaged_drops_its_videos(
    cache_path: Path, tmp_path: Path
) -> None:
    damaged = shard_of(cache_path, 0)
    damaged_paths = {video.path for video in six_videos()[:3]}
    flip_a_feature_byte(damaged)
    with pytest.raises(ShardDamagedError, match="--drop-damaged") as raised:
        compact_cache(cache_path)
    assert all(path in str(raised.value) for path in damaged_paths)
    assert damaged.exists()  # nothing rewritten: the damaged rows never get a fresh checksum
    assert not verify_cache(cache_path).ok
    with pytest.raises(ShardDamagedError):
        export_cache(cache_path, tmp_path / "export.h5")
    assert not (tmp_path / "export.h5").exists()

    result = RUNNER.invoke(app, ["compact", "--drop-damaged", str(cache_path)])
    assert result.exit_code == 0, result.output
    assert "3 video(s) of damaged shards dropped" in result.output
    cache = open_cache(cache_path)
    assert set(cache.index.paths) == {video.path for video in six_videos()} - damaged_paths
    assert verify_cache(cache_path).ok
    expected = {video.path: video.features for video in six_videos()}
    with cache.reader() as reader:
        for row, path in enumerate(cache.index.paths):
            np.testing.assert_array_equal(reader.read_sequence(row), expected[path])


def test_a_foreign_shard_of_the_same_size_is_refused(tmp_path: Path) -> None:
    """Another cache's shard (seed 1 in its settings) copied over one of ours under our shard's name."""
    other_settings = {**SETTINGS, "extractor": {**SETTINGS["extractor"], "seed": 1}}
    our_settings = {**SETTINGS, "extractor": {**SETTINGS["extractor"], "seed": 0}}
    ours = write_two_shard_cache(tmp_path / "ours.h5", six_videos(), our_settings)
    theirs = write_two_shard_cache(tmp_path / "theirs.h5", six_videos(seed=1), other_settings)
    target, source = shard_of(ours, 0), shard_of(theirs, 0)
    assert target.stat().st_size == source.stat().st_size
    shutil.copyfile(source, target)
    cache = open_cache(ours)  # sizes match: the index alone cannot tell
    with cache.reader() as reader, pytest.raises(ShardDamagedError, match="other settings.*featcache verify"):
        reader.read(np.arange(cache.index.num_videos))
    assert not verify_cache(ours).ok


def test_a_foreign_shard_with_the_same_settings_is_refused_by_its_id(tmp_path: Path) -> None:
    ours = write_two_shard_cache(tmp_path / "ours.h5", six_videos())
    theirs = write_two_shard_cache(tmp_path / "theirs.h5", six_videos(seed=1))
    target, source = shard_of(ours, 0), shard_of(theirs, 0)
    shutil.copyfile(source, target)
    with open_cache(ours).reader() as reader, pytest.raises(ShardDamagedError, match="not " + target.name):
        reader.read_sequence(0)


def test_a_reader_opened_before_compact_reads_the_new_shards(cache_path: Path) -> None:
    expected = {video.path: video.features for video in six_videos()}
    for _ in range(3):  # a short loop: each compact replaces every shard
        cache = open_cache(cache_path)
        old_shards = set(cache.state.shards)
        compact_cache(cache_path)
        assert not old_shards & {path.name for path in shard_folder_for(cache_path).iterdir()}
        with cache.reader() as reader:
            for row, path in enumerate(cache.index.paths):
                np.testing.assert_array_equal(reader.read_sequence(row), expected[path])


def test_a_cache_reached_through_a_symbolic_link_reads_and_is_written_beside_its_real_file(
    cache_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "link.h5"
    link.symlink_to(cache_path)
    np.testing.assert_array_equal(read_all_features(link), read_all_features(cache_path))
    compact_cache(link)
    assert link.is_symlink() and not (tmp_path / "elsewhere" / "link.h5.shards").exists()
    assert verify_cache(link).ok


def test_verify_lists_unlisted_shards_and_compact_removes_them(cache_path: Path) -> None:
    folder = shard_folder_for(cache_path)
    stray = folder / "0123456789abcdef0123456789abcdef.h5"
    shutil.copyfile(shard_of(cache_path, 0), stray)  # what a killed compact leaves
    report = verify_cache(cache_path)
    assert report.ok and report.unlisted_shards == [stray.name]
    result = RUNNER.invoke(app, ["verify", str(cache_path)])
    assert result.exit_code == 0 and stray.name in result.output and "featcache compact" in result.output
    summary = compact_cache(cache_path)
    assert summary.removed_unlisted == [stray.name] and not stray.exists()
    assert verify_cache(cache_path).unlisted_shards == []


def test_upgrade_rewrites_old_shards_checksummed_and_says_when_there_is_nothing_to_do(old_style_cache: Path) -> None:
    before = read_all_features(old_style_cache)
    index_before = open_cache(old_style_cache).index
    result = RUNNER.invoke(app, ["upgrade", str(old_style_cache)])
    assert result.exit_code == 0 and "rewritten with chunk checksums" in result.output, result.output
    for name in open_cache(old_style_cache).state.shards:
        with h5py.File(shard_folder_for(old_style_cache) / name, "r") as handle:
            assert handle.attrs["shard_format"] == 2 and handle["features"].fletcher32
    np.testing.assert_array_equal(read_all_features(old_style_cache), before)
    assert open_cache(old_style_cache).index.paths == index_before.paths
    again = RUNNER.invoke(app, ["upgrade", str(old_style_cache)])
    assert again.exit_code == 0 and "already upgraded" in again.output, again.output
    assert upgrade_cache(old_style_cache).done == "already upgraded"


def test_an_old_style_shard_is_read_when_sound(old_style_cache: Path) -> None:
    with h5py.File(shard_of(old_style_cache, 0), "r") as handle:
        assert handle.attrs["shard_format"] == 1 and handle["features"].chunks is None
    expected = {video.path: video.features for video in six_videos()}
    cache = open_cache(old_style_cache)
    with cache.reader() as reader:
        for row, path in enumerate(cache.index.paths):
            np.testing.assert_array_equal(reader.read_sequence(row), expected[path])
    assert json.loads(json.dumps(cache.settings)) == SETTINGS


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_a_damaged_shard_gives_a_clear_error_or_the_right_numbers(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Bytes flipped anywhere in a shard (data, HDF5 metadata, attributes): every read either raises our error or
    returns exactly the features written, never other numbers."""
    folder = tmp_path_factory.mktemp("fuzz-shard")
    path = write_two_shard_cache(folder / "cache.h5", six_videos())
    shard = shard_of(path, 0)
    damaged = bytearray(shard.read_bytes())
    for position in data.draw(st.lists(st.integers(0, len(damaged) - 1), min_size=1, max_size=6)):
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    shard.write_bytes(bytes(damaged))
    expected = {video.path: video for video in six_videos()}
    try:
        cache = open_cache(path)
        with cache.reader() as reader:
            for row, video_path in enumerate(cache.index.paths):
                np.testing.assert_array_equal(reader.read_sequence(row), expected[video_path].features)
                frames = reader.read_frame_arrays(row)
                np.testing.assert_array_equal(frames["frame_indices"], expected[video_path].frame_indices)
    except FeatcacheError as err:
        assert "\n" not in str(err)
