"""The cache file: reading rows back in any order, refusing foreign files, writing atomically."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from featcache.cache import FeatureReader, VideoRows, read_all_features, read_cache_index, write_cache
from featcache.errors import CacheFormatError

NUM_FRAMES, FEATURE_DIM = 3, 5


def video_rows(paths: list[str], labels: list[str], seed: int = 0) -> VideoRows:
    count = len(paths)
    rng = np.random.default_rng(seed)
    return VideoRows(
        features=rng.random((count, NUM_FRAMES, FEATURE_DIM)).astype(np.float16),
        frame_indices=np.tile(np.arange(NUM_FRAMES, dtype=np.int32), (count, 1)),
        timestamps_ms=np.zeros((count, NUM_FRAMES), np.float32),
        lengths=np.full(count, NUM_FRAMES, np.int32),
        video_fps=np.full(count, 25.0, np.float32),
        video_num_frames=np.full(count, 30, np.int32),
        video_width=np.full(count, 32, np.int32),
        video_height=np.full(count, 24, np.int32),
        labels=labels,
        paths=paths,
        groups=[""] * count,
    )


def write(path: Path, sources: list[VideoRows], failures=()) -> None:
    all_paths = [video_path for rows in sources for video_path in rows.paths]
    labels = sorted({label for rows in sources for label in rows.labels})
    write_cache(
        path,
        sources,
        all_paths,
        labels,
        list(failures),
        {"extractor": {"name": "x"}, "sampling": {"num_frames": NUM_FRAMES}},
        NUM_FRAMES,
        FEATURE_DIM,
        "float16",
    )


def test_rows_keep_the_order_written(tmp_path: Path) -> None:
    """Format 2 keeps rows in the order they were added (shard by shard),
    so its virtual datasets stay a few mappings."""
    first, second = video_rows(["b/2.avi", "a/1.avi"], ["b", "a"], seed=1), video_rows(["a/0.avi"], ["a"], seed=2)
    write(tmp_path / "cache.h5", [first, second], failures=[("c/bad.avi", "empty file")])
    index = read_cache_index(tmp_path / "cache.h5")
    assert index.paths == ["b/2.avi", "a/1.avi", "a/0.avi"]
    np.testing.assert_array_equal(index.labels, [1, 0, 0])
    assert index.failures == [("c/bad.avi", "empty file")]
    features = read_all_features(tmp_path / "cache.h5")
    np.testing.assert_array_equal(features[2], second.features[0].astype(np.float32))
    np.testing.assert_array_equal(features[0], first.features[0].astype(np.float32))


def test_feature_reader_returns_rows_in_the_order_asked_with_repeats(tmp_path: Path) -> None:
    rows = video_rows([f"a/{number}.avi" for number in range(6)], ["a"] * 6)
    write(tmp_path / "cache.h5", [rows])
    with FeatureReader(tmp_path / "cache.h5") as reader:
        batch = reader.read(np.array([4, 0, 4, 2]))
    assert batch.dtype == np.float32 and batch.shape == (4, NUM_FRAMES, FEATURE_DIM)
    np.testing.assert_array_equal(batch, rows.features[[4, 0, 4, 2]].astype(np.float32))


def test_a_failed_write_leaves_the_previous_cache_and_no_temporary_file(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.h5"
    write(cache_path, [video_rows(["a/1.avi"], ["a"])])
    before = cache_path.read_bytes()
    shards_before = sorted(path.name for path in (tmp_path / "cache.h5.shards").iterdir())

    def rows_then_crash():
        yield video_rows(["a/1.avi"], ["a"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_cache(
            cache_path,
            rows_then_crash(),
            ["a/1.avi", "a/2.avi"],
            ["a"],
            [],
            {"extractor": {}, "sampling": {}},
            NUM_FRAMES,
            FEATURE_DIM,
            "float16",
        )
    assert cache_path.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache.h5", "cache.h5.lock", "cache.h5.shards"]
    assert sorted(path.name for path in (tmp_path / "cache.h5.shards").iterdir()) == shards_before


@pytest.mark.parametrize("kind", ["missing", "not hdf5", "foreign hdf5"])
def test_foreign_files_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cache.h5"
    if kind == "not hdf5":
        path.write_text("hello")
    elif kind == "foreign hdf5":
        with h5py.File(path, "w") as handle:
            handle["x"] = np.zeros(3)
    with pytest.raises(CacheFormatError, match="featcache embed|no such cache"):
        read_cache_index(path)
