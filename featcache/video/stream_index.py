"""Indexing a video stream by demuxing it, without decoding: every frame's pts and which frames are keyframes.

The index is what makes exact seeking possible (`seek_decode.py`): frame k of the sequential decode is the frame
with the k-th smallest pts, and a frame decodes exactly when decoding starts at a keyframe at or before it, as
long as every GOP is closed (no frame after a keyframe in decode order shows before it). Anything that would
make "one packet = one decoded frame, at its pts" untrue makes the index untrustworthy, and the video is decoded
sequentially instead (`IndexUntrustworthy` carries the reason). Costs one read of the file; no frame is decoded.
Where the container's own index already holds every frame's pts (AVI's idx1, for a stream that does not reorder
frames) and lists exactly the chunks the file holds (`avi_layout.py`), the index is read from it instead, with
the same checks (`index_from_container`): 14-21 ms instead of 65-71 ms for the 15,000 frames of a 10-minute video
(on the 2-core AMD EPYC), where the demux pass was most of such a video's seek. Both read an MPEG-4 Part 2
stream's small packets for a not-coded VOP (`mpeg4_vops.py`), which demuxes like a frame and decodes to none.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.index
import av.video.stream
import numpy as np

from featcache.video.avi_layout import chunk_data, idx1_disagreement
from featcache.video.mpeg4_vops import largest_packet_checked, macroblocks, time_increment_widths, why_no_frame


class IndexUntrustworthy(Exception):
    """This stream cannot be seeked exactly; the message is the reason, recorded with the video."""


@dataclass(frozen=True)
class StreamIndex:
    """One video stream's frames, in presentation order.

    pts: int64, shape (num_frames,), strictly increasing, in units of `time_base`.
    keyframe_positions: int64, shape (num_keyframes,), strictly increasing positions into `pts` (the first is 0).
    """

    pts: np.ndarray
    keyframe_positions: np.ndarray
    time_base: Fraction

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    def keyframe_at_or_before(self, position: int) -> int:
        """The position of the last keyframe at or before frame `position`: where decoding it must start."""
        return int(self.keyframe_positions[np.searchsorted(self.keyframe_positions, position, side="right") - 1])

    def position_of(self, pts: int | None) -> int | None:
        """The position of the frame shown at `pts`, None when no frame of the index has it."""
        if pts is None:
            return None
        position = int(np.searchsorted(self.pts, pts))
        return position if position < len(self.pts) and int(self.pts[position]) == pts else None


@dataclass(frozen=True)
class ContainerIndex:
    """What the container's own index (MP4's sample table, AVI's idx1) says of a stream, read without demuxing.

    One entry per packet, in decode order: a keyframe's position there is its position in presentation order
    when every GOP before it is closed, which the container does not prove (MP4 entries carry dts, not pts).
    So this is good for an estimate, choosing the decoder, and never for finding a frame: that is `StreamIndex`,
    which `index_from_container` reads from it only where its entries are the frames' pts (AVI, no reordering).
    """

    entries: av.index.IndexEntries

    @property
    def num_frames(self) -> int:
        return len(self.entries)

    def is_keyframe(self, position: int) -> bool:
        return bool(self.entries[position].is_keyframe)


# The containers whose index gives each frame's pts: AVI's idx1 lists the chunks in the order stored, each at
# the count of frames before it (the pts the demuxer gives its packet). MP4's sample table gives dts (its pts need
# the composition offsets, which PyAV does not expose) and Matroska's cues list keyframes only.
PTS_INDEX_FORMATS = frozenset({"avi"})


def read_container_index(stream: av.video.stream.VideoStream) -> ContainerIndex | None:
    """The stream's container index when it lists every frame, from a keyframe on; else None (MKV and WebM cues
    list keyframes only, MPEG-TS has none, a damaged file's header may count other frames than its index)."""
    entries = stream.index_entries
    if len(entries) == 0 or len(entries) != stream.frames or not entries[0].is_keyframe:
        return None
    return ContainerIndex(entries)


def index_the_stream(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    container_index: ContainerIndex | None,
    path: Path,
) -> StreamIndex:
    """The stream's index: from the container's own index where that holds the pts (`index_from_container`),
    else by demuxing (`index_stream`). Raises IndexUntrustworthy as they do."""
    if container_index is not None:
        index = index_from_container(container, stream, container_index, path)
        if index is not None:
            return index
    return index_stream(container, stream)


