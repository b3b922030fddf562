"""An MPEG-4 packet that decodes to no frame (a not-coded VOP, a one-byte placeholder) is never counted a frame.

OpenCV's sequential read skips such a packet, so every frame after it is one position earlier than an index of
the packets says; where it lies between two seek runs, nothing decoded would show it. The stream index reads the
small packets and sends such a video to the sequential decoder with the reason. FFmpeg's own decoder is the
judge that each crafted packet really decodes to nothing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video.decode import PROBE_OPTIONS, read_sampled_frames
from featcache.video.mpeg4_vops import largest_packet_checked, macroblocks, time_increment_widths, why_no_frame
from featcache.video.stream_index import (
    IndexUntrustworthy,
    _check_small_mpeg4_packets,
    index_from_container,
    index_stream,
    read_container_index,
    the_video_stream,
)
from tests.decode_corpus import pattern_frame, write_with_opencv

NUM_FRAMES = 120  # keyframes every 12 (FFmpeg's mpeg4 default): 10 sampled frames leave GOPs no run decodes
REPLACED_PTS = 50  # between the runs of frames 39 and 52
SAMPLING = SamplingConfig(num_frames=10)


def not_coded_vop(increment_bits: int) -> bytes:
    """A P-VOP header whose vop_coded bit is 0 (ISO/IEC 14496-2, 6.2.5): coding type 01, modulo_time_base 0,
    marker, a time increment of 0, marker, vop_coded 0, then the stuffing that ends a VOP (a 0, then 1s)."""
    fields = "01" + "0" + "1" + "0" * increment_bits + "1" + "0"
    padding = 8 - len(fields) % 8
    bits = fields + "0" + "1" * (padding - 1)
    return b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def with_packet_replaced(source: Path, path: Path, pts: int, data: bytes) -> Path:
    """`source`'s packets remuxed into `path` (its container from the suffix), the one at `pts` holding `data`."""
    with av.open(str(source)) as source_container, av.open(str(path), "w") as container:
        source_stream = source_container.streams.video[0]
        stream = container.add_stream_from_template(source_stream)
        for packet in source_container.demux(source_stream):
            if packet.dts is None:
                continue  # the end-of-stream packet
            if packet.pts == pts:
                replacement = av.Packet(data)
                replacement.pts, replacement.dts, replacement.time_base = packet.pts, packet.dts, packet.time_base
                packet = replacement
            packet.stream = stream
            container.mux(packet)
    return path


def decoded_by_ffmpeg(path: Path) -> int:
    """Frames FFmpeg decodes, packet by packet, going on past a packet it refuses (as OpenCV's read does)."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                count += len(stream.codec_context.decode(packet))
            except av.error.InvalidDataError:
                continue  # the one-byte placeholder of a stream not from XviD or DivX
    return count


def pts_of_packet(path: Path, data: bytes) -> int:
    """The pts of the one packet holding `data`, in its stream's time base (MP4's is not the frame rate's)."""
    with av.open(str(path)) as container:
        (pts,) = [packet.pts for packet in container.demux(video=0) if packet.dts is not None and bytes(packet) == data]
    return pts


def read_by_opencv(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def stream_increment_bits(path: Path) -> int:
    with av.open(str(path)) as container:
        (bits,) = time_increment_widths(bytes(container.streams.video[0].codec_context.extradata))
    assert bits is not None
    return bits


@pytest.fixture(scope="module")
def xvid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_with_opencv(tmp_path_factory.mktemp("vops") / "xvid.avi", "XVID", NUM_FRAMES, fps=12.0)


def _index_from_idx1(path: Path):
    with av.open(str(path), options=PROBE_OPTIONS) as container:
        stream = the_video_stream(container)
        return index_from_container(container, stream, read_container_index(stream), path)


def _index_by_demuxing(path: Path):
    with av.open(str(path)) as container:
        return index_stream(container, the_video_stream(container))


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
@pytest.mark.parametrize("placeholder", ["not-coded VOP", "one byte"])
def test_a_packet_that_decodes_to_no_frame_between_runs_sends_the_video_to_sequential_decoding(
    xvid: Path, tmp_path: Path, suffix: str, placeholder: str
) -> None:
    data = not_coded_vop(stream_increment_bits(xvid)) if placeholder == "not-coded VOP" else b"\x7f"
    video = with_packet_replaced(xvid, tmp_path / f"dropped{suffix}", REPLACED_PTS, data)
    # The judge: FFmpeg decodes one frame fewer than the packets. OpenCV reads on past a not-coded VOP; a one-byte
    # packet, which FFmpeg skips only in a stream from XviD or DivX, is refused here, and OpenCV stops there.
    assert decoded_by_ffmpeg(video) == NUM_FRAMES - 1
    opencv_frames = NUM_FRAMES - 1 if placeholder == "not-coded VOP" else REPLACED_PTS
    assert read_by_opencv(video) == opencv_frames
    reason = "a not-coded VOP" if placeholder == "not-coded VOP" else "a 1-byte packet without a VOP"
    # AVI's index is read from idx1, MP4's by demuxing: both read the small packets.
    read_index = _index_from_idx1 if suffix == ".avi" else _index_by_demuxing
    with pytest.raises(IndexUntrustworthy, match=f"{reason} .* at pts {pts_of_packet(video, data)}$"):
        read_index(video)
    seeked = read_sampled_frames(video, SAMPLING, 32, decoder="seek")
    sequential = read_sampled_frames(video, SAMPLING, 32, decoder="sequential")
    assert seeked.decoder == "sequential"
    assert f"{reason}" in seeked.decoder_note
    assert seeked.video_num_frames == sequential.video_num_frames == opencv_frames
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)


