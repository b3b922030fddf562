"""`embed --precision int8`: the run's own first sampled frames calibrate the quantized extractor.

A new cache calibrates on the first `calibration_frames` x 2 frames the decoders deliver (every other one held
out for the gate) and records which videos they came from in its settings record (extractor `int8_calibration`).
A later run on that cache decodes the same videos again, so every shard is embedded by the same int8 model
(its frames are checked by hash, and the layers it kept in float are kept again): a cache never mixes two
calibrations.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featcache.config import EmbedConfig
from featcache.embedding.batching import decode_videos
from featcache.errors import ExtractorError, VideoDecodeError
from featcache.video.decode import SampledFrames
from featcache.video.find import VideoEntry

if TYPE_CHECKING:
    from featcache.extractors.extractor import Extractor

CALIBRATION_RECORD = "int8_calibration"
Decoded = Iterator[tuple[VideoEntry, SampledFrames | VideoDecodeError]]


def calibrate_int8(
    extractor: Extractor,
    decoded: Decoded,
    config: EmbedConfig,
    settings: dict[str, Any],
    video_root: Path,
    num_workers: int,
) -> tuple[Decoded, dict[str, Any]]:
    """Quantize `extractor` (on OpenVINO) to int8 in place; returns the decoded stream to embed and the calibration
    record. settings: the cache's settings record (its recorded calibration, if any, is taken again).

    Raises ExtractorError when the gate refuses int8 or the recorded calibration videos changed.
    """
    from featcache.extractors.openvino_int8 import BIAS_CORRECTION, UNRECORDED_BIAS_CORRECTION, quantize_extractor

    recorded = settings["extractor"].get(CALIBRATION_RECORD)
    num_wanted = 2 * config.calibration_frames
    if recorded:
        entries = [VideoEntry(video_root / path, path, "", "") for path in recorded["videos"]]
        again = decode_videos(entries, config.sampling, extractor.image_size, num_workers)
        try:
            frames, paths, _ = _first_frames(again, num_wanted)
        finally:
            again.close()  # ends its decode workers
    else:
        frames, paths, pulled = _first_frames(decoded, num_wanted)
        decoded = itertools.chain(pulled, decoded)
    # A recorded calibration names its layers kept in float (none before featcache recorded them) and its bias
    # correction (the fast one before): the same model.
    float_layers = recorded.get("float_layers", []) if recorded else None
    bias_correction = recorded.get("bias_correction", UNRECORDED_BIAS_CORRECTION) if recorded else BIAS_CORRECTION
    int8_model, calibration = quantize_extractor(
        extractor.openvino_model, frames, paths, config.int8_min_cosine, float_layers, bias_correction
    )
    if recorded and calibration.frames_sha256 != recorded["frames_sha256"]:
        raise ExtractorError(
            f"the videos this int8 cache was calibrated on ({', '.join(recorded['videos'][:3])}, ...) "
            "changed or are gone; re-embed with --overwrite"
        )
    extractor.embed_frames = int8_model.embed_frames
    return decoded, calibration.record()


def _first_frames(
    decoded: Decoded, num_wanted: int
) -> tuple[np.ndarray, list[str], list[tuple[VideoEntry, SampledFrames | VideoDecodeError]]]:
    """(the first `num_wanted` frames, the videos they came from, every item taken from `decoded`)."""
    pulled, pieces, paths, num_frames = [], [], [], 0
    for entry, sampled in decoded:
        pulled.append((entry, sampled))
        if isinstance(sampled, VideoDecodeError) or not len(sampled.frames):
            continue
        pieces.append(sampled.frames[: num_wanted - num_frames])
        paths.append(entry.relative_path)
        num_frames += len(pieces[-1])
        if num_frames >= num_wanted:
            break
    frames = np.concatenate(pieces) if pieces else np.zeros((0, 1, 1, 3), np.uint8)
    return frames, paths, pulled
