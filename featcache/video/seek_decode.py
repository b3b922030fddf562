"""Decoding only the frames sampled, by seeking to the keyframe before each (PyAV), with the sequential path's pixels.

Given a `StreamIndex`, the frames wanted are grouped into runs: a run starts at a keyframe and decodes forward to
its last frame; the next wanted frame joins the run when its keyframe is not past the run's end (decoding on is then
no dearer than seeking), else a new run seeks. Every decoded frame is checked against the index: after a seek the
first frame must be a keyframe (by the index and by the decoder) at or before the run's start, then the frames must
come in the index's order, one per position; the run holding the last frame decodes to the end of the stream, which
proves the index's count. Any disagreement raises `SeekMismatch`, and the caller decodes the video sequentially: a
wrong frame is never returned.

Within a run, the H.264 decoder is told to skip the non-reference frames nobody wants (`skip_frame` "NONREF",
set packet by packet: a wanted frame's packet and the last frame's always decode in full). No other frame is
predicted from a non-reference frame, so skipping one changes no pixel of any frame decoded; x264's B-pyramid
makes about a third of the frames non-reference, which a long-GOP run then does not decode. A skipped frame is
simply absent from the decoder's output, so only a packet read to hold non-reference slices and nothing that is
not part of a picture is sent to be skipped (`is_non_reference_access_unit`), and the order check allows a gap
only over such packets; a packet holding no picture at all decodes in full and fails, as before. A frame skipped
this way goes unchecked, as a frame between two runs does (where such a pictureless packet would go unseen too:
OpenCV's sequential decode stops at one, so its video would count fewer frames than the index).

Only wanted frames are converted, through FFmpeg's swscale with the settings OpenCV's capture uses, to BGR24 as
OpenCV does or straight to RGB24 (the same conversion with the channels in the other order, which saves the
model's colour swap; tests/test_seek_decode.py proves the pixels equal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.container
import av.video.stream
import numpy as np
from av.video.reformatter import VideoReformatter

from featcache.video.stream_index import ContainerIndex, StreamIndex

# FFmpeg's decoder threading for the seek path: "SLICE" (PyAV's default), not "AUTO" (frame and slice threads,
# what OpenCV's capture uses). Frame threads delay the first frame after every seek by a frame per thread and
# start a thread per core in every decoder, where the decode workers or the run threads (`run_threads.py`)
# already fill the cores. Measured on 2 cores (one video of each `benchmarks.seeking` set but the 2-minute
# ones, each mode's best of 5): slice threads were 5-17% faster on all four; on a 10-minute H.264 video
# (2026-12-04) 185 ms against 207-217 ms for frame threads.
DECODER_THREADS = "SLICE"
# The codecs whose decoder skips exactly the frames that are not references when asked to (H.264 by the NAL
# header's nal_ref_idc), proven pixel for pixel by tests/test_seek_decode.py's corpus. Others decode every frame
# of a run: the corpus has no other codec with non-reference frames to prove it on, and
# `is_non_reference_access_unit` reads H.264's NAL units only (another codec needs its own reader).
SKIPS_NON_REFERENCE_FRAMES = frozenset({"h264"})
# H.264 NAL unit types a packet sent to be skipped may hold: a non-IDR slice, SEI, access unit delimiter, filler.
# Anything else (an IDR slice, parameter sets, data partitions, extensions) decodes in full.
_NON_IDR_SLICE = 1
_SKIPPABLE_NAL_TYPES = frozenset({_NON_IDR_SLICE, 6, 9, 12})


class SeekMismatch(Exception):
    """Decoding disagreed with the index (or failed); the message is the reason, recorded with the video."""


@dataclass(frozen=True)
class DecodeRun:
    """Decode from the keyframe at `start` to the frame at `end` (positions in the index, inclusive)."""

    start: int
    end: int

    @property
    def num_frames(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class SeekPlan:
    """The runs that decode `positions` (int64, strictly increasing), and what they cost."""

    positions: np.ndarray
    runs: list[DecodeRun]

    @property
    def frames_to_decode(self) -> int:
        """The frames the runs span (at most: the decoder may skip non-reference frames among them)."""
        return sum(run.num_frames for run in self.runs)


@dataclass
class DecodeTally:
    """What decoding a plan cost: the frames that came out of the decoder (skipped ones do not)."""

    frames_decoded: int = 0


def plan_seek_decode(index: StreamIndex, frame_indices: np.ndarray) -> SeekPlan:
    """The runs for the sampled `frame_indices` plus the last frame (the run that proves the frame count)."""
    positions = np.union1d(np.asarray(frame_indices, dtype=np.int64), [index.num_frames - 1])
    runs: list[DecodeRun] = []
    for position in positions.tolist():
        keyframe = index.keyframe_at_or_before(position)
        if runs and keyframe <= runs[-1].end + 1:
            runs[-1] = DecodeRun(runs[-1].start, position)
        else:
            runs.append(DecodeRun(keyframe, position))
    return SeekPlan(positions, runs)


def estimate_frames_to_decode(container_index: ContainerIndex, frame_indices: np.ndarray, give_up_after: int) -> int:
    """What `plan_seek_decode` would count for `frame_indices`, by the container's index (an estimate: see
    `ContainerIndex`), without demuxing; the count stops once it passes `give_up_after`.

    From each target the entries are read backwards to its keyframe or to the previous run's end, whichever
    comes first, so no entry is read twice and every entry read lies in a run: the cost is at most the count.
    """
    num_frames = container_index.num_frames
    targets = np.union1d(np.asarray(frame_indices, dtype=np.int64), [num_frames - 1]).tolist()
    decoded_until = -1  # the last position of the runs so far
    count = 0
    for target in targets:
        start = target
        while start > decoded_until + 1 and not container_index.is_keyframe(start):
            start -= 1
        # start is the target's keyframe (a new run), or the position after the previous run (the target's
        # keyframe is not past that run's end, so the run goes on to the target): as in plan_seek_decode.
        count += target - start + 1
        decoded_until = target
        if count > give_up_after:
            break
    return count


def decode_planned_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: StreamIndex,
    plan: SeekPlan,
    wanted: np.ndarray,
    pixel_format: str = "bgr24",
) -> list[np.ndarray]:
    """The frames at `wanted` (positions, strictly increasing, all in the plan), uint8, full size, in order.

    pixel_format: "bgr24" (OpenCV's channel order) or "rgb24".
    Raises SeekMismatch when a decoded frame is not the one the index says, or PyAV fails.
    """
    return [frame for _, frame in iterate_planned_frames(container, stream, index, plan, wanted, pixel_format)]


def iterate_planned_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: StreamIndex,
    plan: SeekPlan,
    wanted: np.ndarray,
    pixel_format: str = "bgr24",
    tally: DecodeTally | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(position, uint8 full-size frame) for each of `wanted` (strictly increasing, all in the plan), in order,
    each as soon as it is decoded, so a caller can pass them on without holding them all. One run after the
    other on this thread (`run_threads.py` decodes runs on several).

    pixel_format: "bgr24" (OpenCV's channel order) or "rgb24".
    tally: counts what the decoding cost (None: not counted).

    Raises SeekMismatch when a decoded frame is not the one the index says, or PyAV fails; the frame count is
    proven only when the last run ends, after the last frame was yielded.
    """
    targets = SeekTargets.of(index, wanted, pixel_format)
    tally = tally if tally is not None else DecodeTally()
    decoder = RunDecoder.on(container, stream)
    for run_number in range(len(plan.runs)):
        yield from decode_run(decoder, index, plan, run_number, targets, tally)


@dataclass(frozen=True)
class SeekTargets:
    """What every run of a plan decodes for: the positions to yield, those to decode in full, the pixel format."""

    wanted: frozenset[int]
    must_decode: frozenset[int]  # wanted, and the last frame: its run proves the frame count
    pixel_format: str  # "bgr24" (OpenCV's channel order) or "rgb24"

    @classmethod
    def of(cls, index: StreamIndex, wanted: np.ndarray, pixel_format: str) -> SeekTargets:
        assert pixel_format in ("bgr24", "rgb24"), pixel_format
        wanted_set = frozenset(np.asarray(wanted).tolist())
        return cls(wanted_set, wanted_set | {index.num_frames - 1}, pixel_format)


@dataclass(frozen=True)
class RunDecoder:
    """An open container and what decoding runs from it needs: its stream, the H.264 NAL length size (None: no
    packet is skipped) and one reformatter, which keeps one swscale context for the video."""

    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    length_size: int | None
    reformatter: VideoReformatter

    @classmethod
    def on(cls, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> RunDecoder:
        # Settable only before the first decode opens the codec (indexing only demuxed).
        stream.thread_type = DECODER_THREADS
        length_size = avcc_length_size(stream) if stream.codec_context.name in SKIPS_NON_REFERENCE_FRAMES else None
        return cls(container, stream, length_size, VideoReformatter())


def decode_run(
    decoder: RunDecoder, index: StreamIndex, plan: SeekPlan, run_number: int, targets: SeekTargets, tally: DecodeTally
) -> Iterator[tuple[int, np.ndarray]]:
    """(position, uint8 full-size frame) for each wanted frame of the plan's run `run_number`, as decoded; the
    last run decodes on to the end of the stream. Raises SeekMismatch (a PyAV error becomes one)."""
    run = plan.runs[run_number]
    is_last_run = run_number == len(plan.runs) - 1
    try:
        run_frames = _frames_of_run(
            decoder.container, decoder.stream, index, run, targets.must_decode, decoder.length_size, tally
        )
        try:
            for position, frame in run_frames:
                if position in targets.wanted:
                    # Bicubic is OpenCV's flag (at an unchanged size it does not change a pixel); one thread because
                    # swscale's default starts threads for every frame, which cost 10x the conversion itself on
                    # 320x240 (and the worker processes or run threads already fill the cores).
                    converted = decoder.reformatter.reformat(
                        frame, format=targets.pixel_format, interpolation="BICUBIC", threads=1
                    )
                    yield position, converted.to_ndarray()
                if position == run.end and not is_last_run:
                    break
        finally:
            run_frames.close()
    except av.error.FFmpegError as err:
        raise SeekMismatch(f"decoding failed ({err})") from err


def _frames_of_run(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: StreamIndex,
    run: DecodeRun,
    must_decode: frozenset[int],
    length_size: int | None,
    tally: DecodeTally,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(position, frame) from where decoding lands for `run` on, each checked against the index, to the end.

    must_decode: the positions whose packets decode in full; another packet is sent to be skipped when it holds
    only non-reference slices (`is_non_reference_access_unit`, with the stream's NAL `length_size`; None: no
    packet is). Every run seeks, the first one too: indexing left the container at the end.
    """
    container.seek(int(index.pts[run.start]), stream=stream, backward=True, any_frame=False)
    codec_context = stream.codec_context
    codec_context.flush_buffers()  # no frame of the previous run may come out after the seek
    skippable: set[int] = set()  # positions whose packet was sent to be skipped if not a reference
    skipping = False
    codec_context.skip_frame = "DEFAULT"
    expected: int | None = None
    for packet in container.demux(stream):
        # A packet the index does not know (or the end-of-stream flush) decodes in full; its frame is then checked.
        # A packet that yields no frame when skipped is one that holds non-reference slices, checked here: a
        # packet with no frame in it at all (parameter sets only, say) would yield none silently too.
        packet_position = index.position_of(packet.pts) if length_size is not None else None
        skip = (
            packet_position is not None
            and packet_position not in must_decode
            and is_non_reference_access_unit(memoryview(packet), length_size)
        )
        if skip != skipping:
            codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        if skip:
            skippable.add(packet_position)
        for frame in packet.decode():
            position = index.position_of(frame.pts)
            if expected is None:
                _check_landing(index, run, position, frame.pts, frame.key_frame)
            else:
                _check_in_order(index, expected, position, frame.pts, skippable)
            tally.frames_decoded += 1
            yield position, frame
            expected = position + 1
    if expected is None or not skippable.issuperset(range(expected, index.num_frames)):
        raise SeekMismatch(f"the stream ended after {expected or 0} frames, the index counts {index.num_frames}")


def avcc_length_size(stream: av.video.stream.VideoStream) -> int | None:
    """The byte size of the NAL length prefixes in an H.264 stream's packets (MP4 and MKV's avcC extradata),
    None for another framing (Annex B start codes, MPEG-TS), whose packets are then never skipped."""
    extradata = stream.codec_context.extradata
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    return (extradata[4] & 0b11) + 1


def is_non_reference_access_unit(data: memoryview, length_size: int) -> bool:
    """Whether an H.264 packet (NAL units, each after a `length_size`-byte length) holds at least one slice, every
    slice with nal_ref_idc 0, and no NAL unit but those of _SKIPPABLE_NAL_TYPES: a frame no other is predicted
    from, which the decoder may skip. False for anything it cannot read that way."""
    offset, has_slice = 0, False
    while offset < len(data):
        if offset + length_size >= len(data):
            return False
        nal_length = int.from_bytes(data[offset : offset + length_size], "big")
        header = data[offset + length_size]
        offset += length_size + nal_length
        nal_type, nal_ref_idc = header & 0x1F, header >> 5 & 0b11
        if nal_length == 0 or offset > len(data) or nal_type not in _SKIPPABLE_NAL_TYPES:
            return False
        if nal_type == _NON_IDR_SLICE:
            if nal_ref_idc != 0:
                return False
            has_slice = True
    return has_slice


def _check_in_order(index: StreamIndex, expected: int, position: int | None, pts: int | None, skippable: set[int]):
    """A frame must be the next in the index, or come after frames that were sent to be skipped."""
    if position is not None and (
        position == expected or (position > expected and skippable.issuperset(range(expected, position)))
    ):
        return
    raise SeekMismatch(
        f"decoded a frame at pts {pts} where the index expects frame {expected} "
        f"(pts {int(index.pts[expected]) if expected < index.num_frames else 'none: past the end'})"
    )


def _check_landing(
    index: StreamIndex, run: DecodeRun, position: int | None, pts: int | None, decoded_as_keyframe: bool
) -> None:
    """The first frame after a seek must be a keyframe at or before the run's start, by the index and by the
    decoder: a frame decoded from a keyframe's packet but shown before it (an open GOP's leading frame, which an
    index read from the container cannot see; the demux pass rejects open GOPs) is not one."""
    if position is None:
        raise SeekMismatch(f"the first frame decoded after a seek has pts {pts}, not in the index")
    if not decoded_as_keyframe:
        raise SeekMismatch(f"the first frame decoded after a seek (pts {pts}) is not a keyframe by its decoder")
    is_keyframe = position in index.keyframe_positions
    if position > run.start or not is_keyframe:
        raise SeekMismatch(
            f"decoding for frame {run.start} started at frame {position}"
            f"{'' if is_keyframe else ' (not a keyframe)'}, not at a keyframe at or before it"
        )