def _static_frames(number: int, width: int, height: int) -> np.ndarray:
    """Mostly unchanging frames, so most coded P-VOPs are a few bytes, as small as a not-coded one."""
    frame = np.full((height, width, 3), 80, np.uint8)
    frame[: height // 4, : width // 4] = 80 + (number // 10) % 100
    return frame


def _write_static_mpeg4(path: Path, rate: Fraction, sample_aspect: Fraction | None, width: int = 32) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, 32, "yuv420p"
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        for number in range(60):
            frame = av.VideoFrame.from_ndarray(_static_frames(number, width, 32), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    ("rate", "sample_aspect"),
    [
        (Fraction(12), None),
        (Fraction(25), None),
        (Fraction(30000, 1001), None),  # a 15-bit time increment
        (Fraction(60), Fraction(16, 11)),  # a standard pixel aspect ratio, coded in aspect_ratio_info
        (Fraction(1), Fraction(7, 5)),  # a 1-bit increment; an extended pixel aspect ratio, two more bytes
    ],
)
def test_small_coded_vops_are_frames(tmp_path: Path, rate: Fraction, sample_aspect: Fraction | None) -> None:
    """No false alarm on coded VOPs as small as a not-coded one, whatever the VOL header holds: the video seeks."""
    video = _write_static_mpeg4(tmp_path / "static.avi", rate, sample_aspect)
    bits = stream_increment_bits(video)
    with av.open(str(video)) as container:
        largest = largest_packet_checked(width=32, height=32)
        small = [bytes(packet) for packet in container.demux(video=0) if 0 < packet.size <= largest]
    assert len(small) > 20, "the static video has small coded VOPs to check"
    assert [why_no_frame(packet, bits, macroblocks(32, 32)) for packet in small] == [None] * len(small)
    assert decoded_by_ffmpeg(video) == 60
    seeked = read_sampled_frames(video, SAMPLING, 32, decoder="seek")
    assert seeked.decoder == "seek", seeked.decoder_note


def vol_header(resolution: int, object_type: int = 1, extended_par: bool = False, vbv: bool = False) -> bytes:
    """A rectangular VOL header written field by field from the standard (6.2.3), up to fixed_vop_rate."""
    fields = "0" + f"{object_type:08b}" + "1" + "0001" + "001"  # object layer identifier: verid 1, priority 1
    fields += "1111" + "00010000" + "00001011" if extended_par else "0001"  # 16:11 spelled out, or square pixels
    fields += "1" + "01" + "1" + ("1" + "0" * 79 if vbv else "0")  # control parameters: 4:2:0, low delay
    fields += "00" + "1" + f"{resolution:016b}" + "1" + "0"  # rectangular, marker, resolution, marker, fixed rate
    fields += "0" * (-len(fields) % 8)
    return b"\x00\x00\x01\x20" + int(fields, 2).to_bytes(len(fields) // 8, "big")


def test_a_vol_header_is_read_for_its_time_increment_width() -> None:
    # FFmpeg's VOL for 12 fps, as cv2.VideoWriter's XVID writes it: the test's writer spells the same bits.
    ffmpeg_vol = bytes.fromhex("0000012000c48d8800650104041463")
    assert vol_header(12)[:9] == ffmpeg_vol[:9]
    assert time_increment_widths(ffmpeg_vol) == [4]
    assert time_increment_widths(vol_header(30000, extended_par=True, vbv=True)) == [15]
    assert time_increment_widths(vol_header(1)) == [1]
    assert time_increment_widths(vol_header(12) + vol_header(25)) == [4, 5]
    assert time_increment_widths(b"\x00\x00\x01\xb6\x52\xc0") == []  # a VOP, no VOL
    assert time_increment_widths(vol_header(12, object_type=14)) == [None]  # studio syntax: not read
    broken_marker = bytearray(ffmpeg_vol)
    broken_marker[7] &= 0b11110111  # the marker bit before the time increment resolution
    assert time_increment_widths(bytes(broken_marker)) == [None]
    assert why_no_frame(b"\x00\x00\x01\xb6\x52\xc0\x65\xcf\xdf", 4, macroblocks(32, 32)) is None  # a coded P-VOP
    assert why_no_frame(b"\x00\x00\x01\xb6\x52", 4) == "a 5-byte VOP cut short in its header"


def _stream_of(extradata: bytes, width: int = 32, height: int = 32) -> SimpleNamespace:
    return SimpleNamespace(codec_context=SimpleNamespace(extradata=extradata, width=width, height=height))


def test_vol_headers_that_disagree_on_the_time_increment_leave_the_small_packets_unread() -> None:
    """A spliced file's keyframe may carry a VOL of another frame rate than the extradata's: FFmpeg reads the
    packets after it at the new width, so no one width reads them all. Cannot tell: the stream is not seeked."""
    coded_vop = (3, b"\x00\x00\x01\xb6\x52\xc0\x65\xcf\xdf")
    _check_small_mpeg4_packets(_stream_of(vol_header(12)), [vol_header(12)], [coded_vop])
    with pytest.raises(IndexUntrustworthy, match=r"one time-increment width \(4 bits, 5 bits\)"):
        _check_small_mpeg4_packets(_stream_of(vol_header(12)), [vol_header(25)], [coded_vop])
    with pytest.raises(IndexUntrustworthy, match=r"one time-increment width \(none\)"):
        _check_small_mpeg4_packets(_stream_of(b""), [b"\x00\x00\x01\xb6"], [coded_vop])


def test_a_vol_header_in_the_keyframes_alone_reads_the_small_packets() -> None:
    """A stream without extradata (an AVI whose encoder wrote no global header) has its VOL in each keyframe."""
    coded_vop = b"\x00\x00\x01\xb6\x52\xc0\x65\xcf\xdf"
    _check_small_mpeg4_packets(_stream_of(b""), [vol_header(12), vol_header(12)], [(3, coded_vop)])
    with pytest.raises(IndexUntrustworthy, match=r"^a not-coded VOP .* at pts 4$"):
        _check_small_mpeg4_packets(_stream_of(b""), [vol_header(12)], [(3, coded_vop), (4, not_coded_vop(4))])


def _vop(coding_type: str, coded: str, picture_bytes: int) -> bytes:
    """A VOP of a stream with a 4-bit time increment: `coding_type` (2 bits), vop_coded, then the picture."""
    fields = coding_type + "0" + "1" + "0000" + "1" + coded
    fields += "0" * (-len(fields) % 8)
    return b"\x00\x00\x01\xb6" + int(fields, 2).to_bytes(len(fields) // 8, "big") + b"\x55" * picture_bytes


def test_a_small_s_vop_cannot_be_told_whole() -> None:
    """An S-VOP's warping points come before its macroblocks, in a length the VOL fields this reader stops before
    set: whether a small one is truncated cannot be told, so it is not counted a frame. A P-VOP of the same size is
    (its header is counted); a not-coded S-VOP is a not-coded VOP."""
    assert why_no_frame(_vop("01", "1", 30), 4, macroblocks(320, 240)) is None
    assert why_no_frame(_vop("11", "1", 30), 4, macroblocks(320, 240)) == (
        "a 36-byte S-VOP (global motion compensation), whose header length this check cannot read"
    )
    assert why_no_frame(_vop("11", "0", 0), 4) == "a not-coded VOP (a dropped frame that decodes to nothing)"


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_a_truncated_coded_vop_between_runs_sends_the_video_to_sequential_decoding(tmp_path: Path, suffix: str) -> None:
    """FFmpeg refuses a coded P-VOP with fewer bits than half its macroblocks; the index must not count it (AVI's
    read from idx1, MP4's by demuxing)."""
    source = tmp_path / "moving.avi"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("mpeg4", rate=12, options={"g": "12"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for number in range(NUM_FRAMES):
            frame = av.VideoFrame.from_ndarray(pattern_frame(number, 320, 240), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(source)) as container:
        (whole,) = [bytes(p) for p in container.demux(video=0) if p.pts == REPLACED_PTS]
    assert len(whole) > 200, "a coded frame of a moving pattern"
    truncated = whole[:20]  # under 150 bits of picture for 300 macroblocks
    video = with_packet_replaced(source, tmp_path / f"truncated{suffix}", REPLACED_PTS, truncated)
    assert decoded_by_ffmpeg(video) == NUM_FRAMES - 1  # the judge; OpenCV stops at the packet FFmpeg refuses
    read_index = _index_from_idx1 if suffix == ".avi" else _index_by_demuxing
    with pytest.raises(
        IndexUntrustworthy,
        match=f"a 20-byte VOP too short for its 300 macroblocks .* at pts {pts_of_packet(video, truncated)}$",
    ):
        read_index(video)
    seeked = read_sampled_frames(video, SAMPLING, 32, decoder="seek")
    sequential = read_sampled_frames(video, SAMPLING, 32, decoder="sequential")
    assert seeked.decoder == "sequential"
    assert seeked.video_num_frames == sequential.video_num_frames == read_by_opencv(video)
    np.testing.assert_array_equal(seeked.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(seeked.frames, sequential.frames)
