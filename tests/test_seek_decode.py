"""Exact seeking (PyAV) gives the frames of the sequential decode (OpenCV), index for index, pixel for pixel."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video import seek_decode
from featcache.video.capture import to_model_frame
from featcache.video.decode import read_sampled_frames
from featcache.video.seek_decode import (
    DecodeRun,
    DecodeTally,
    SeekMismatch,
    decode_planned_frames,
    estimate_frames_to_decode,
    is_non_reference_access_unit,
    iterate_planned_frames,
    plan_seek_decode,
)
from featcache.video.stream_index import (
    IndexUntrustworthy,
    StreamIndex,
    _check_packet,
    index_stream,
    read_container_index,
    the_video_stream,
)
from tests.decode_corpus import with_a_frameless_packet, write_decode_corpus, write_with_pyav

# Where seeking must hold (a test that only ever fell back would prove nothing), and where it must not.
SEEKABLE = [
    "h264_long_gop_bframes.mp4",
    "h264.mkv",
    "h264_open_gop.mp4",
    "xvid.avi",
    "mp4v.avi",
    "mjpg.avi",
    "vp8.webm",
    "vp9.webm",
    "variable_frame_rate.mkv",
    "nonzero_start.mkv",
    "truncated.mkv",
]
FALLS_BACK = {
    # MPEG-TS has no index: FFmpeg's seek lands past the first frame, which the landing check catches.
    "nonzero_start.ts": "not at a keyframe at or before it",
    "truncated.avi": "a packet flagged corrupt",
}
SAMPLINGS = {
    "uniform-1": SamplingConfig(num_frames=1),
    "uniform-10": SamplingConfig(num_frames=10),
    "uniform-48": SamplingConfig(num_frames=48),
    "fps-5-all": SamplingConfig(num_frames=0, mode="fps", fps=5.0),
    "fps-7-10": SamplingConfig(num_frames=10, mode="fps", fps=7.0),
}


@pytest.fixture(scope="module")
def decode_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_decode_corpus(tmp_path_factory.mktemp("decode_corpus"))


@pytest.mark.parametrize("sampling_name", SAMPLINGS)
@pytest.mark.parametrize("video_name", SEEKABLE + list(FALLS_BACK))
def test_seeking_gives_the_sequential_frames(decode_corpus: dict[str, Path], video_name: str, sampling_name: str):
    path, sampling = decode_corpus[video_name], SAMPLINGS[sampling_name]
    sequential = read_sampled_frames(path, sampling, 32, decoder="sequential")
    seeked = read_sampled_frames(path, sampling, 32, decoder="seek")
    assert sequential.decoder == "sequential" and sequential.decoder_note == ""
    if video_name in FALLS_BACK:
        assert seeked.decoder == "sequential"
        assert FALLS_BACK[video_name] in seeked.decoder_note
    else:
        assert seeked.decoder == "seek", seeked.decoder_note
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)
    assert (seeked.video_num_frames, seeked.video_fps) == (sequential.video_num_frames, sequential.video_fps)
    assert (seeked.video_width, seeked.video_height) == (sequential.video_width, sequential.video_height)
    np.testing.assert_array_equal(seeked.timestamps_ms, sequential.timestamps_ms)


def test_seeking_decodes_full_size_frames_identically(decode_corpus: dict[str, Path]) -> None:
    """At the video's own size (no resize to hide a colour difference), both paths give the same pixels."""
    path = decode_corpus["h264_long_gop_bframes.mp4"]
    sampling = SamplingConfig(num_frames=10)
    sequential = read_sampled_frames(path, sampling, 64, decoder="sequential")
    seeked = read_sampled_frames(path, sampling, 64, decoder="seek")
    assert seeked.decoder == "seek"
    np.testing.assert_array_equal(seeked.frames, sequential.frames)


