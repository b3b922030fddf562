"""Section 6: every head's test accuracy and seconds per epoch, on the demo videos and on an order-only feature set.

The demo cache is `featcache demo`'s: synthetic videos (MovingLeft is MovingRight played backwards), the scratch
CNN with random frozen weights, 12 frames. The order-only set (benchmarks.data.permuted_segments) shows every
class the same segments in its own order, so the mean over frames carries no class information at all. Each
head trains with the same settings, split and seeds (`featcache.compare_heads`); accuracy is on the test videos.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.data import permuted_segments, write_feature_cache
from benchmarks.report import SectionResult, Table
from benchmarks.workspace import Workspace
from featcache.cache import read_cache_index
from featcache.config import HEAD_NAMES, EmbedConfig, ExtractorConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.training.compare import compare_heads
from featcache.video.demo_data import make_demo_data

# The demo pipeline's settings (pipelines/demo.toml): LSTM(128) -> Dense(64), 12 frames at 64 px, 8 groups.
HEAD_OVERRIDES = {"units": 128, "dense": 64}
DEMO_EMBED = EmbedConfig(
    extractor=ExtractorConfig(name="scratch_cnn", weights="random", seed=0, image_size=64),
    sampling=SamplingConfig(num_frames=12),
)


# The harder order-only set of issue 18 item 6: few, long videos (the tcn reached 0.72 on real ones where lstm
# reached 0.95): 3 segments in 6 orders, 45-90 frames, as permuted_segments draws them.
LONG_ORDER_ONLY_NOTE = "{0} classes x {1} videos, {3}-{2} frames x 64 dims (3 segments, noise 1.5)"


def long_order_only_cache(path: Path, num_classes: int, per_class: int, num_frames: int) -> Path:
    features, lengths, labels = permuted_segments(
        per_class, num_classes=num_classes, num_segments=3, num_frames=num_frames, feature_dim=64, noise=1.5
    )
    return write_feature_cache(path, features, lengths, labels, [f"Order{label:02d}" for label in range(num_classes)])


def run_heads(workspace: Workspace) -> SectionResult:
    sizes = workspace.sizes
    demo_root = make_demo_data(
        workspace.folder / "heads_demo", videos_per_class=sizes.heads_demo_videos_per_class, num_groups=8
    )
    demo_cache = workspace.folder / "heads_demo.h5"
    embed(demo_root, demo_cache, DEMO_EMBED, overwrite=True)
    num_classes, per_class, num_segments = sizes.heads_order_only
    features, lengths, labels = permuted_segments(
        per_class, num_classes=num_classes, num_segments=num_segments, num_frames=16, feature_dim=64, noise=1.5
    )
    order_cache = write_feature_cache(
        workspace.folder / "heads_order_only.h5",
        features,
        lengths,
        labels,
        [f"Order{label:02d}" for label in range(num_classes)],
    )
    long_cache = long_order_only_cache(workspace.folder / "heads_long_order_only.h5", *sizes.heads_long_order_only)
    caches = {
        "demo": (demo_cache, TrainConfig(epochs=sizes.heads_demo_epochs, test_fraction=0.25)),
        "order-only": (order_cache, TrainConfig(epochs=sizes.heads_order_only_epochs, test_fraction=0.25)),
        "long order-only": (long_cache, TrainConfig(epochs=sizes.heads_order_only_epochs, test_fraction=0.25)),
    }
    results: dict[str, dict[str, list]] = {}
    for cache_name, (cache_path, train_config) in caches.items():
        for seed in sizes.heads_seeds:
            seeded = TrainConfig(**{**train_config.__dict__, "seed": seed})
            for row in compare_heads(cache_path, list(HEAD_NAMES), HEAD_OVERRIDES, seeded):
                results.setdefault(row.head, {}).setdefault(cache_name, []).append(row)
    table_rows = []
    for head in HEAD_NAMES:
        cells = [head]
        for cache_name in caches:
            rows = results[head][cache_name]
            accuracies = [row.test_accuracy for row in rows]
            cells += [
                f"{np.mean(accuracies):.3f} ({min(accuracies):.2f}–{max(accuracies):.2f})",
                f"{np.mean([row.seconds_per_epoch for row in rows]):.3f}",
            ]
        cells.append(f"{results[head]['demo'][0].num_parameters:,}")
        table_rows.append(cells)
    demo_videos = 3 * sizes.heads_demo_videos_per_class
    notes = [
        f"demo: {demo_videos} videos (3 classes, 8 groups; 2 test groups), "
        f"12 frames x {read_cache_index(demo_cache).feature_dim}-d scratch-CNN "
        f"features, {sizes.heads_demo_epochs} epochs; "
        f"order-only: {num_classes} classes x {per_class} videos, 8-16 frames x 64 dims "
        f"({num_segments} segments, noise 1.5), 25% test, {sizes.heads_order_only_epochs} epochs; "
        f"long order-only: "
        f"{LONG_ORDER_ONLY_NOTE.format(*sizes.heads_long_order_only, sizes.heads_long_order_only[2] // 2)}.",
        "Every head: units 128, dense 64, other settings at their defaults "
        "(dropout 0.5 on the sequence inputs, 2 layers, 4 attention heads, "
        "sinusoidal positions, mean pooling, kernel 3); best epoch by validation accuracy; "
        f"seeds {', '.join(map(str, sizes.heads_seeds))} "
        "(split and weights); accuracy: mean (min–max) over seeds.",
        "s/epoch: mean epoch time leaving out the first (which compiles), training plus validation pass; "
        "parameters at the demo cache's feature size.",
    ]
    columns = [
        "head",
        "demo test accuracy",
        "demo s/epoch",
        "order-only test accuracy",
        "order-only s/epoch",
        "long order-only test accuracy",
        "long order-only s/epoch",
        "parameters (demo)",
    ]
    return SectionResult(
        "6. Heads", [Table("Test accuracy and seconds per epoch of every head", columns, table_rows, notes)]
    )


def main(argv: list[str] | None = None) -> int:
    """`python3 -m benchmarks.heads`: only the long order-only set, for the heads and seeds given (a markdown table)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.heads", description=main.__doc__)
    parser.add_argument("--heads", default="tcn,lstm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=3, default=[6, 20, 90], help="classes, videos per class, frames")
    args = parser.parse_args(argv)
    cache = long_order_only_cache(Path(tempfile.mkdtemp(prefix="featcache-heads-")) / "long.h5", *args.size)
    print(f"long order-only: {LONG_ORDER_ONLY_NOTE.format(*args.size, args.size[2] // 2)}, 25% test")
    print("| head | test accuracy (mean, min–max) | best val accuracy (mean) | s/epoch |")
    print("|---|---|---|---|")
    head_names = args.heads.split(",")
    rows: dict[str, list] = {name: [] for name in head_names}
    for seed in args.seeds:
        train_config = TrainConfig(epochs=args.epochs, test_fraction=0.25, seed=seed)
        for row in compare_heads(cache, head_names, HEAD_OVERRIDES, train_config):
            rows[row.head].append(row)
    for name, head_rows in rows.items():
        accuracies = [row.test_accuracy for row in head_rows]
        print(
            f"| {name} | {np.mean(accuracies):.3f} ({min(accuracies):.2f}–{max(accuracies):.2f}) "
            f"| {np.mean([row.best_val_accuracy for row in head_rows]):.3f} "
            f"| {np.mean([row.seconds_per_epoch for row in head_rows]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
