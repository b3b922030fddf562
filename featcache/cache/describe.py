"""A summary of a cache for `featcache info`: videos per class, dims, extractor, runtimes and precision, sampling,
failures, size."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache.format import shard_folder_for
from featcache.cache.reader import open_cache, read_attributes
from featcache.cache.settings import record_precision
from featcache.cache.shards import (
    DEFAULT_SHARD_RUNTIME,
    read_video_decoders,
    read_video_runtimes,
    unlisted_shard_names,
)

MAX_DECODER_REASONS = 8  # reasons for sequential decoding that `info` lists, the most frequent first


def describe_cache(path: Path) -> dict[str, Any]:
    """A JSON-able description of the cache at `path` (raises CacheFormatError if it is not one)."""
    path = Path(path)
    cache = open_cache(path)
    index = cache.index
    attributes = read_attributes(path)
    counts = collections.Counter(index.class_names[label] for label in index.labels)
    live_shard_bytes = sum(info.size for info in cache.state.shards.values()) if cache.state else 0
    feature_bytes = int(index.lengths.sum()) * index.feature_dim * np.dtype(index.dtype).itemsize
    return {
        "path": str(path),
        "num_videos": index.num_videos,
        "num_classes": len(index.class_names),
        "videos_per_class": {name: counts.get(name, 0) for name in index.class_names},
        "num_frames": index.num_frames,
        "variable_length": int(index.sampling.get("num_frames") or 0) == 0,
        "feature_dim": index.feature_dim,
        "dtype": index.dtype,
        "mean_length": float(index.lengths.mean()) if index.num_videos else 0.0,
        "num_padded_videos": int((index.lengths < index.num_frames).sum()),
        "num_grouped_videos": sum(1 for group in index.groups if group),
        "extractor": index.extractor,
        "runtimes": count_runtimes(_video_runtimes(path, cache)),
        "precision": record_precision(index.extractor),
        "sampling": index.sampling,
        "failures": [{"path": video_path, "reason": reason} for video_path, reason in index.failures],
        "size_bytes": path.stat().st_size + live_shard_bytes,
        "feature_bytes": feature_bytes,
        "num_shards": len(cache.state.shards) if cache.state else 0,
        "num_dead_rows": cache.state.num_dead_rows if cache.state else 0,
        "duplicates": find_duplicate_videos(index.paths, index.fingerprints),
        "decoders": count_decoders(
            read_video_decoders(shard_folder_for(path), cache.state.videos.values()).values() if cache.state else []
        ),
        "unfinished_run": _has_unlisted_shards(path, cache),
        **{name: attributes.get(name) for name in ("featcache_version", "format_version", "created", "compression")},
    }


def count_decoders(decoders: Iterable[str]) -> dict[str, int]:
    """How many videos each decoder took, by what the cache records per video ("seek", "sequential",
    "sequential: <why>"), most frequent first; "unrecorded" for videos embedded before featcache recorded it."""
    return _most_frequent_first(collections.Counter(decoder or "unrecorded" for decoder in decoders))


def count_runtimes(runtimes: Iterable[str]) -> dict[str, int]:
    """How many videos each runtime embedded ("keras", "openvino": their shards' `runtime`), most frequent first."""
    return _most_frequent_first(collections.Counter(runtimes))


def _most_frequent_first(counts: collections.Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _video_runtimes(path: Path, cache: Any) -> list[str]:
    if cache.state is None:  # format 1 predates the OpenVINO runtime: Keras embedded every video
        return [DEFAULT_SHARD_RUNTIME] * cache.index.num_videos
    return list(read_video_runtimes(shard_folder_for(path), cache.state.videos.values()).values())


def format_runtimes_and_precision(description: dict[str, Any]) -> str:
    """'embedded by: 3 openvino, 2 keras; precision f32', with the int8 calibration when the cache records one."""
    runtimes = ", ".join(f"{count} {runtime}" for runtime, count in description["runtimes"].items()) or "no video"
    calibration = description["extractor"].get("int8_calibration")
    precision = description["precision"] + (
        f" (calibrated on {calibration['num_calibration_frames']} frames of {len(calibration['videos'])} "
        f"video{'' if len(calibration['videos']) == 1 else 's'}, "
        f"mean cosine {calibration['held_out_mean_cosine']:.4f} to f32 on {calibration['num_held_out_frames']} "
        "held out)"
        if calibration
        else ""
    )
    return f"embedded by: {runtimes}; precision {precision}"


def format_decoder_counts(counts: dict[str, int]) -> list[str]:
    """'decoded: 5 seek, 2 sequential' and one indented line per reason a video was decoded sequentially."""
    if not counts:
        return []
    kinds: collections.Counter[str] = collections.Counter()
    for decoder, count in counts.items():
        kinds[decoder.partition(": ")[0]] += count
    # Reasons name frame counts and pts: grouped with the numbers left out, so a dataset gives a few lines.
    reasons: collections.Counter[str] = collections.Counter()
    for decoder, count in counts.items():
        if ": " in decoder:
            reasons[re.sub(r"\d+", "N", decoder)] += count
    lines = ["decoded: " + ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())]
    lines += [f"  {count} {reason}" for reason, count in reasons.most_common(MAX_DECODER_REASONS)]
    if len(reasons) > MAX_DECODER_REASONS:
        lines.append(f"  ... {len(reasons) - MAX_DECODER_REASONS} more reasons (`featcache info --json` lists them)")
    return lines


def find_duplicate_videos(paths: list[str], fingerprints: list[str]) -> list[list[str]]:
    """Groups of paths with the same contents (fingerprint), e.g. one video copied into two classes."""
    by_fingerprint: dict[str, list[str]] = collections.defaultdict(list)
    for video_path, fingerprint in zip(paths, fingerprints):
        if fingerprint:
            by_fingerprint[fingerprint].append(video_path)
    return sorted(sorted(group) for group in by_fingerprint.values() if len(group) > 1)


def _has_unlisted_shards(path: Path, cache: Any) -> bool:
    return cache.state is not None and bool(unlisted_shard_names(shard_folder_for(path), cache.state.shards))


def format_cache_description(description: dict[str, Any]) -> str:
    """The human-readable text of `describe_cache`."""
    extractor = description["extractor"]
    sampling = description["sampling"]
    lines = [
        f"{description['path']}: {description['num_videos']} videos, {description['num_classes']} classes, "
        f"{description['num_frames']} frames x {description['feature_dim']} dims, {description['dtype']}, "
        f"{description['size_bytes'] / 1e6:.1f} MB on disk",
        f"extractor: {extractor.get('name')} (weights {extractor.get('weights')}, {extractor.get('image_size')} px"
        + (f", handle {extractor['handle']}" if extractor.get("handle") else "")
        + ")",
        format_runtimes_and_precision(description),
        f"sampling: {sampling.get('mode')}, "
        + ("every sampled frame" if description["variable_length"] else f"{sampling.get('num_frames')} frames")
        + (f" at {sampling['fps']} fps" if sampling.get("fps") else "")
        + f"; mean length {description['mean_length']:.1f}, {description['num_padded_videos']} videos padded",
        f"created {description['created']} by featcache {description['featcache_version']}, "
        f"format {description['format_version']}"
        + (
            f", {description['num_shards']} shard(s), {description['num_dead_rows']} dead row(s)"
            if description["format_version"] == 2
            else ""
        ),
        "videos per class:",
        *(f"  {name}: {count}" for name, count in description["videos_per_class"].items()),
    ]
    lines += format_decoder_counts(description.get("decoders", {}))
    if description["failures"]:
        lines.append(f"failures ({len(description['failures'])}):")
        lines.extend(f"  {failure['path']}: {failure['reason']}" for failure in description["failures"])
    for group in description["duplicates"]:
        lines.append(f"same video under {len(group)} paths (identical contents): {', '.join(group)}")
    if description["format_version"] == 1:
        lines.append(f"a format-1 cache: `featcache upgrade {description['path']}` converts it (needed to add videos)")
    if description["unfinished_run"]:
        lines.append("an unfinished embed run is pending: re-run the same `featcache embed` command to add its videos")
    return "\n".join(lines)