def test_auto_seeks_a_long_gop_video_sparsely_sampled_and_not_a_densely_sampled_one(
    decode_corpus: dict[str, Path],
) -> None:
    path = decode_corpus["h264_long_gop_bframes.mp4"]  # 240 frames, keyframes at 0, 96, 192
    sparse = read_sampled_frames(path, SamplingConfig(num_frames=1), 32, decoder="auto")
    assert sparse.decoder == "seek"  # frame 0 and the last GOP: 97 of 240 frames
    dense = read_sampled_frames(path, SamplingConfig(num_frames=48), 32, decoder="auto")
    assert dense.decoder == "sequential" and dense.decoder_note.startswith("auto: seeking would decode")


def test_auto_decides_a_dense_sample_by_the_container_index_before_demuxing(decode_corpus: dict[str, Path]) -> None:
    mp4 = decode_corpus["h264_long_gop_bframes.mp4"]
    dense = read_sampled_frames(mp4, SamplingConfig(num_frames=48), 32, decoder="auto")
    assert dense.decoder == "sequential"
    assert dense.decoder_note == "auto: seeking would decode more than 120 of 240 frames (by the container's index)"
    # MKV's cues list keyframes only: the exact index decides, after the demux.
    mkv = read_sampled_frames(decode_corpus["h264.mkv"], SamplingConfig(num_frames=0, mode="fps", fps=25.0), 32)
    assert mkv.decoder == "sequential" and mkv.decoder_note.startswith("auto: seeking would decode")
    assert "container" not in mkv.decoder_note


@pytest.mark.parametrize("sampling_name", SAMPLINGS)
@pytest.mark.parametrize("video_name", ["h264_long_gop_bframes.mp4", "xvid.avi", "mp4v.avi", "mjpg.avi"])
def test_the_container_index_estimate_counts_what_the_exact_plan_decodes(
    decode_corpus: dict[str, Path], video_name: str, sampling_name: str
) -> None:
    """On closed-GOP files with a full container index, the estimate auto decides by is the exact plan's count."""
    container, stream, index = _real_index(decode_corpus[video_name])
    with container:
        container_index = read_container_index(stream)
        assert container_index is not None and container_index.num_frames == index.num_frames
        frame_indices = read_sampled_frames(decode_corpus[video_name], SAMPLINGS[sampling_name], 8).frame_indices
        exact = plan_seek_decode(index, frame_indices).frames_to_decode
        assert estimate_frames_to_decode(container_index, frame_indices, give_up_after=index.num_frames) == exact
        # Counting stops past the limit: the answer is then only "more than the limit".
        assert exact // 2 < estimate_frames_to_decode(container_index, frame_indices, give_up_after=exact // 2)


def test_no_container_index_for_streams_whose_index_lists_keyframes_only(decode_corpus: dict[str, Path]) -> None:
    for name in ["h264.mkv", "vp9.webm", "nonzero_start.ts"]:
        with av.open(str(decode_corpus[name])) as container:
            assert read_container_index(the_video_stream(container)) is None, name


def _index(num_frames: int, keyframes: list[int]) -> StreamIndex:
    return StreamIndex(np.arange(num_frames, dtype=np.int64) * 10, np.array(keyframes, dtype=np.int64), 1)


def test_a_plan_seeks_only_when_the_next_keyframe_is_past_what_is_decoded() -> None:
    index = _index(300, [0, 100, 200])
    plan = plan_seek_decode(index, np.array([5, 50, 150, 160, 250]))
    # 5 and 50 share the first GOP; 150 and 160 the second; 250 and the last frame (299) the third.
    assert plan.runs == [DecodeRun(0, 50), DecodeRun(100, 160), DecodeRun(200, 299)]
    assert plan.frames_to_decode == 51 + 61 + 100
    # A target whose keyframe is the frame right after the run: decoding on costs what seeking does.
    assert plan_seek_decode(index, np.array([99, 100])).runs == [DecodeRun(0, 100), DecodeRun(200, 299)]


