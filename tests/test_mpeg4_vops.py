"""An MPEG-4 packet that decodes to no frame (a not-coded VOP, a one-byte placeholder) is never counted a frame.

OpenCV's sequential read skips such a packet, so every frame after it is one position earlier than an index of
the packets says; where it lies between two seek runs, nothing decoded would show it. The stream index reads the
small packets and sends such a video to the sequential decoder with the reason. FFmpeg's own decoder is the
judge that each crafted packet really decodes to nothing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video.decode import PROBE_OPTIONS, read_sampled_frames
from featcache.video.mpeg4_vops import LARGEST_PACKET_CHECKED, time_increment_bits, why_no_frame
from featcache.video.stream_index import (
    IndexUntrustworthy,
    index_from_container,
    index_stream,
    read_container_index,
    the_video_stream,
)
from tests.decode_corpus import write_with_opencv

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
        bits = time_increment_bits(bytes(container.streams.video[0].codec_context.extradata))
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
        small = [bytes(packet) for packet in container.demux(video=0) if 0 < packet.size <= LARGEST_PACKET_CHECKED]
    assert len(small) > 20, "the static video has small coded VOPs to check"
    assert [why_no_frame(packet, bits) for packet in small] == [None] * len(small)
    assert decoded_by_ffmpeg(video) == 60
    seeked = read_sampled_frames(video, SAMPLING, 32, decoder="seek")
    assert seeked.decoder == "seek", seeked.decoder_note


def test_a_vol_header_is_read_for_its_time_increment_width() -> None:
    # FFmpeg's VOL for 12 fps (time increment resolution 12: 4 bits), as cv2.VideoWriter's XVID writes it.
    vol = bytes.fromhex("0000012000c48d8800650104041463")
    assert time_increment_bits(vol) == 4
    assert time_increment_bits(b"\x00\x00\x01\xb6\x52\xc0") is None  # a VOP, no VOL
    broken_marker = bytearray(vol)
    broken_marker[7] &= 0b11110111  # the marker bit before the time increment resolution
    assert time_increment_bits(bytes(broken_marker)) is None
    assert why_no_frame(b"\x00\x00\x01\xb6\x52\xc0\x65\xcf\xdf", 4) is None  # a coded P-VOP of that stream
    assert why_no_frame(b"\x00\x00\x01\xb6\x52", 4) == "a 5-byte VOP cut short in its header"