def index_from_container(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    container_index: ContainerIndex,
    path: Path,
) -> StreamIndex | None:
    """The index `index_stream` would build, read from the container's own index where that holds every
    frame's pts: an AVI stream whose decoder does not reorder frames (stored order is presentation order, so
    the n-th entry is the n-th frame shown), whose idx1 lists exactly the chunks the file's movi holds
    (`avi_layout.py`: else the frames a sequential read finds could be others than those listed). None for any
    other stream: it is demuxed.

    Raises IndexUntrustworthy for what the demux pass rejects and the index shows: an empty chunk (FFmpeg leaves
    those out of its index, so such a file's index usually counts fewer frames than its header and is demuxed), a
    discarded one, timestamps not increasing; and, reading an MPEG-4 stream's small chunks, a packet that decodes
    to no frame. The other packets are read by the runs that decode them, which check every frame's pts against
    this index (`seek_decode.py`), as they do after a demux pass.
    """
    if container.format.name not in PTS_INDEX_FORMATS or stream.codec_context.has_b_frames:
        return None
    entries = container_index.entries[:]  # one list: bulk reads are ~4x faster than entry by entry
    pts = np.fromiter((entry.timestamp for entry in entries), np.int64, len(entries))
    discarded = np.fromiter((entry.is_discard for entry in entries), bool, len(entries))
    keyframes = np.fromiter((entry.is_keyframe for entry in entries), bool, len(entries))
    positions, sizes = _positions_and_sizes(entries)
    _check_entries(pts, sizes, discarded)
    chunks_by_stream = {
        other.index: _positions_and_sizes(other.index_entries[:])
        for other in container.streams
        if other.index != stream.index
    }
    chunks_by_stream[stream.index] = (positions, sizes)
    if idx1_disagreement(path, chunks_by_stream, stream.index) is not None:
        return None
    if _is_mpeg4_part_2(stream):
        small = np.flatnonzero(sizes <= _largest_packet_checked(stream))
        if len(small):
            heads = np.minimum(sizes[keyframes], _KEYFRAME_BYTES_FOR_VOL)
            chunks = chunk_data(
                path, np.concatenate([positions[keyframes], positions[small]]), np.concatenate([heads, sizes[small]])
            )
            keyframe_heads, small_chunks = chunks[: len(heads)], chunks[len(heads) :]
            _check_small_mpeg4_packets(
                stream, keyframe_heads, list(zip(pts[small].tolist(), small_chunks, strict=True))
            )
    return StreamIndex(pts, np.flatnonzero(keyframes).astype(np.int64), Fraction(stream.time_base))


def _positions_and_sizes(entries: list[av.index.IndexEntry]) -> tuple[np.ndarray, np.ndarray]:
    positions = np.fromiter((entry.pos for entry in entries), np.int64, len(entries))
    return positions, np.fromiter((entry.size for entry in entries), np.int64, len(entries))


def _check_entries(pts: np.ndarray, sizes: np.ndarray, discarded: np.ndarray) -> None:
    """`_check_packet`'s checks that a container index can answer, over all its entries at once."""
    if np.any(sizes == 0):
        empty_pts = int(pts[np.argmax(sizes == 0)])
        raise IndexUntrustworthy(f"an empty packet at pts {empty_pts} (a dropped frame that decodes to nothing)")
    if np.any(discarded):
        raise IndexUntrustworthy(f"a packet flagged discard at pts {int(pts[np.argmax(discarded)])} (an edit list)")
    if np.any(np.diff(pts) <= 0):
        first = int(np.argmax(np.diff(pts) <= 0))
        raise IndexUntrustworthy(f"dts not increasing ({int(pts[first])} then {int(pts[first + 1])})")


def the_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The file's only video stream (OpenCV takes the first; with several, which one it takes is its business)."""
    streams = container.streams.video
    if len(streams) != 1:
        raise IndexUntrustworthy(f"{len(streams)} video streams (seeking handles files with exactly one)")
    return streams[0]


