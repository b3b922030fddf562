"""featcache export: one .npy per video plus index.csv, one Parquet file; complete or absent."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from cache_fixtures import write_cache
from typer.testing import CliRunner

from featcache.cache import open_cache, read_all_features, read_index_state
from featcache.cache.export import export_cache
from featcache.cache.maintenance import upgrade_cache
from featcache.cli import app
from featcache.errors import DiskWriteError, FeatcacheError


@pytest.fixture(scope="module", params=[1, 2], ids=["format1", "format2"])
def cache_with_short_videos(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 videos of 5 stored frames x 3 dims, lengths 2..5; two share a name but not an extension. As written
    (format 1) and upgraded to format 2 (variable-length shards)."""
    features = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    paths = ["Jump/a.avi", "Jump/a.mp4", "Run/b.avi", "Run/c.avi"]
    cache = write_cache(
        tmp_path_factory.mktemp("cache") / "short.h5",
        features,
        np.array([2, 5, 3, 4]),
        np.array([0, 0, 1, 1]),
        ["Jump", "Run"],
        paths=paths,
        groups=["1", "1", "2", ""],
    )
    if request.param == 2:
        upgrade_cache(cache)
    return cache


def test_npy_export_holds_each_videos_real_frames(cache_with_short_videos: Path, tmp_path: Path) -> None:
    summary = export_cache(cache_with_short_videos, tmp_path / "out")
    assert (summary.format, summary.num_videos, summary.num_frames) == ("npy", 4, 14)
    with open(tmp_path / "out" / "index.csv", newline="") as stream:
        index = list(csv.DictReader(stream))
    assert [row["npy"] for row in index] == ["Jump/a.avi.npy", "Jump/a.mp4.npy", "Run/b.avi.npy", "Run/c.avi.npy"]
    assert [(row["label"], row["group"], row["length"]) for row in index] == [
        ("Jump", "1", "2"),
        ("Jump", "1", "5"),
        ("Run", "2", "3"),
        ("Run", "", "4"),
    ]
    stored = np.arange(4 * 5 * 3, dtype=np.float16).reshape(4, 5, 3)
    for row, entry in enumerate(index):
        array = np.load(tmp_path / "out" / entry["npy"])
        assert array.dtype == np.float16
        np.testing.assert_array_equal(array, stored[row, : int(entry["length"])])


def test_parquet_export_has_a_row_per_real_frame(cache_with_short_videos: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    summary = export_cache(cache_with_short_videos, tmp_path / "features.parquet")
    assert (summary.format, summary.num_frames) == ("parquet", 14)
    table = pq.read_table(tmp_path / "features.parquet")
    assert table.column_names == ["path", "label", "group", "frame", "frame_index", "timestamp_ms", "vector"]
    assert (
        table.column("path").to_pylist()
        == ["Jump/a.avi"] * 2 + ["Jump/a.mp4"] * 5 + ["Run/b.avi"] * 3 + ["Run/c.avi"] * 4
    )
    assert table.column("frame").to_pylist()[:7] == [0, 1, 0, 1, 2, 3, 4]
    assert table.column("timestamp_ms").to_pylist()[2:4] == [0.0, 100.0]
    vectors = np.array(table.column("vector").to_pylist())
    assert vectors.shape == (14, 3)
    np.testing.assert_array_equal(vectors[7], np.arange(30, 33))  # Run/b.avi, frame 0 (row 2 of the cache)


def test_an_existing_out_is_kept_unless_overwrite(cache_with_short_videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FeatcacheError, match="already exists"):
        export_cache(cache_with_short_videos, out)
    assert (out / "mine.txt").read_text() == "keep me"
    export_cache(cache_with_short_videos, out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "index.csv").is_file()


def test_a_failed_export_leaves_no_output(
    cache_with_short_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*arguments, **keywords):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(DiskWriteError, match="no space left on device writing .*out"):
        export_cache(cache_with_short_videos, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_export_command(cache_with_short_videos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", str(cache_with_short_videos), str(tmp_path / "out"), "--format", "parquet"]
    )
    assert result.exit_code == 0, result.output
    assert "exported 4 videos (14 frames) as parquet" in result.output and (tmp_path / "out").is_file()


def test_h5_export_is_the_single_file_cache(cache_with_short_videos: Path, tmp_path: Path) -> None:
    """OUT.h5 means --format h5: cache format 2's self-contained file (a format-1 cache is one file already)."""
    result = CliRunner().invoke(app, ["export", str(cache_with_short_videos), str(tmp_path / "out.h5")])
    if open_cache(cache_with_short_videos).format_version == 1:
        assert result.exit_code == 2 and "featcache upgrade" in result.output and not (tmp_path / "out.h5").exists()
        return
    assert result.exit_code == 0, result.output
    assert "exported 4 videos (14 frames) as h5" in result.output
    with h5py.File(tmp_path / "out.h5", "r") as exported:  # every video's real frames, one after the other
        stored = np.arange(4 * 5 * 3, dtype=np.float16).reshape(4, 5, 3)
        expected = np.concatenate([stored[row, :length] for row, length in enumerate([2, 5, 3, 4])])
        np.testing.assert_array_equal(exported["features"][()], expected)


def test_an_exported_h5_reads_like_its_cache_and_refuses_to_be_added_to(
    cache_with_short_videos: Path, tmp_path: Path
) -> None:
    original = open_cache(cache_with_short_videos)
    if original.format_version == 1:
        return  # a format-1 cache is exported after `featcache upgrade` (previous test)
    export_cache(cache_with_short_videos, tmp_path / "shared.h5")
    shared = open_cache(tmp_path / "shared.h5")  # one file, no shard folder next to it
    assert not (tmp_path / "shared.h5.shards").exists()
    assert shared.index.paths == original.index.paths and shared.index.fingerprints == original.index.fingerprints
    assert shared.index.class_names == original.index.class_names and list(shared.index.labels) == list(
        original.index.labels
    )
    np.testing.assert_array_equal(read_all_features(shared), read_all_features(original))
    with shared.reader() as shared_reader, original.reader() as original_reader:
        np.testing.assert_array_equal(
            shared_reader.read([3, 1], num_frames=2), original_reader.read([3, 1], num_frames=2)
        )
    with pytest.raises(FeatcacheError, match="self-contained export .* embed into the cache it was exported from"):
        read_index_state(tmp_path / "shared.h5")  # what embed, compact and verify open


def test_export_command_refuses_an_unknown_format(cache_with_short_videos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(cache_with_short_videos), str(tmp_path / "out"), "--format", "csv"])
    assert result.exit_code == 2 and "csv" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
