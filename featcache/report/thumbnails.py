"""Thumbnails of the frames a cache recorded, decoded from the source videos through the decode workers.

A video that crashes or fails the decoder costs its own strip (its reason is shown), a source file that is gone
is marked missing; neither stops the page.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featcache.config import SamplingConfig
from featcache.errors import VideoDecodeError
from featcache.report.images import frame_to_data_uri
from featcache.video.decode_workers import DecodeWorkerPool
from featcache.video.frame_lookup import FrameRequest

DEFAULT_THUMBNAIL_SIZE = 64  # pixels, square, as the extractor saw the frame (squeezed to a square)

# What a strip says when it has no pictures.
STRIP_OK, STRIP_MISSING, STRIP_FAILED, STRIP_NOT_LOCATED = "ok", "missing", "failed", "not located"


@dataclass(frozen=True)
class Thumbnail:
    """One frame of a strip: its index in the video, its time, and the picture (None when it did not decode)."""

    frame_index: int
    timestamp_ms: float
    image_uri: str | None


@dataclass(frozen=True)
class ThumbnailStrip:
    """The frames one video's entry shows. status: STRIP_OK, STRIP_MISSING (no source file), STRIP_FAILED (the
    decoder could not read it; `reason` says why) or STRIP_NOT_LOCATED (no video folder given)."""

    path: str
    status: str
    reason: str = ""
    thumbnails: list[Thumbnail] = field(default_factory=list)


@dataclass(frozen=True)
class StripRequest:
    """The frames to show for one video: path relative to the video folder, frame indices int (T,), times ms (T,)."""

    path: str
    frame_indices: np.ndarray
    timestamps_ms: np.ndarray


def decode_thumbnail_strips(
    requests: list[StripRequest],
    video_root: Path | None,
    image_size: int = DEFAULT_THUMBNAIL_SIZE,
    num_workers: int = 2,
) -> list[ThumbnailStrip]:
    """One ThumbnailStrip per request, in order; the source of `path` is video_root / path.

    video_root: the folder (or the folder of the CSV list) the cache was embedded from; None: every strip is
    STRIP_NOT_LOCATED. Decoding runs in `num_workers` decode worker processes.
    """
    if video_root is None:
        reason = "the video folder was not given (pass --videos ROOT / video_root to show the frames)"
        return [ThumbnailStrip(request.path, STRIP_NOT_LOCATED, reason) for request in requests]
    video_root = Path(video_root)
    if video_root.is_file():  # a CSV list: its paths are relative to its folder
        video_root = video_root.parent
    to_decode = [request for request in requests if (video_root / request.path).is_file()]
    strips: dict[int, ThumbnailStrip] = {}
    for position, request in enumerate(requests):
        source = video_root / request.path
        if not source.is_file():
            strips[position] = ThumbnailStrip(request.path, STRIP_MISSING, f"{source}: source video not found")
    if to_decode:
        positions = [position for position in range(len(requests)) if position not in strips]
        with DecodeWorkerPool(min(num_workers, len(to_decode)), SamplingConfig(), image_size) as pool:

            def decode(request: StripRequest) -> ThumbnailStrip:
                frame_request = FrameRequest(
                    video_root / request.path, tuple(int(index) for index in request.frame_indices), image_size
                )
                return _strip_from(request, pool.decode_frames_at(frame_request))

            with ThreadPoolExecutor(max_workers=min(num_workers, len(to_decode))) as threads:
                for position, strip in zip(positions, threads.map(decode, to_decode)):
                    strips[position] = strip
    return [strips[position] for position in range(len(requests))]


def _strip_from(request: StripRequest, outcome: object) -> ThumbnailStrip:
    if isinstance(outcome, VideoDecodeError):
        return ThumbnailStrip(request.path, STRIP_FAILED, str(outcome))
    found = {int(index): frame for index, frame in zip(outcome.frame_indices, outcome.frames)}
    thumbnails = [
        Thumbnail(
            int(index),
            float(timestamp),
            frame_to_data_uri(found[int(index)]) if int(index) in found else None,
        )
        for index, timestamp in zip(request.frame_indices, request.timestamps_ms)
    ]
    return ThumbnailStrip(request.path, STRIP_OK, "", thumbnails)