def index_stream(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> StreamIndex:
    """Demux `stream` from the start to the end (no decoding) and index its frames.

    The container is left at its end; a caller that decodes next seeks first. Raises IndexUntrustworthy for
    a packet without pts, an empty, corrupt or discarded packet (dropped frames, damage, edit lists), an MPEG-4
    packet that decodes to no frame (`mpeg4_vops.py`), duplicate pts, a stream that does not start at a keyframe,
    an open GOP, decreasing dts, or a demuxer error.
    """
    pts_in_decode_order: list[int] = []
    keyframe_pts: list[int] = []
    last_dts: int | None = None
    reads_small_packets = _is_mpeg4_part_2(stream)
    largest_small_packet = _largest_packet_checked(stream)
    small_packets: list[tuple[int, bytes]] = []
    keyframe_heads: list[bytes] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None:
                continue  # PyAV's end-of-stream packet, which flushes the decoder
            _check_packet(packet, last_dts, keyframe_pts)
            last_dts = packet.dts if packet.dts is not None else last_dts
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
                if reads_small_packets:
                    keyframe_heads.append(bytes(memoryview(packet)[:_KEYFRAME_BYTES_FOR_VOL]))
            if reads_small_packets and packet.size <= largest_small_packet:
                small_packets.append((packet.pts, bytes(packet)))
            pts_in_decode_order.append(packet.pts)
    except av.error.FFmpegError as err:
        raise IndexUntrustworthy(f"demuxing failed ({err})") from err
    if not pts_in_decode_order:
        raise IndexUntrustworthy("no video packet")
    _check_small_mpeg4_packets(stream, keyframe_heads, small_packets)
    pts = np.array(sorted(pts_in_decode_order), dtype=np.int64)
    if np.any(np.diff(pts) == 0):
        raise IndexUntrustworthy("two packets share a pts")
    keyframe_positions = np.searchsorted(pts, np.array(sorted(keyframe_pts), dtype=np.int64))
    return StreamIndex(pts, keyframe_positions.astype(np.int64), Fraction(stream.time_base))


# A keyframe's VOL header (where the extradata has none, or a spliced file another) comes in its first bytes.
_KEYFRAME_BYTES_FOR_VOL = 512


def _is_mpeg4_part_2(stream: av.video.stream.VideoStream) -> bool:
    """XVID, DivX 4+, FMP4, mp4v: the streams whose packets may be not-coded VOPs (`mpeg4_vops.py`)."""
    return stream.codec_context.name == "mpeg4"


def _largest_packet_checked(stream: av.video.stream.VideoStream) -> int:
    return largest_packet_checked(stream.codec_context.width, stream.codec_context.height)


def _check_small_mpeg4_packets(
    stream: av.video.stream.VideoStream, keyframe_heads: list[bytes], small_packets: list[tuple[int, bytes]]
) -> None:
    """Raise IndexUntrustworthy when one of an MPEG-4 stream's small packets, (pts, data), may decode to no frame:
    OpenCV's sequential read would count other frames from there on than the index. Their VOP headers are read
    with the time-increment width of the stream's VOL headers (extradata, keyframes, the packets themselves),
    which must agree."""
    if not small_packets:
        return
    extradata = stream.codec_context.extradata
    vol_sources = [bytes(extradata or b""), *keyframe_heads, *(data for _, data in small_packets)]
    widths = {width for data in vol_sources for width in time_increment_widths(data)}
    if len(widths) != 1 or None in widths:
        found = "none" if not widths else ", ".join(sorted("unreadable" if w is None else f"{w} bits" for w in widths))
        raise IndexUntrustworthy(
            f"MPEG-4 VOL headers that do not give one time-increment width ({found}), "
            "so the stream's small packets cannot be read"
        )
    (increment_bits,) = widths
    num_macroblocks = macroblocks(stream.codec_context.width, stream.codec_context.height)
    for pts, data in small_packets:
        reason = why_no_frame(data, increment_bits, num_macroblocks)
        if reason is not None:
            raise IndexUntrustworthy(f"{reason} at pts {pts}")


def _check_packet(packet: av.Packet, last_dts: int | None, keyframe_pts: list[int]) -> None:
    if packet.pts is None:
        raise IndexUntrustworthy("a packet without pts")
    if packet.size == 0:
        raise IndexUntrustworthy(f"an empty packet at pts {packet.pts} (a dropped frame that decodes to nothing)")
    if packet.is_corrupt:
        raise IndexUntrustworthy(f"a packet flagged corrupt at pts {packet.pts}")
    if packet.is_discard:
        raise IndexUntrustworthy(f"a packet flagged discard at pts {packet.pts} (an edit list)")
    if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
        raise IndexUntrustworthy(f"dts not increasing ({last_dts} then {packet.dts})")
    if not keyframe_pts and not packet.is_keyframe:
        raise IndexUntrustworthy("the stream does not start at a keyframe")
    if keyframe_pts and packet.pts < keyframe_pts[-1]:
        # Decoded after the keyframe but shown before it: it may reference the previous GOP, so decoding from
        # this keyframe would give it wrong (or not at all), unlike a decode from the start.
        raise IndexUntrustworthy(f"an open GOP (pts {packet.pts} follows keyframe pts {keyframe_pts[-1]})")
