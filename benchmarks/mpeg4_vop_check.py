"""What reading an MPEG-4 stream's small packets for not-coded VOPs (`featcache/video/mpeg4_vops.py`) adds to
indexing a video: `python -m benchmarks.mpeg4_vop_check FOLDER`.

Two videos: a 2-minute 320x240 XVID whose frames never change (written into FOLDER with cv2.VideoWriter, as
UCF101's were: almost every P-frame is a few dozen bytes, so all are read, the worst case) and video00 of the
10-minute XVID set `python -m benchmarks.seeking` writes into FOLDER (a moving scene: no packet that small).
The static one is also remuxed into MP4, whose index comes from demuxing every packet (an AVI's from idx1 and
the chunks read from the file). Each is indexed as a seek indexes it (`index_the_stream`, opened with the probe
options) three ways, alternating, best of ROUNDS: as shipped; with the check of the packets replaced by nothing
(what the header reading costs); and with the stream not taken for MPEG-4 Part 2, so no packet or keyframe head
is read or copied either (what the whole check costs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.seeking import FULL_SETS, make_set
from featcache.video import stream_index
from featcache.video.decode import PROBE_OPTIONS
from featcache.video.mpeg4_vops import largest_packet_checked

ROUNDS = 5
STATIC_SECONDS, STATIC_FPS = 120, 25.0


def static_xvid(folder: Path) -> Path:
    path = folder / "static-120s-320x240.avi"
    if not path.exists():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), STATIC_FPS, (320, 240))
        frame = np.full((240, 320, 3), 90, np.uint8)
        for _ in range(int(STATIC_SECONDS * STATIC_FPS)):
            writer.write(frame)
        writer.release()
    return path


def index_seconds(path: Path) -> float:
    started = time.perf_counter()
    with av.open(str(path), options=PROBE_OPTIONS) as container:
        stream = stream_index.the_video_stream(container)
        stream_index.index_the_stream(container, stream, stream_index.read_container_index(stream), path)
    return time.perf_counter() - started


def static_mp4(static_avi: Path) -> Path:
    path = static_avi.with_suffix(".mp4")
    if not path.exists():
        with av.open(str(static_avi)) as source, av.open(str(path), "w") as container:
            stream = container.add_stream_from_template(source.streams.video[0])
            for packet in source.demux(source.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = stream
                    container.mux(packet)
    return path


def index_three_ways(path: Path) -> tuple[float, float, float]:
    """Best seconds to index `path` as shipped, with the check replaced by nothing, and with nothing read."""
    check, is_mpeg4 = stream_index._check_small_mpeg4_packets, stream_index._is_mpeg4_part_2
    best = [float("inf")] * 3
    try:
        for _ in range(ROUNDS):
            for way in range(3):
                stream_index._check_small_mpeg4_packets = check if way == 0 else (lambda *arguments: None)
                stream_index._is_mpeg4_part_2 = is_mpeg4 if way < 2 else (lambda stream: False)
                best[way] = min(best[way], index_seconds(path))
    finally:
        stream_index._check_small_mpeg4_packets, stream_index._is_mpeg4_part_2 = check, is_mpeg4
    return best[0], best[1], best[2]


def small_packets(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        largest = largest_packet_checked(stream.codec_context.width, stream.codec_context.height)
        sizes = [packet.size for packet in container.demux(stream) if packet.size]
    return len(sizes), sum(size <= largest for size in sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mpeg4_vop_check", description=__doc__)
    parser.add_argument("folder", type=Path, help="where benchmarks.seeking wrote (or will write) its videos")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    long_xvid = next(video_set for video_set in FULL_SETS if (video_set.codec, video_set.seconds) == ("xvid", 600.0))
    print(
        "| video | packets | small packets read | index ms, as shipped | check replaced by nothing | nothing read "
        "| whole check per small packet µs |"
    )
    print("|---|---|---|---|---|---|---|")
    static = static_xvid(args.folder)
    for path in [static, static_mp4(static), make_set(args.folder, long_xvid)[0]]:
        shipped, unchecked, unread = index_three_ways(path)
        packets, small = small_packets(path)
        per_packet = f"{(shipped - unread) / small * 1e6:.1f}" if small else "—"
        name = f"{path.parent.name}/{path.name}"
        print(
            f"| {name} | {packets} | {small} | {shipped * 1e3:.1f} | {unchecked * 1e3:.1f} | {unread * 1e3:.1f} "
            f"| {per_packet} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
