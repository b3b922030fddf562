"""Checking that an AVI's idx1 lists exactly the chunks its movi holds, before an index is read from it.

OpenCV's sequential decode reads the movi list in order; a seek reads the chunk idx1 points at, at the timestamp
idx1 gives it. The two agree only if idx1 lists every chunk movi holds, where it is: a damaged chunk header (the
demuxer resyncs past it, so the sequential decode counts one frame fewer) or a chunk idx1 does not list would shift
every frame after it by one position, between two runs where no decoded frame can show it. So before
`stream_index.index_from_container` trusts idx1, every listed chunk's header is read where idx1 says (its stream
number, its kind for the video stream, its size), and the listed chunks of all streams must tile each movi list,
leaving only what a reader skips between them: `LIST rec ` headers, `JUNK` and OpenDML's `ix##` index chunks.
Reading a few bytes per chunk; any disagreement sends the video to the demux pass, which reads movi in order.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

CHUNK_HEADER_BYTES = 8  # fourcc, little-endian uint32 size; the data follows, padded to an even size
_LIST_HEADER_BYTES = 12  # "LIST", size, list type: its chunks follow
_VIDEO_CHUNK_KINDS = (b"dc", b"db")  # compressed and uncompressed video frames


def idx1_disagreement(
    path: Path, entries_by_stream: dict[int, tuple[np.ndarray, np.ndarray]], video: int
) -> str | None:
    """Why the file's movi does not hold exactly the chunks its index lists, or None when it does.

    entries_by_stream: stream number -> (positions, sizes), int64: each listed chunk's header position in the
    file and its data size (FFmpeg's index entries of that stream); video: the video stream's number.
    """
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        movi_lists = _movi_lists(data)
        if isinstance(movi_lists, str):
            return movi_lists
        streams = np.concatenate(
            [np.full(len(positions), number) for number, (positions, _) in entries_by_stream.items()]
        )
        positions = np.concatenate([positions for positions, _ in entries_by_stream.values()])
        sizes = np.concatenate([sizes for _, sizes in entries_by_stream.values()])
        order = np.argsort(positions, kind="stable")
        streams, positions, sizes = streams[order], positions[order], sizes[order]
        ends = positions + CHUNK_HEADER_BYTES + sizes + (sizes & 1)
        if len(positions) == 0 or positions[0] < 0 or ends[-1] > len(data):
            return "the index lists chunks outside the file"
        headers = np.frombuffer(data, dtype=np.uint8)[positions[:, None] + np.arange(CHUNK_HEADER_BYTES)]
        return _header_disagreement(headers, streams, sizes, positions, video) or _tiling_disagreement(
            data, movi_lists, positions, ends
        )


def _movi_lists(data: mmap.mmap) -> list[tuple[int, int]] | str:
    """(first chunk, end) of each movi list: the first RIFF's, and those of OpenDML's RIFF AVIX extensions."""
    if data[:4] != b"RIFF" or data[8:12] != b"AVI ":
        return "not a RIFF AVI file"
    movi_lists, offset = [], 0
    while offset + _LIST_HEADER_BYTES <= len(data):
        riff_end = min(offset + CHUNK_HEADER_BYTES + _size_at(data, offset), len(data))
        chunk = offset + _LIST_HEADER_BYTES
        while chunk + _LIST_HEADER_BYTES <= riff_end:
            size = _size_at(data, chunk)
            if data[chunk : chunk + 4] == b"LIST" and data[chunk + 8 : chunk + 12] == b"movi":
                movi_lists.append((chunk + _LIST_HEADER_BYTES, min(chunk + CHUNK_HEADER_BYTES + size, len(data))))
            chunk += CHUNK_HEADER_BYTES + size + (size & 1)
        offset = riff_end + (riff_end & 1)
        if data[offset : offset + 4] != b"RIFF":
            break
    return movi_lists or "no movi list"


def _header_disagreement(
    headers: np.ndarray, streams: np.ndarray, sizes: np.ndarray, positions: np.ndarray, video: int
) -> str | None:
    """Each listed chunk's header must name its stream ("NN" in ASCII digits), for the video stream a frame chunk,
    and carry the listed size."""
    digits = headers[:, :2].astype(np.int64) - ord("0")
    named_stream = digits[:, 0] * 10 + digits[:, 1]
    wrong = (digits < 0).any(axis=1) | (digits > 9).any(axis=1) | (named_stream != streams)
    kinds = headers[:, 2].astype(np.int64) * 256 + headers[:, 3]
    video_kinds = [kind[0] * 256 + kind[1] for kind in _VIDEO_CHUNK_KINDS]
    wrong |= (streams == video) & ~np.isin(kinds, video_kinds)
    wrong |= headers[:, 4:8].copy().view("<u4")[:, 0].astype(np.int64) != sizes
    if not wrong.any():
        return None
    first = int(np.argmax(wrong))
    found = bytes(headers[first, :4]).decode("latin-1")
    return (
        f"the chunk the index lists at byte {int(positions[first])} is not there ('{found}' of another size or stream)"
    )


def _tiling_disagreement(
    data: mmap.mmap, movi_lists: list[tuple[int, int]], positions: np.ndarray, ends: np.ndarray
) -> str | None:
    """The listed chunks, in file order, must fill each movi list but for the chunks a reader skips."""
    gap_ranges: list[tuple[int, int]] = []
    num_in_lists = 0
    for movi_start, movi_end in movi_lists:
        first = int(np.searchsorted(positions, movi_start))
        last = int(np.searchsorted(positions, movi_end)) - 1
        if last < first:
            gap_ranges.append((movi_start, movi_end))  # no listed chunk: it must hold none either
            continue
        if ends[last] > movi_end:
            return f"the chunk at byte {int(positions[last])} runs past the end of its movi list"
        num_in_lists += last - first + 1
        # Between the list's edges and its first and last chunks, and wherever a chunk does not start where the
        # one before it ended.
        gap_ranges += [(movi_start, int(positions[first])), (int(ends[last]), movi_end)]
        inner = np.flatnonzero(positions[first + 1 : last + 1] != ends[first:last]) + first + 1
        gap_ranges += [(int(ends[i - 1]), int(positions[i])) for i in inner.tolist()]
    if num_in_lists != len(positions):
        return f"the index lists {len(positions) - num_in_lists} chunks outside the movi lists"
    for start, end in gap_ranges:
        reason = _unlisted_chunk(data, start, end)
        if reason:
            return reason
    return None


def _unlisted_chunk(data: mmap.mmap, start: int, end: int) -> str | None:
    """What lies between two listed chunks (or a movi list's edge) must be only what a reader skips."""
    offset = start
    while offset < end:
        fourcc = data[offset : offset + 4]
        if fourcc == b"LIST" and data[offset + 8 : offset + 12] == b"rec ":
            offset += _LIST_HEADER_BYTES
        elif fourcc == b"JUNK" or fourcc[:2] == b"ix":
            size = _size_at(data, offset)
            offset += CHUNK_HEADER_BYTES + size + (size & 1)
        else:
            return f"a chunk the index does not list at byte {offset} ('{fourcc.decode('latin-1')}')"
    return None if offset == end else f"chunks overlap at byte {end}"


def _size_at(data: mmap.mmap, offset: int) -> int:
    return int.from_bytes(data[offset + 4 : offset + 8], "little")


def chunk_data(path: Path, positions: np.ndarray, sizes: np.ndarray) -> list[bytes]:
    """The data of the chunks whose headers are at `positions` (of `sizes` bytes each), read from the file."""
    starts = (positions + CHUNK_HEADER_BYTES).tolist()
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return [data[start : start + size] for start, size in zip(starts, sizes.tolist(), strict=True)]
