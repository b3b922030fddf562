"""An AVI stream's index read from its idx1 (no demux pass) is the index the demux pass builds, checked as strictly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video import stream_index
from featcache.video.avi_layout import idx1_disagreement
from featcache.video.decode import PROBE_OPTIONS, read_sampled_frames
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


def _from_container(path: Path):
    with av.open(str(path), options=PROBE_OPTIONS) as container:  # as plan_seeking opens it
        stream = the_video_stream(container)
        container_index = read_container_index(stream)
        assert container_index is not None, f"{path.name} has a full container index"
        return index_from_container(container, stream, container_index, path)


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


def _chunk_position(path: Path, frame: int) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].index_entries[frame].pos


def test_a_damaged_chunk_header_between_runs_sends_the_avi_to_the_demux_pass(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """A chunk header the demuxer cannot read (bit rot, a bad download) where no run decodes: a sequential read
    resyncs past it and counts a frame fewer, so the idx1 timestamps after it are one position off what OpenCV
    counts. The layout check sees the header is not what idx1 lists; the demux pass, reading in order like OpenCV,
    decides from there, and the frames are the sequential ones whichever path takes them."""
    damaged = tmp_path / "damaged.avi"
    data = bytearray(videos["xvid.avi"].read_bytes())
    position = _chunk_position(videos["xvid.avi"], 40)
    assert data[position : position + 4] == b"00dc"
    data[position : position + 4] = b"XXXX"
    damaged.write_bytes(bytes(data))
    assert _from_container(damaged) is None
    sampling = SamplingConfig(num_frames=10)
    seeked = read_sampled_frames(damaged, sampling, 32, decoder="seek")
    sequential = read_sampled_frames(damaged, sampling, 32, decoder="sequential")
    assert seeked.video_num_frames == sequential.video_num_frames
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)


def _entries(sizes=(10, 10, 10), pts=(0, 1, 2), discarded=(False, False, False)):
    return np.array(pts), np.array(sizes), np.array(discarded)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (_entries(sizes=(10, 0, 10)), "an empty packet at pts 1"),
        (_entries(discarded=(False, False, True)), "a packet flagged discard at pts 2"),
        (_entries(pts=(0, 2, 2)), r"dts not increasing \(2 then 2\)"),
    ],
)
def test_an_untrustworthy_entry_makes_the_video_decode_sequentially(entries, reason: str) -> None:
    with pytest.raises(IndexUntrustworthy, match=reason):
        _check_entries(*entries)


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


def _riff_avi(tmp_path: Path, movi_chunks: list[bytes]) -> tuple[Path, int]:
    """A minimal RIFF AVI: an empty hdrl list, then a movi list of `movi_chunks`; and where movi's chunks start."""
    hdrl = b"LIST" + (4).to_bytes(4, "little") + b"hdrl"
    movi_body = b"movi" + b"".join(movi_chunks)
    movi = b"LIST" + len(movi_body).to_bytes(4, "little") + movi_body
    body = b"AVI " + hdrl + movi
    path = tmp_path / "layout.avi"
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path, 12 + len(hdrl) + 12


def _chunk(fourcc: bytes, size: int) -> bytes:
    return fourcc + size.to_bytes(4, "little") + bytes(size) + bytes(size & 1)


def _listed(first: int, chunks: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    positions, sizes, offset = [], [], first
    for chunk in chunks:
        positions.append(offset)
        sizes.append(int.from_bytes(chunk[4:8], "little"))
        offset += len(chunk)
    return np.array(positions, dtype=np.int64), np.array(sizes, dtype=np.int64)


def test_idx1_listing_every_movi_chunk_agrees_with_skippable_chunks_between(tmp_path: Path) -> None:
    frames = [_chunk(b"00dc", 5), _chunk(b"00dc", 8)]
    path, first = _riff_avi(tmp_path, [frames[0], _chunk(b"JUNK", 3), frames[1]])
    positions, sizes = _listed(first, [frames[0], _chunk(b"JUNK", 3), frames[1]])
    keep = [0, 2]  # the JUNK chunk is not listed, and need not be
    assert idx1_disagreement(path, {0: (positions[keep], sizes[keep])}, 0) is None


@pytest.mark.parametrize(
    ("chunks", "listed", "reason"),
    [
        # A frame chunk idx1 does not list: a sequential read decodes it, a seek by idx1 counts past it.
        ([b"00dc", b"00dc", b"00dc"], [0, 2], "a chunk the index does not list at byte"),
        # The listed chunk is not a video frame of this stream.
        ([b"00dc", b"01wb"], [0, 1], "the chunk the index lists at byte"),
        ([b"00dc", b"0Xdc"], [0, 1], "the chunk the index lists at byte"),
    ],
)
def test_idx1_disagreeing_with_movi_is_found(tmp_path: Path, chunks: list[bytes], listed: list[int], reason: str):
    movi = [_chunk(fourcc, 6) for fourcc in chunks]
    path, first = _riff_avi(tmp_path, movi)
    positions, sizes = _listed(first, movi)
    assert reason in (idx1_disagreement(path, {0: (positions[listed], sizes[listed])}, 0) or "")


def test_an_idx1_size_other_than_the_chunk_header_says_is_found(tmp_path: Path) -> None:
    movi = [_chunk(b"00dc", 6), _chunk(b"00dc", 6)]
    path, first = _riff_avi(tmp_path, movi)
    positions, sizes = _listed(first, movi)
    sizes[1] = 4
    assert "is not there" in (idx1_disagreement(path, {0: (positions, sizes)}, 0) or "")


def test_an_idx1_keyframe_flag_on_a_predicted_frame_falls_back_to_the_sequential_frames(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """idx1's keyframe flags are the muxer's word: one set on frame 30, a P-frame (the real keyframes are every
    12th), makes a run seek there, where the decoder gives no keyframe. The landing check catches it and the video
    decodes sequentially: a frame predicted from nothing is never returned."""
    source = videos["xvid.avi"]
    data = bytearray(source.read_bytes())
    idx1 = data.rindex(b"idx1")
    entry = idx1 + 8 + 16 * 30  # idx1 entries: chunk id, flags, offset, size (4 bytes each); one stream here
    assert data[entry : entry + 4] == b"00dc" and not data[entry + 4] & 0x10
    data[entry + 4] |= 0x10  # AVIIF_KEYFRAME
    flagged = tmp_path / "flagged.avi"
    flagged.write_bytes(bytes(data))
    index = _from_container(flagged)
    assert index is not None and 30 in index.keyframe_positions.tolist()
    sampling = SamplingConfig(num_frames=10)  # frames 0, 10, 20, 30, ...: a run starts at frame 30
    seeked = read_sampled_frames(flagged, sampling, 32, decoder="seek")
    sequential = read_sampled_frames(source, sampling, 32, decoder="sequential")
    assert seeked.decoder == "sequential" and "seeking fell back" in seeked.decoder_note, seeked.decoder_note
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)
