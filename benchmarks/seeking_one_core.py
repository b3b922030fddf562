"""What decoding one long video costs one core, sequential vs auto: the input of BENCHMARKS.md section 10's cluster
estimate (cores of decoding per GPU), where each decode worker has one core.

The process pins itself to one core first (`os.sched_setaffinity`), so OpenCV's frame threads and seeking's run
threads (`usable_cores()` is then 1) share that core as a decode worker's would. T = 10 uniform at 224 px, video00
of each long set `python -m benchmarks.seeking` wrote into FOLDER, best of 3 per decoder:
`python -m benchmarks.seeking_one_core /tmp/i17/bfull`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.seeking import FULL_SETS, IMAGE_SIZE, SAMPLING, make_set
from featcache.video.decode import read_sampled_frames

ROUNDS = 3
# At 10 frames per video: the per-H100 rate section 10 assumes for MobileNetV2 (5,000 images/s, not measured).
VIDEOS_PER_SECOND_PER_GPU = 500


def one_core_seconds(path: Path, decoder: str) -> tuple[float, str]:
    """The fastest of ROUNDS decodes of `path` with `decoder`, and the path it took."""
    best, taken = float("inf"), ""
    for _ in range(ROUNDS):
        started = time.perf_counter()
        taken = read_sampled_frames(path, SAMPLING, IMAGE_SIZE, decoder=decoder).decoder
        best = min(best, time.perf_counter() - started)
    return best, taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeking_one_core", description=__doc__)
    parser.add_argument("folder", type=Path, help="where benchmarks.seeking wrote (or will write) its videos")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print("| set | sequential s/video | auto s/video | auto took | cores per H100, sequential | cores per H100, auto |")
    print("|---|---|---|---|---|---|")
    for video_set in FULL_SETS:
        if video_set.seconds < 120:
            continue
        path = make_set(args.folder, video_set)[0]
        sequential, _ = one_core_seconds(path, "sequential")
        auto, taken = one_core_seconds(path, "auto")
        print(
            f"| {video_set.name} | {sequential:.3f} | {auto:.3f} | {taken} | "
            f"{sequential * VIDEOS_PER_SECOND_PER_GPU:.0f} | {auto * VIDEOS_PER_SECOND_PER_GPU:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
