"""Decoding in worker processes while the model runs on fixed-size frame batches gathered across videos.

Each decode thread hands one video at a time to a worker process (`decode_workers.py`: a decoder crash
costs that video only) and waits for its frames with the GIL released, so the threads fill a bounded
queue of videos while the main thread embeds: neither waits for the other. Batches always hold exactly
`batch_size` frames (the last one excepted), whatever the videos' lengths, so a compiled model sees one input shape.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from featcache.config import SamplingConfig
from featcache.errors import VideoDecodeError
from featcache.video.decode import SampledFrames
from featcache.video.decode_workers import DecodeWorkerPool
from featcache.video.find import VideoEntry

if TYPE_CHECKING:  # Keras comes with the extractor; the Ray engine's driver decodes nothing and imports neither
    from featcache.extractors.extractor import Extractor


def decode_videos(
    entries: list[VideoEntry], sampling: SamplingConfig, image_size: int, num_workers: int, decoder: str = "auto"
) -> Iterator[tuple[VideoEntry, SampledFrames | VideoDecodeError]]:
    """Decode videos in `num_workers` worker processes, yielding them in order; a few videos per worker in flight.

    decoder: "auto", "seek" or "sequential" (featcache.video.decode); the frames are the same.

    A video whose decoder crashes (the worker process dies) is yielded as a VideoDecodeError saying how.
    """
    if not entries:
        return
    max_in_flight = 4 * num_workers
    with (
        DecodeWorkerPool(min(num_workers, len(entries)), sampling, image_size, decoder) as workers,
        ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="decode") as pool,
    ):
        in_flight: deque[tuple[VideoEntry, Future[SampledFrames | VideoDecodeError]]] = deque()
        remaining = iter(entries)
        try:
            for entry in remaining:
                in_flight.append((entry, pool.submit(workers.decode, entry.path)))
                if len(in_flight) >= max_in_flight:
                    yield _decoded_result(*in_flight.popleft())
            while in_flight:
                yield _decoded_result(*in_flight.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _decoded_result(
    entry: VideoEntry, future: Future[SampledFrames | VideoDecodeError]
) -> tuple[VideoEntry, SampledFrames | VideoDecodeError]:
    return entry, future.result()


@dataclass
class _VideoInFlight:
    entry: VideoEntry
    sampled: SampledFrames
    features: np.ndarray  # float32 (length, feature_dim), filled batch by batch
    num_filled: int = 0


def embed_decoded_videos(
    decoded: Iterator[tuple[VideoEntry, SampledFrames | VideoDecodeError]], extractor: Extractor, batch_size: int
) -> Iterator[tuple[VideoEntry, SampledFrames | None, np.ndarray | VideoDecodeError]]:
    """Run the model on batches of exactly `batch_size` frames taken across videos, in video order.

    Yields (entry, sampled frames, float32 features (length, feature_dim)) per video, or
    (entry, None, error) for a video that could not be decoded.
    """
    waiting_videos: deque[_VideoInFlight] = deque()
    waiting_frames: deque[np.ndarray] = deque()
    num_waiting_frames = 0
    for entry, sampled in decoded:
        if isinstance(sampled, VideoDecodeError):
            yield entry, None, sampled
            continue
        length = len(sampled.frame_indices)
        waiting_videos.append(_VideoInFlight(entry, sampled, np.empty((length, extractor.feature_dim), np.float32)))
        waiting_frames.append(sampled.frames)
        num_waiting_frames += length
        while num_waiting_frames >= batch_size:
            batch = _take_frames(waiting_frames, batch_size)
            num_waiting_frames -= batch_size
            yield from _distribute_features(extractor.embed_frames(batch), waiting_videos)
    if num_waiting_frames:
        batch = _take_frames(waiting_frames, num_waiting_frames)
        yield from _distribute_features(extractor.embed_frames(batch), waiting_videos)


def _take_frames(waiting_frames: deque[np.ndarray], count: int) -> np.ndarray:
    """Pop exactly `count` frames from the front of the queue (splitting a video's frames if needed)."""
    pieces = []
    while count:
        frames = waiting_frames.popleft()
        if len(frames) > count:
            waiting_frames.appendleft(frames[count:])
            frames = frames[:count]
        pieces.append(frames)
        count -= len(frames)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _distribute_features(
    features: np.ndarray, waiting_videos: deque[_VideoInFlight]
) -> Iterator[tuple[VideoEntry, SampledFrames, np.ndarray]]:
    """Hand batch features to the waiting videos in order; yield each video once all its frames are in."""
    offset = 0
    for video in waiting_videos:
        if offset == len(features):
            break
        count = min(len(video.features) - video.num_filled, len(features) - offset)
        video.features[video.num_filled : video.num_filled + count] = features[offset : offset + count]
        video.num_filled += count
        offset += count
    while waiting_videos and waiting_videos[0].num_filled == len(waiting_videos[0].features):
        video = waiting_videos.popleft()
        yield video.entry, video.sampled, video.features
