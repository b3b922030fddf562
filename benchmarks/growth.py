"""Section 4: growth. 1x, 2x, 4x the videos: embed time, epoch time and peak memory, one fresh process per size.

Each size runs in its own child process (`python -m benchmarks.growth CHILD_JSON`), so its peak resident
memory (VmHWM) is its own. Two kinds of child:
- embed: embed the first N of the suite's videos (with the suite's first extractor, MobileNetV2), then train the
  default head on that cache; peak memory is read after embedding, reset, and read again after training.
- train: train the notebook's scratch-CNN head on a scratch_cnn-sized (25088-d) cache of random features,
  once streamed (memory budget set below the cache) and once loaded into memory, for contrast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.data import RandomCacheParameters, write_random_cache, write_video_list
from benchmarks.machine import peak_rss_mib, reset_peak_rss
from benchmarks.report import SectionResult, Table, Target, mebibytes, ratio, seconds
from benchmarks.workspace import FULL, QUICK, Workspace

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "GROWTH-RESULT "
LINEAR_TOLERANCE = 1.5  # time at k x the size within 1.5x of k x the smallest size's time counts as linear
FLAT_MEMORY_TOLERANCE = 1.25  # streamed peak memory at the largest size within 1.25x of the smallest's
GROWTH_TEST_FRACTION = 0.5  # the smallest embed size holds only a few groups


@dataclass
class ChildRequest:
    """What one child process measures (JSON on its command line)."""

    kind: str  # "embed" or "train"
    quick: bool
    cache_path: str
    video_list: str = ""
    memory_budget_mb: int = 0
    epochs: int = 3


@dataclass
class ChildResult:
    embed_seconds: float = 0.0
    embed_peak_mib: float = 0.0
    epoch_seconds: float = 0.0
    train_peak_mib: float = 0.0
    peak_reset: bool = True
    streamed: bool = False
    extra: dict = field(default_factory=dict)


def run_child(request: ChildRequest) -> ChildResult:
    """Run `request` in a fresh Python process and return what it measured."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.growth", json.dumps(asdict(request))],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"growth child {request.kind} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return ChildResult(**json.loads(lines[-1].removeprefix(RESULT_PREFIX)))


def _child_main(request: ChildRequest) -> ChildResult:
    # Imported here: the parent process never needs Keras for this section, and the child's peak is its own.
    from benchmarks.notebook_vs_featcache import notebook_head, steady_epoch_seconds
    from featcache.config import HeadConfig, TrainConfig
    from featcache.embedding.embed import embed
    from featcache.training.train import fit_head
    from featcache.training.training_data import load_training_data

    sizes = QUICK if request.quick else FULL
    result = ChildResult()
    if request.kind == "embed":
        summary = embed(
            Path(request.video_list), Path(request.cache_path), sizes.embed_config(sizes.extractors[0]), overwrite=True
        )
        result.embed_seconds = summary.seconds
        result.embed_peak_mib = peak_rss_mib()
        result.peak_reset = reset_peak_rss()
        train_config = TrainConfig(epochs=request.epochs, test_fraction=GROWTH_TEST_FRACTION, val_fraction=0.0)
        head = HeadConfig()
    else:
        train_config = TrainConfig(
            epochs=request.epochs, split="ucf101-1", val_fraction=0.0, memory_budget_mb=request.memory_budget_mb
        )
        head = notebook_head("scratch_cnn")
    data = load_training_data(Path(request.cache_path), train_config)
    result.streamed = not data.in_memory
    result.epoch_seconds = steady_epoch_seconds(fit_head(data, head, train_config).history)
    result.train_peak_mib = peak_rss_mib()
    return result


def _embed_subset(workspace: Workspace, count: int) -> list[str]:
    """The first `count` videos taken clip by clip, group by group, class by class, so every size mixes them."""

    def spread(relative_path: str) -> tuple:
        class_name, file_name = relative_path.split("/")
        group, clip = file_name.removesuffix(".avi").rsplit("_", 2)[-2:]
        return (clip, group, class_name)

    return sorted((entry.relative_path for entry in workspace.entries), key=spread)[:count]


def _is_linear(times: dict[int, float]) -> bool:
    smallest = min(times)
    return all(times[size] <= LINEAR_TOLERANCE * (size / smallest) * times[smallest] for size in times)


