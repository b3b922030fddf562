"""A summary of a cache for `featcache info`: videos per class, dims, extractor, sampling, failures, size."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any


from featcache.cache import open_cache_file, read_cache_index
from featcache.journal import Journal


def describe_cache(path: Path) -> dict[str, Any]:
    """A JSON-able description of the cache at `path` (raises CacheFormatError if it is not one)."""
    path = Path(path)
    index = read_cache_index(path)
    with open_cache_file(path) as handle:
        attributes = {name: handle.attrs[name] for name in ("featcache_version", "format_version", "created", "compression")}
        feature_bytes = handle["features"].id.get_storage_size()
    counts = collections.Counter(index.class_names[label] for label in index.labels)
    journal = Journal(path)
    return {
        "path": str(path),
        "num_videos": index.num_videos,
        "num_classes": len(index.class_names),
        "videos_per_class": {name: counts.get(name, 0) for name in index.class_names},
        "num_frames": index.num_frames,
        "feature_dim": index.feature_dim,
        "dtype": index.dtype,
        "mean_length": float(index.lengths.mean()) if index.num_videos else 0.0,
        "num_padded_videos": int((index.lengths < index.num_frames).sum()),
        "num_grouped_videos": sum(1 for group in index.groups if group),
        "extractor": index.extractor,
        "sampling": index.sampling,
        "failures": [{"path": video_path, "reason": reason} for video_path, reason in index.failures],
        "size_bytes": path.stat().st_size,
        "feature_bytes": int(feature_bytes),
        "unfinished_run": journal.folder.exists(),
        **{name: (value.item() if hasattr(value, "item") else value) for name, value in attributes.items()},
    }


def format_cache_description(description: dict[str, Any]) -> str:
    """The human-readable text of `describe_cache`."""
    extractor = description["extractor"]
    sampling = description["sampling"]
    lines = [
        f"{description['path']}: {description['num_videos']} videos, {description['num_classes']} classes, "
        f"{description['num_frames']} frames x {description['feature_dim']} dims, {description['dtype']}, "
        f"{description['size_bytes'] / 1e6:.1f} MB on disk",
        f"extractor: {extractor.get('name')} (weights {extractor.get('weights')}, {extractor.get('image_size')} px"
        + (f", handle {extractor['handle']}" if extractor.get("handle") else "") + ")",
        f"sampling: {sampling.get('mode')}, {sampling.get('num_frames')} frames"
        + (f" at {sampling['fps']} fps" if sampling.get("fps") else "")
        + f"; mean length {description['mean_length']:.1f}, {description['num_padded_videos']} videos padded",
        f"created {description['created']} by featcache {description['featcache_version']}",
        "videos per class:",
        *(f"  {name}: {count}" for name, count in description["videos_per_class"].items()),
    ]
    if description["failures"]:
        lines.append(f"failures ({len(description['failures'])}):")
        lines.extend(f"  {failure['path']}: {failure['reason']}" for failure in description["failures"])
    if description["unfinished_run"]:
        lines.append("an unfinished embed run is pending: re-run the same `featcache embed` command to add its videos")
    return "\n".join(lines)