def _packet(pts: int | None, dts: int | None = None, keyframe: bool = False, size: int = 100, **flags: bool):
    return SimpleNamespace(
        pts=pts,
        dts=dts,
        is_keyframe=keyframe,
        size=size,
        is_corrupt=flags.get("corrupt", False),
        is_discard=flags.get("discard", False),
    )


@pytest.mark.parametrize(
    ("packet", "last_dts", "keyframe_pts", "reason"),
    [
        (_packet(None), None, [0], "a packet without pts"),
        (_packet(40, size=0), None, [0], "an empty packet"),
        (_packet(40, corrupt=True), None, [0], "flagged corrupt"),
        (_packet(40, discard=True), None, [0], "an edit list"),
        (_packet(40, dts=30), 30, [0], "dts not increasing"),
        (_packet(0), None, [], "does not start at a keyframe"),
        (_packet(90), None, [0, 100], "an open GOP"),
    ],
)
def test_an_untrustworthy_packet_makes_the_video_decode_sequentially(packet, last_dts, keyframe_pts, reason) -> None:
    with pytest.raises(IndexUntrustworthy, match=reason):
        _check_packet(packet, last_dts, keyframe_pts)


def _real_index(path: Path) -> tuple[object, object, StreamIndex]:
    container = av.open(str(path))
    stream = the_video_stream(container)
    return container, stream, index_stream(container, stream)


def test_an_index_counting_more_frames_than_decode_raises_instead_of_returning_a_frame(
    decode_corpus: dict[str, Path],
) -> None:
    container, stream, index = _real_index(decode_corpus["h264.mkv"])
    with container:
        longer = StreamIndex(np.append(index.pts, index.pts[-1] + 1), index.keyframe_positions, index.time_base)
        wanted = np.array([0, longer.num_frames - 1])
        with pytest.raises(
            SeekMismatch,
            match=f"the stream ended after {index.num_frames} frames, the index counts {index.num_frames + 1}",
        ):
            decode_planned_frames(container, stream, longer, plan_seek_decode(longer, wanted), wanted)


def test_a_keyframe_the_stream_does_not_have_still_gives_the_sequential_frame(decode_corpus: dict[str, Path]) -> None:
    """An index claiming a keyframe at frame 50 (the real ones: 0, 96, 192): the seek lands on the real keyframe
    before it (frame 0), which the landing check accepts, and decoding on from there gives the sequential frame."""
    container, stream, index = _real_index(decode_corpus["h264_long_gop_bframes.mp4"])
    with container:
        assert index.keyframe_positions.tolist() == [0, 96, 192]
        claimed = StreamIndex(index.pts, np.array([0, 50, 96, 192]), index.time_base)
        wanted = np.array([60])
        frames = decode_planned_frames(container, stream, claimed, plan_seek_decode(claimed, wanted), wanted)
    # Decoding landed on the real keyframe before 50 and went forward: frame 60 is still the sequential one.
    sequential = read_sampled_frames(decode_corpus["h264_long_gop_bframes.mp4"], SamplingConfig(num_frames=240), 64)
    np.testing.assert_array_equal(to_model_frame(frames[0], 64), sequential.frames[60])


def test_skipping_non_reference_frames_decodes_fewer_frames_and_the_same_pixels(
    decode_corpus: dict[str, Path],
) -> None:
    """x264's B-pyramid leaves frames no other frame is predicted from: a run skips those nobody wants, and every
    wanted frame is still the one a full decode of the run gives (here a frame every 7, from 100 to 184)."""
    path = decode_corpus["h264_long_gop_bframes.mp4"]
    wanted = np.arange(100, 190, 7)
    decoded: dict[str, list[np.ndarray]] = {}
    tallies: dict[str, DecodeTally] = {}
    for name, skipped_codecs in [("skipping", frozenset({"h264"})), ("full", frozenset())]:
        container, stream, index = _real_index(path)
        with container, pytest.MonkeyPatch.context() as patch:
            patch.setattr(seek_decode, "SKIPS_NON_REFERENCE_FRAMES", skipped_codecs)
            tallies[name] = DecodeTally()
            plan = plan_seek_decode(index, wanted)
            decoded[name] = [
                frame
                for _, frame in iterate_planned_frames(container, stream, index, plan, wanted, tally=tallies[name])
            ]
    assert plan.frames_to_decode == tallies["full"].frames_decoded == (184 - 96 + 1) + (239 - 192 + 1)
    # About a third of the frames are non-reference B-frames; the wanted ones and the last still decode.
    assert tallies["skipping"].frames_decoded < 0.8 * tallies["full"].frames_decoded
    assert len(decoded["skipping"]) == len(wanted)
    np.testing.assert_array_equal(np.stack(decoded["skipping"]), np.stack(decoded["full"]))


