"""The cache page (`featcache info CACHE --html`): videos per class, lengths, failures, duplicates, provenance,
shard health."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featcache.cache import open_cache
from featcache.cache.describe import describe_cache
from featcache.report.images import bar_chart, histogram
from featcache.report.render import render_page, write_page


@dataclass(frozen=True)
class CachePageData:
    """What the cache page shows: `description` is `describe_cache`'s; the charts are SVG data URIs.

    length_unit: what the length histogram counts ("seconds" of source video where the cache recorded frame
    counts and rates, else "stored frames"); shards: (name, size bytes, videos, frames) per live shard.
    """

    description: dict[str, Any]
    videos_per_class_uri: str | None
    lengths_uri: str | None
    length_unit: str
    shards: list[tuple[str, int, int, int]]
    provenance: list[tuple[str, str]]


def gather_cache_page(cache_path: Path) -> CachePageData:
    """Describe the cache at `cache_path` for its page; raises CacheFormatError if it is not a cache."""
    description = describe_cache(cache_path)
    cache = open_cache(cache_path)
    lengths, unit = video_lengths(Path(cache_path), cache.index.lengths)
    per_class = description["videos_per_class"]
    extractor, sampling = description["extractor"], description["sampling"]
    return CachePageData(
        description=description,
        videos_per_class_uri=bar_chart(list(per_class), list(per_class.values()), "class", "videos")
        if per_class
        else None,
        lengths_uri=histogram(lengths, unit) if len(lengths) else None,
        length_unit=unit,
        shards=[
            (info.name, info.size, info.num_videos, info.num_frames)
            for info in (cache.state.shards.values() if cache.state else [])
        ],
        provenance=[
            ("extractor", f"{extractor.get('name')} (weights {extractor.get('weights')})"),
            ("weights sha256", str(extractor.get("weights_sha256") or "-")),
            ("image size", f"{extractor.get('image_size')} px"),
            ("sampling", ", ".join(f"{name}={value}" for name, value in sampling.items() if value is not None)),
            (
                "features",
                f"{description['num_frames']} frames x {description['feature_dim']} dims, {description['dtype']}",
            ),
            ("written by", f"featcache {description['featcache_version']}, format {description['format_version']}"),
            ("created", str(description["created"])),
            ("compression", str(description["compression"])),
        ],
    )


def video_lengths(cache_path: Path, stored_lengths: np.ndarray) -> tuple[np.ndarray, str]:
    """Each video's duration in seconds where the index records frame counts and frame rates, else its stored
    frames: (float64 (N,), unit label)."""
    with h5py.File(cache_path, "r") as handle:
        if "video_num_frames" in handle and "video_fps" in handle:
            num_frames = np.asarray(handle["video_num_frames"][()], dtype=np.float64)
            fps = np.asarray(handle["video_fps"][()], dtype=np.float64)
            if len(num_frames) == len(stored_lengths) and np.all(fps > 0):
                return num_frames / fps, "video length (seconds)"
    return np.asarray(stored_lengths, dtype=np.float64), "stored frames per video"


def write_cache_report(cache_path: Path, out: Path | None = None) -> Path:
    """Write the cache page (default CACHE.html beside the cache) and return its path."""
    data = gather_cache_page(cache_path)
    out = Path(out) if out is not None else Path(cache_path).with_suffix(".html")
    return write_page(out, render_page("cache.html.j2", page=data, cache=data.description))
