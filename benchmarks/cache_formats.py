"""Section 3: what each cache dtype and compression costs on disk and in reading, to pick the default.

The features are real extractor outputs (random-weight CNNs on the suite's videos, from the stage-one
caches) tiled to more rows and scaled by one factor to peak at FEATURE_PEAK, written with featcache's own
writer. The scaling matters: random-init MobileNetV2 outputs ~1e-11, which float16 stores as zeros (and
zeros compress to nothing); trained CNN features are of order 1. Zeros (ReLU) stay zeros. Reads are what
training does: an epoch of random batches (`FeatureReader.read`, as `EpochBatches` streams them) and the
one-shot load of a cache that fits in memory (`read_all_features`). Files were just written, so reads come
from the page cache: this measures HDF5 and decompression, not the disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchmarks.data import rows_from_features
from benchmarks.report import SectionResult, Table, Target, rate, seconds
from benchmarks.workspace import Workspace
from featcache.cache import FeatureReader, read_all_features, read_cache_index, write_cache
from featcache.config import COMPRESSIONS, FEATURE_DTYPES, EmbedConfig, TrainConfig

BYTES_PER_MB = 1e6
FEATURE_PEAK = 6.0  # MobileNetV2's ReLU6 ceiling: a trained extractor's pooled features lie in [0, 6]
# A compressed default must save this share of the bytes while keeping this share of the read speed.
WORTHWHILE_SAVING = 0.30
ACCEPTABLE_READ_SPEED = 0.80


@dataclass(frozen=True)
class FormatCost:
    dtype: str
    compression: str
    bytes_per_video: float
    write_seconds: float
    streamed_videos_per_second: float
    load_seconds: float


def measure_format(
    path, features: np.ndarray, labels: list[str], dtype: str, compression: str, batch_size: int
) -> FormatCost:
    """Write `features` (float32 (N, T, D)) as a cache with this dtype and compression, then time reading it."""
    rows = rows_from_features(features.astype(dtype), labels)
    started = time.perf_counter()
    write_cache(
        path,
        row_sources=[rows],
        all_paths=rows.paths,
        class_names=sorted(set(labels)),
        failures=[],
        attributes={"extractor": {"name": "benchmark"}, "sampling": {}},
        num_frames=features.shape[1],
        feature_dim=features.shape[2],
        dtype=dtype,
        compression=compression,
    )
    write_seconds = time.perf_counter() - started
    num_videos = len(features)
    order = np.random.default_rng(0).permutation(num_videos)
    with FeatureReader(path) as reader:
        reader.read(order[:batch_size])
        started = time.perf_counter()
        for start in range(0, num_videos, batch_size):
            reader.read(np.sort(order[start : start + batch_size]))
        streamed = num_videos / (time.perf_counter() - started)
    started = time.perf_counter()
    read_all_features(path)
    load_seconds = time.perf_counter() - started
    size = path.stat().st_size
    path.unlink()
    return FormatCost(dtype, compression, size / num_videos, write_seconds, streamed, load_seconds)


def recommended_format(costs: list[FormatCost]) -> FormatCost:
    """The smaller dtype uncompressed, unless a compression saves WORTHWHILE_SAVING of it at ACCEPTABLE_READ_SPEED."""
    smallest_dtype = min(FEATURE_DTYPES, key=lambda dtype: np.dtype(dtype).itemsize)
    plain = next(cost for cost in costs if cost.dtype == smallest_dtype and cost.compression == "none")
    worthwhile = [
        cost
        for cost in costs
        if cost.dtype == smallest_dtype
        and cost.bytes_per_video <= (1 - WORTHWHILE_SAVING) * plain.bytes_per_video
        and cost.streamed_videos_per_second >= ACCEPTABLE_READ_SPEED * plain.streamed_videos_per_second
    ]
    return min(worthwhile, key=lambda cost: cost.bytes_per_video) if worthwhile else plain


def run_cache_formats(workspace: Workspace) -> SectionResult:
    sizes = workspace.sizes
    batch_size = TrainConfig().batch_size
    default = EmbedConfig()
    tables, targets = [], []
    for name in sizes.extractors:
        cache_path = workspace.embeds[name].cache_path
        index = read_cache_index(cache_path)
        embedded = read_all_features(cache_path)
        num_rows = sizes.format_rows[name]
        rows = np.arange(num_rows) % index.num_videos
        features = embedded[rows] * (FEATURE_PEAK / float(embedded.max()))
        labels = [index.class_names[index.labels[row]] for row in rows]
        costs = [
            measure_format(
                workspace.folder / f"format_{name}_{dtype}_{compression}.h5",
                features,
                labels,
                dtype,
                compression,
                batch_size,
            )
            for dtype in FEATURE_DTYPES
            for compression in COMPRESSIONS
        ]
        plain = next(cost for cost in costs if cost.dtype == default.dtype and cost.compression == default.compression)
        tables.append(
            Table(
                f"{name} features ({index.feature_dim}-d × {index.num_frames} frames), {num_rows} videos",
                [
                    "dtype",
                    "compression",
                    "bytes per video",
                    "vs default",
                    "write",
                    "streamed read (random batches)",
                    "load all into memory",
                ],
                [
                    [
                        cost.dtype,
                        cost.compression,
                        f"{cost.bytes_per_video:,.0f}",
                        (
                            f"{cost.bytes_per_video / plain.bytes_per_video:.2f}× size, "
                            f"{cost.streamed_videos_per_second / plain.streamed_videos_per_second:.2f}× read speed"
                        ),
                        seconds(cost.write_seconds),
                        (
                            f"{rate(cost.streamed_videos_per_second, 'videos/s')} "
                            f"({cost.streamed_videos_per_second * cost.bytes_per_video / BYTES_PER_MB:,.0f} "
                            "MB/s stored)"
                        ),
                        seconds(cost.load_seconds),
                    ]
                    for cost in costs
                ],
            )
        )
        chosen = recommended_format(costs)
        targets.append(
            Target(
                f"cache default ({default.dtype}, compression {default.compression}) "
                f"is the one the numbers justify ({name})",
                f"rule picks {chosen.dtype}/{chosen.compression}",
                (chosen.dtype, chosen.compression) == (default.dtype, default.compression),
            )
        )
    tables[-1].notes += [
        f"Streamed read: one epoch of random batches of {batch_size} whole videos "
        "(`FeatureReader.read`, sorted within a batch, as `EpochBatches` reads), warm page cache. "
        "Load all: `read_all_features`, what training does for a cache within its memory budget.",
        "Rule for the default: the smaller dtype, uncompressed, unless a compression saves "
        f"≥ {WORTHWHILE_SAVING:.0%} of its bytes while reading at ≥ {ACCEPTABLE_READ_SPEED:.0%} of its speed. "
        "float16 keeps ~3 significant digits, well inside what a head trained on ReLU features needs; "
        "float32 doubles the bytes.",
        f"Features: each extractor's outputs on the suite's videos, scaled to peak at {FEATURE_PEAK:g}. "
        "Random-weight CNN features compress differently from "
        "ImageNet-weight ones (their sparsity after ReLU differs); rerun on real features before changing a default.",
    ]
    return SectionResult("3. Cache format: size and read speed", tables, targets)