def run_growth(workspace: Workspace) -> SectionResult:
    sizes = workspace.sizes
    quick = sizes is QUICK
    multipliers = sizes.growth_multipliers
    base_videos = len(workspace.entries) // max(multipliers)
    requests: dict[tuple[str, int], ChildRequest] = {}
    for multiplier in multipliers:
        video_list = write_video_list(
            workspace.folder / f"growth_{multiplier}x.csv",
            workspace.video_root,
            _embed_subset(workspace, base_videos * multiplier),
        )
        requests["embed", multiplier] = ChildRequest(
            "embed", quick, str(workspace.folder / f"growth_{multiplier}x.h5"), video_list=str(video_list)
        )
    for multiplier in multipliers:
        rows = sizes.streaming_rows * multiplier
        parameters = RandomCacheParameters(
            rows * 3 // 4, rows // 4, sizes.num_frames, sizes.streaming_feature_dim, num_classes=4
        )
        cache_path = write_random_cache(workspace.folder / f"growth_stream_{multiplier}x.h5", parameters)
        for label, budget in (("streamed", sizes.streaming_budget_mb), ("in memory", 1 << 20)):
            requests[label, multiplier] = ChildRequest("train", quick, str(cache_path), memory_budget_mb=budget)
    with ThreadPoolExecutor(max_workers=sizes.growth_parallel_children) as pool:
        measured = dict(zip(requests, pool.map(run_child, requests.values())))
    embed_results = {multiplier: measured["embed", multiplier] for multiplier in multipliers}
    stream_results = {
        label: {multiplier: measured[label, multiplier] for multiplier in multipliers}
        for label in ("streamed", "in memory")
    }

    embed_table = Table(
        f"Embed + train, {sizes.extractors[0]}: "
        f"{', '.join(f'{base_videos * multiplier}' for multiplier in multipliers)} videos",
        [
            "size",
            "videos",
            "embed wall time",
            "vs 1×",
            "peak RSS, embedding",
            "epoch (default head, fastest of 2-3)",
            "peak RSS, training",
        ],
        [
            [
                f"{multiplier}×",
                str(base_videos * multiplier),
                seconds(result.embed_seconds),
                ratio(result.embed_seconds / embed_results[multipliers[0]].embed_seconds),
                mebibytes(result.embed_peak_mib),
                seconds(result.epoch_seconds),
                mebibytes(result.train_peak_mib) + ("" if result.peak_reset else " (cumulative)"),
            ]
            for multiplier, result in embed_results.items()
        ],
        [
            "One fresh process per size. Embed wall time is the whole `featcache.embed()` call "
            "(loading the model and writing the cache included), so the fixed part shows at small sizes. "
            "Epochs on caches this small are dominated by Keras' per-epoch overhead, not by the videos: "
            "the streamed table below shows how epoch time grows with data.",
        ],
    )
    feature_megabytes = {
        multiplier: sizes.streaming_rows * multiplier * sizes.num_frames * sizes.streaming_feature_dim * 4 / 2**20
        for multiplier in multipliers
    }
    stream_table = Table(
        f"Training on scratch_cnn-sized caches ({sizes.streaming_feature_dim}-d × {sizes.num_frames} frames, "
        "float16 on disk), notebook's scratch head (LSTM 128 → Dense 32)",
        [
            "size",
            "videos",
            "features as float32",
            "epoch, streamed",
            "peak RSS, streamed",
            "epoch, in memory",
            "peak RSS, in memory",
        ],
        [
            [
                f"{multiplier}×",
                str(sizes.streaming_rows * multiplier),
                mebibytes(feature_megabytes[multiplier]),
                seconds(stream_results["streamed"][multiplier].epoch_seconds)
                + ("" if stream_results["streamed"][multiplier].streamed else " (not streamed!)"),
                mebibytes(stream_results["streamed"][multiplier].train_peak_mib),
                seconds(stream_results["in memory"][multiplier].epoch_seconds),
                mebibytes(stream_results["in memory"][multiplier].train_peak_mib),
            ]
            for multiplier in multipliers
        ],
        [
            f"Streamed: `TrainConfig(memory_budget_mb={sizes.streaming_budget_mb})`, below every cache here, "
            "so `train` reads batches from the file (`EpochBatches`). "
            "In memory: a budget above the cache, so it is loaded once. "
            "Epoch: the fastest of epochs 2-3 (epoch 1 also traces), one pass over the training side "
            "of UCF101 split 1's group rule (3/4 of the videos), no validation pass.",
        ],
    )
    streamed_epochs = {multiplier: result.epoch_seconds for multiplier, result in stream_results["streamed"].items()}
    streamed_peaks = {multiplier: result.train_peak_mib for multiplier, result in stream_results["streamed"].items()}
    embed_times = {multiplier: result.embed_seconds for multiplier, result in embed_results.items()}
    largest, smallest = max(multipliers), min(multipliers)
    targets = [
        Target(
            f"growth: streamed epoch time grows linearly with the videos ({sizes.streaming_feature_dim}-d)",
            ", ".join(f"{multiplier}×: {seconds(value)}" for multiplier, value in streamed_epochs.items()),
            _is_linear(streamed_epochs),
        ),
        Target(
            "growth: streamed training memory stays flat "
            f"({sizes.streaming_feature_dim}-d cache above the memory budget)",
            f"peak RSS {mebibytes(streamed_peaks[smallest])} at {smallest}× → "
            f"{mebibytes(streamed_peaks[largest])} at {largest}× "
            f"(features {mebibytes(feature_megabytes[smallest])} → {mebibytes(feature_megabytes[largest])} as float32)",
            streamed_peaks[largest] <= FLAT_MEMORY_TOLERANCE * streamed_peaks[smallest],
        ),
        Target(
            "growth: embed time grows at most linearly with the videos",
            ", ".join(f"{multiplier}×: {seconds(value)}" for multiplier, value in embed_times.items()),
            _is_linear(embed_times),
        ),
    ]
    plot = {
        "growth_time": {
            f"embed ({sizes.extractors[0]})": embed_times,
            f"epoch, streamed {sizes.streaming_feature_dim}-d": streamed_epochs,
            f"epoch, in memory {sizes.streaming_feature_dim}-d": {
                multiplier: result.epoch_seconds for multiplier, result in stream_results["in memory"].items()
            },
        },
        "growth_memory": {
            "embed": {multiplier: result.embed_peak_mib for multiplier, result in embed_results.items()},
            f"train {sizes.streaming_feature_dim}-d, streamed": streamed_peaks,
            f"train {sizes.streaming_feature_dim}-d, in memory": {
                multiplier: result.train_peak_mib for multiplier, result in stream_results["in memory"].items()
            },
        },
    }
    return SectionResult("4. Growth: 1×, 2×, 4× the videos", [embed_table, stream_table], targets, plot)


if __name__ == "__main__":
    started = time.perf_counter()
    child_result = _child_main(ChildRequest(**json.loads(sys.argv[1])))
    child_result.extra["child_seconds"] = time.perf_counter() - started
    print(RESULT_PREFIX + json.dumps(asdict(child_result)), flush=True)
