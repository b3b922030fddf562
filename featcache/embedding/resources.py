"""Checking up front that a run's settings fit the machine, before a model loads or a video decodes."""

from __future__ import annotations

import os
from pathlib import Path

from featcache.config import EmbedConfig
from featcache.errors import InputError
from featcache.video.run_threads import usable_cores

# Decoded videos queued per decode worker (featcache.embedding.batching.decode_videos keeps 4 per worker in flight).
_VIDEOS_IN_FLIGHT_PER_WORKER = 4
# A video's frames exist twice while they cross from a worker to the main process (pickle and array).
_COPIES_IN_TRANSIT = 2
_GIB = 2**30


def available_memory_bytes() -> int | None:
    """Memory the kernel says can be had without swapping (MemAvailable); None where it does not say."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def decode_workers_for(config: EmbedConfig) -> int:
    """The decode worker processes a run starts: `--workers`, or `default_decode_workers()`."""
    return config.num_decode_workers or default_decode_workers()


def default_decode_workers() -> int:
    """One per core this process may run on (its CPU affinity: a container or `taskset` limited to 2 of a host's
    64 cores starts 2, not 64); `predict` and `neighbors --file` use it as `embed` does without --workers."""
    return usable_cores()


def estimate_embed_memory_bytes(config: EmbedConfig, num_workers: int) -> int:
    """A lower bound of what decoding and batching hold at once: frames in flight plus one float32 model batch.

    Model weights and activations and the full-size decoded frames come on top and are not counted.
    """
    image_size, num_frames = config.extractor.image_size, config.sampling.num_frames
    video_bytes = num_frames * image_size * image_size * 3  # uint8 RGB
    videos_in_flight = _VIDEOS_IN_FLIGHT_PER_WORKER * num_workers + 1
    batch_bytes = config.batch_size * image_size * image_size * 3 * 4  # float32 model input
    return videos_in_flight * video_bytes * _COPIES_IN_TRANSIT + batch_bytes


def check_embed_memory(config: EmbedConfig, num_workers: int) -> None:
    """Raise InputError when the frames in flight alone would not fit in the memory available now."""
    available = available_memory_bytes()
    needed = estimate_embed_memory_bytes(config, num_workers)
    if available is not None and needed > available:
        raise InputError(
            f"--frames {config.sampling.num_frames} at --image-size {config.extractor.image_size} with --batch-size "
            f"{config.batch_size} and {num_workers} decode workers needs at least {needed / _GIB:.1f} GiB "
            f"for frames in flight, but {available / _GIB:.1f} GiB of memory is available; "
            "lower --frames, --image-size, --batch-size or --workers"
        )