def test_a_frame_missing_between_skippable_ones_is_still_a_mismatch(decode_corpus: dict[str, Path]) -> None:
    """An index claiming a frame the stream lacks, mid-run: no packet of it was sent to be skipped, so the gap in
    the decoder's output is a mismatch, not a skipped frame."""
    container, stream, index = _real_index(decode_corpus["h264_long_gop_bframes.mp4"])
    with container:
        claimed_pts = np.insert(index.pts, 50, index.pts[49] + 1)  # between frames 49 and 50
        claimed = StreamIndex(claimed_pts, index.keyframe_positions, index.time_base)
        wanted = np.array([80])
        with pytest.raises(SeekMismatch, match="where the index expects frame 50"):
            decode_planned_frames(container, stream, claimed, plan_seek_decode(claimed, wanted), wanted)


def test_a_frameless_packet_in_a_run_is_a_mismatch_not_a_skipped_frame(tmp_path: Path) -> None:
    """A packet that demuxes like a frame and decodes to none, in the middle of the one run of a one-GOP video: sent
    to be skipped, it would yield no frame without an error, and every frame after it would be one index off the
    sequential decode's. Only a packet of non-reference slices is sent to be skipped, so this one decodes in full,
    fails, and the video is decoded sequentially."""
    one_gop = write_with_pyav(
        tmp_path / "one_gop.mp4", "libx264", 60, {"g": "60", "keyint_min": "60", "sc_threshold": "0", "bf": "0"}
    )
    path = with_a_frameless_packet(one_gop, tmp_path / "frameless_packet.mp4", after=20)
    sampling = SamplingConfig(num_frames=10)
    seeked = read_sampled_frames(path, sampling, 32, decoder="seek")
    sequential = read_sampled_frames(path, sampling, 32, decoder="sequential")
    assert seeked.decoder == "sequential" and "seeking fell back: decoding failed" in seeked.decoder_note
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)


def _nal(header: int, payload: bytes = b"\x88\x84") -> bytes:
    """One NAL unit with a 4-byte length prefix (MP4's framing)."""
    return (1 + len(payload)).to_bytes(4, "big") + bytes([header]) + payload


@pytest.mark.parametrize(
    ("packet", "skippable"),
    [
        (_nal(0x01), True),  # a non-IDR slice, nal_ref_idc 0
        (_nal(0x09, b"\xf0") + _nal(0x06) + _nal(0x01) + _nal(0x01), True),  # delimiter, SEI, two such slices
        (_nal(0x41), False),  # a non-IDR slice that is a reference
        (_nal(0x01) + _nal(0x21), False),  # one slice of the picture is a reference
        (_nal(0x65), False),  # an IDR slice
        (_nal(0x09, b"\xf0"), False),  # no slice: no frame in it at all
        (_nal(0x67) + _nal(0x01), False),  # a sequence parameter set
        (_nal(0x01)[:-1], False),  # truncated
        (b"\x00\x00\x00\x00" + _nal(0x01), False),  # an empty NAL unit
    ],
)
def test_only_a_packet_of_non_reference_slices_may_be_skipped(packet: bytes, skippable: bool) -> None:
    assert is_non_reference_access_unit(memoryview(packet), 4) is skippable
