"""An AVI stream's index read from its idx1 (no demux pass) is the index the demux pass builds, checked as strictly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video import stream_index
from featcache.video.decode import read_sampled_frames
from featcache.video.seek_decode import DecodeRun, SeekMismatch, _check_landing
from featcache.video.stream_index import (
    IndexUntrustworthy,
    StreamIndex,
    _check_entries,
    index_from_container,
    index_stream,
    read_container_index,
    the_video_stream,
)
from tests.decode_corpus import write_with_opencv, write_with_pyav

WRITERS = {
    "xvid.avi": lambda path: write_with_opencv(path, "XVID", 90),
    "mjpg.avi": lambda path: write_with_opencv(path, "MJPG", 40),
    "mp4v.avi": lambda path: write_with_pyav(path, "mpeg4", 90, {"g": "24"}),
    "mpeg4_bframes.avi": lambda path: write_with_pyav(path, "mpeg4", 90, {"g": "24", "bf": "2"}),
    "h264_no_bframes.mp4": lambda path: write_with_pyav(path, "libx264", 60, {"g": "20", "bf": "0"}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("container_index")
    return {name: write(folder / name) for name, write in WRITERS.items()}


def _from_container(path: Path, file_size: int | None = None):
    with av.open(str(path)) as container:
        stream = the_video_stream(container)
        container_index = read_container_index(stream)
        assert container_index is not None, f"{path.name} has a full container index"
        size = path.stat().st_size if file_size is None else file_size
        return index_from_container(container, stream, container_index, size)


def _demuxed(path: Path):
    with av.open(str(path)) as container:
        stream = the_video_stream(container)
        return index_stream(container, stream)


@pytest.mark.parametrize("name", ["xvid.avi", "mjpg.avi", "mp4v.avi"])
def test_an_avi_index_read_from_idx1_is_the_demux_pass_index(videos: dict[str, Path], name: str) -> None:
    from_idx1, demuxed = _from_container(videos[name]), _demuxed(videos[name])
    assert from_idx1 is not None
    np.testing.assert_array_equal(from_idx1.pts, demuxed.pts)
    np.testing.assert_array_equal(from_idx1.keyframe_positions, demuxed.keyframe_positions)
    assert from_idx1.time_base == demuxed.time_base
    assert demuxed.num_frames == (40 if name == "mjpg.avi" else 90)


@pytest.mark.parametrize(
    "name",
    [
        # B-frames: stored order is not the order shown (the demux pass finds an open GOP here, and falls back).
        "mpeg4_bframes.avi",
        # MP4's sample table gives dts, not pts: demuxed even without B-frames.
        "h264_no_bframes.mp4",
    ],
)
def test_a_stream_whose_container_index_is_not_its_pts_is_demuxed(videos: dict[str, Path], name: str) -> None:
    assert _from_container(videos[name]) is None


def test_an_index_listing_chunks_past_the_end_of_the_file_is_untrustworthy(videos: dict[str, Path]) -> None:
    """As a file cut short after its idx1 was read would be: the last chunk does not fit in the bytes there are."""
    path = videos["xvid.avi"]
    with pytest.raises(IndexUntrustworthy, match="past the end of the file"):
        _from_container(path, file_size=path.stat().st_size // 2)


def _entries(sizes=(10, 10, 10), pts=(0, 1, 2), discarded=(False, False, False), ends=(100, 200, 300)):
    return np.array(pts), np.array(sizes), np.array(ends), np.array(discarded)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (_entries(sizes=(10, 0, 10)), "an empty packet at pts 1"),
        (_entries(discarded=(False, False, True)), "a packet flagged discard at pts 2"),
        (_entries(pts=(0, 2, 2)), r"dts not increasing \(2 then 2\)"),
        (_entries(ends=(100, 200, 301)), "a packet at pts 2 past the end of the file"),
    ],
)
def test_an_untrustworthy_entry_makes_the_video_decode_sequentially(entries, reason: str) -> None:
    with pytest.raises(IndexUntrustworthy, match=reason):
        _check_entries(*entries, file_size=300)


def test_an_avi_seeks_without_a_demux_pass_and_gives_the_sequential_frames(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_demux_pass(*args: object) -> None:
        raise AssertionError("an AVI whose idx1 holds the pts is not demuxed to be indexed")

    monkeypatch.setattr(stream_index, "index_stream", no_demux_pass)
    sampling = SamplingConfig(num_frames=10)
    seeked = read_sampled_frames(videos["xvid.avi"], sampling, 32, decoder="seek")
    sequential = read_sampled_frames(videos["xvid.avi"], sampling, 32, decoder="sequential")
    assert seeked.decoder == "seek", seeked.decoder_note
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)


def test_a_seek_landing_on_a_frame_its_decoder_does_not_call_a_keyframe_is_a_mismatch() -> None:
    """An open GOP's leading frame decodes after its keyframe's packet and shows before it, at the pts an index read
    from the container gives the keyframe: the index cannot tell, the decoder's keyframe flag does."""
    index = StreamIndex(np.arange(30, dtype=np.int64), np.array([0, 10, 20]), Fraction(1, 25))
    run = DecodeRun(10, 14)
    _check_landing(index, run, 10, 10, decoded_as_keyframe=True)
    with pytest.raises(SeekMismatch, match=r"\(pts 10\) is not a keyframe by its decoder"):
        _check_landing(index, run, 10, 10, decoded_as_keyframe=False)
