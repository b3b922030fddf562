"""What reading an MPEG-4 stream's small packets for not-coded VOPs (`featcache/video/mpeg4_vops.py`) adds to
indexing a video: `python -m benchmarks.mpeg4_vop_check FOLDER`.

Two videos: a 2-minute 320x240 XVID whose frames never change (written into FOLDER with cv2.VideoWriter, as
UCF101's were: almost every P-frame is a few dozen bytes, so all are read, the worst case) and video00 of the
10-minute XVID set `python -m benchmarks.seeking` writes into FOLDER (a moving scene: no packet that small).
Each is indexed as a seek indexes it (`index_the_stream`, opened with the probe options), with the check and
with it replaced by nothing, alternating, best of ROUNDS.
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


def with_and_without_the_check(path: Path) -> tuple[float, float]:
    """Best seconds to index `path` with the check, and with it replaced by nothing."""
    check = stream_index._check_small_mpeg4_packets
    best_with, best_without = float("inf"), float("inf")
    try:
        for _ in range(ROUNDS):
            stream_index._check_small_mpeg4_packets = check
            best_with = min(best_with, index_seconds(path))
            stream_index._check_small_mpeg4_packets = lambda *arguments: None
            best_without = min(best_without, index_seconds(path))
    finally:
        stream_index._check_small_mpeg4_packets = check
    return best_with, best_without


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
    print("| video | packets | small packets read | index ms, with the check | without | per small packet µs |")
    print("|---|---|---|---|---|---|")
    for path in [static_xvid(args.folder), make_set(args.folder, long_xvid)[0]]:
        with_check, without = with_and_without_the_check(path)
        packets, small = small_packets(path)
        per_packet = f"{(with_check - without) / small * 1e6:.1f}" if small else "—"
        name = f"{path.parent.name}/{path.name}"
        print(f"| {name} | {packets} | {small} | {with_check * 1e3:.1f} | {without * 1e3:.1f} | {per_packet} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
