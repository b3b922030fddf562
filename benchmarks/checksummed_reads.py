"""Issue 21's read cost of checksummed shards: a streamed training epoch over the same features stored in
shard_format 1 (contiguous, unchecked: what featcache read before) and shard_format 2 (chunked, fletcher32).

    python -m benchmarks.checksummed_reads [--videos 768] [--frames 16] [--dim 1280] [--repeats 5]

Both caches hold the same random float16 features, in shards of 256 videos (as `embed` writes them); each epoch is
what `train` does when a cache does not fit its memory budget (featcache.training.batches.EpochBatches, shuffled,
batch 32), on a freshly opened cache, the two formats alternating, files in the page cache. A shard_format-1 shard is
also hashed whole the first time a process opens it: that one-off cost is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featcache.cache import CacheWriter, ShardVideo, integrity, open_cache, write_shard
from featcache.training.batches import EpochBatches

VIDEOS_PER_SHARD = 256


def write_cache(path: Path, num_videos: int, num_frames: int, feature_dim: int) -> Path:
    rng = np.random.default_rng(0)
    settings = {
        "extractor": {"name": "benchmark", "feature_dim": feature_dim},
        "sampling": {"num_frames": num_frames, "mode": "uniform", "fps": None},
        "dtype": "float16",
    }
    videos = [
        ShardVideo(
            path=f"class{number % 4}/v{number:05d}.avi",
            label=f"class{number % 4}",
            group=str(number % 25),
            fingerprint="",
            features=rng.normal(size=(num_frames, feature_dim)).astype(np.float16),
            frame_indices=np.arange(num_frames, dtype=np.int32),
            timestamps_ms=np.arange(num_frames, dtype=np.float32) * 100,
            video_fps=10.0,
            video_num_frames=num_frames,
            video_width=32,
            video_height=32,
        )
        for number in range(num_videos)
    ]
    with CacheWriter.open(path, settings, feature_dim) as writer:
        for start in range(0, num_videos, VIDEOS_PER_SHARD):
            batch = videos[start : start + VIDEOS_PER_SHARD]
            writer.adopt_shard(write_shard(writer.shard_folder, batch, "float16", settings))
        writer.commit()
    return path


def epoch_seconds(cache_path: Path) -> float:
    """CPU seconds of this process for one shuffled epoch of batches of 32 read from the file (a fresh reader).

    CPU time, not wall time: the files are in the page cache, and on a machine shared with other jobs the wall
    clock mostly measures them."""
    cache = open_cache(cache_path)
    batches = EpochBatches(cache, cache.index, np.arange(cache.index.num_videos), 32, True, 0)
    started = time.process_time()
    for number in range(len(batches)):
        batches.batch(0, number)
    batches.close()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checksummed_reads", description=__doc__)
    parser.add_argument("--videos", type=int, default=768)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from shard_format1_writer import old_style_shards  # the shard writer featcache shipped before checksums

    with tempfile.TemporaryDirectory(prefix="featcache-checksums-") as folder:
        with old_style_shards():
            unchecked = write_cache(Path(folder) / "format1-shards.h5", options.videos, options.frames, options.dim)
        checked = write_cache(Path(folder) / "format2-shards.h5", options.videos, options.frames, options.dim)
        epoch_seconds(checked)  # both files into the page cache
        first_open = epoch_seconds(unchecked)  # includes hashing each shard whole, once per process
        times: dict[str, list[float]] = {"unchecked": [], "checked": []}
        for _ in range(options.repeats):
            times["unchecked"].append(epoch_seconds(unchecked))
            times["checked"].append(epoch_seconds(checked))
        integrity._VERIFIED_WHOLE.clear()
        megabytes = options.videos * options.frames * options.dim * 2 / 1e6
    before, after = statistics.median(times["unchecked"]), statistics.median(times["checked"])
    print(
        f"{options.videos} videos x {options.frames} frames x {options.dim} float16 ({megabytes:.0f} MB), "
        f"median CPU seconds of {options.repeats} streamed epochs, alternating:"
    )
    print("| shards | epoch (CPU s) | ratio |\n|---|---|---|")
    print(f"| shard_format 1 (contiguous, unchecked) | {before:.3f} | 1.00x |")
    print(f"| shard_format 2 (chunked, fletcher32) | {after:.3f} | {after / before:.2f}x |")
    print(
        f"| shard_format 1, first epoch of a process (hashed whole once) | {first_open:.3f} | "
        f"{first_open / before:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
